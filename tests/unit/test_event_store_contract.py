"""One contract, two stores: the broker is unit-tested on MemoryEventStore and
trusted on SqliteEventStore only because both pass the same tests here.

The sqlite-only tests at the end cover what the memory store cannot have:
WAL mode, the durability pragma, concurrent read-only readers, a real crash.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventlog.memory_store import MemoryEventStore
from eventlog.sqlite_store import SqliteEventStore
from eventlog.store import CallRecord, EventStore, StoredEvent

TS = "2024-05-23T15:38:00.2514272+08:00"


@dataclass
class Harness:
    """The store under test plus the one thing that differs per kind: how to "restart"."""

    kind: str
    store: EventStore
    _restart: Callable[[EventStore], EventStore]

    def restart(self) -> EventStore:
        """Lose the process (and its uncommitted work) and open the store again."""
        self.store = self._restart(self.store)
        return self.store


def _restart_memory(store: EventStore) -> EventStore:
    assert isinstance(store, MemoryEventStore)
    return store.crash_and_reopen()


def _restart_sqlite(path: Path) -> Callable[[EventStore], EventStore]:
    def restart(store: EventStore) -> EventStore:
        store.close()
        return SqliteEventStore(path)

    return restart


@pytest.fixture(params=["memory", "sqlite"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "memory":
        h = Harness("memory", MemoryEventStore(), _restart_memory)
    else:
        path = tmp_path / "events.sqlite3"
        h = Harness("sqlite", SqliteEventStore(path), _restart_sqlite(path))
    yield h
    h.store.close()


@pytest.fixture
def store(harness: Harness) -> EventStore:
    return harness.store


def _event(store: EventStore, n: int) -> int:
    return store.append_event(f"type-{n}", 1, f"payload-{n}".encode(), TS)


def _call(store: EventStore, n: int, status: int = 200) -> int:
    return store.append_call(f"/api/call/{n}", f"uuid-{n}", TS, status)


# -- sequence numbers -------------------------------------------------------


def test_event_and_call_seqs_count_from_one_independently(store: EventStore) -> None:
    assert [_event(store, 1), _event(store, 2)] == [1, 2]
    assert [_call(store, 1), _call(store, 2), _call(store, 3)] == [1, 2, 3]
    assert _event(store, 3) == 3
    store.commit()
    assert _call(store, 4) == 4
    assert _event(store, 4) == 4


# -- events -----------------------------------------------------------------


def test_events_returns_everything_oldest_first(store: EventStore) -> None:
    for n in range(1, 6):
        _event(store, n)
    store.commit()
    assert list(store.events()) == [StoredEvent(n, TS, f"type-{n}", 1, f"payload-{n}".encode()) for n in range(1, 6)]


def test_events_after_filters_by_seq(store: EventStore) -> None:
    for n in range(1, 6):
        _event(store, n)
    store.commit()
    assert [e.seq for e in store.events(after=3)] == [4, 5]
    assert [e.seq for e in store.events(after=0)] == [1, 2, 3, 4, 5]
    assert list(store.events(after=5)) == []
    assert list(store.events(after=99)) == []


def test_events_on_empty_store(store: EventStore) -> None:
    assert list(store.events()) == []


def test_event_fields_round_trip(store: EventStore) -> None:
    store.append_event("card.inserted", 7, b"\x00", "2001-02-03T04:05:06.0000000-03:30")
    store.commit()
    (event,) = store.events()
    assert event == StoredEvent(1, "2001-02-03T04:05:06.0000000-03:30", "card.inserted", 7, b"\x00")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"\xff\xfe\x80not utf-8\xc3\x28",
        bytes(range(256)),
        "健保卡".encode("big5"),
        b"\x00" * 100_000,
    ],
    ids=["empty", "nul", "invalid-utf8", "all-bytes", "big5", "large"],
)
def test_payload_bytes_round_trip_exactly(store: EventStore, payload: bytes) -> None:
    store.append_event("t", 1, payload, TS)
    store.commit()
    (event,) = store.events()
    assert type(event.payload) is bytes
    assert event.payload == payload


def test_bytearray_payload_is_stored_as_bytes_and_not_aliased(store: EventStore) -> None:
    buffer = bytearray(b"abc")
    store.append_event("t", 1, buffer, TS)  # type: ignore[arg-type]  # deliberately off-type
    buffer[0] = ord("X")
    store.commit()
    (event,) = store.events()
    assert type(event.payload) is bytes
    assert event.payload == b"abc"


def test_str_payload_is_refused(store: EventStore) -> None:
    with pytest.raises(TypeError):
        store.append_event("t", 1, "not bytes", TS)  # type: ignore[arg-type]  # deliberately off-type


def test_pending_events_are_visible_to_the_same_store(store: EventStore) -> None:
    _event(store, 1)
    store.commit()
    _event(store, 2)
    assert [e.seq for e in store.events()] == [1, 2]


def test_events_iteration_survives_appends_and_commits(store: EventStore) -> None:
    for n in range(1, 4):
        _event(store, n)
    store.commit()
    seen: list[int] = []
    for event in store.events():
        seen.append(event.seq)
        if event.seq == 1:
            _event(store, 4)
            store.commit()
    # A catch-up read: events appended while iterating are yielded too.
    assert seen == [1, 2, 3, 4]


# -- calls ------------------------------------------------------------------


def test_calls_newest_first(store: EventStore) -> None:
    for n in range(1, 6):
        _call(store, n, status=200 + n)
    store.commit()
    assert store.calls_newest_first(skip=0, take=10) == [
        CallRecord(n, f"/api/call/{n}", f"uuid-{n}", TS, 200 + n) for n in (5, 4, 3, 2, 1)
    ]


@pytest.mark.parametrize(
    ("skip", "take", "after_seq", "expected"),
    [
        (0, 2, 0, [10, 9]),
        (2, 3, 0, [8, 7, 6]),
        (8, 5, 0, [2, 1]),
        (10, 5, 0, []),
        (50, 5, 0, []),
        (0, 100, 7, [10, 9, 8]),
        (1, 100, 7, [9, 8]),
        (1, 1, 7, [9]),
        (3, 5, 7, []),
        (0, 5, 10, []),
        (0, 5, 99, []),
        (0, 3, -5, [10, 9, 8]),
    ],
)
def test_calls_skip_take_after_seq(
    store: EventStore, skip: int, take: int, after_seq: int, expected: list[int]
) -> None:
    for n in range(1, 11):
        _call(store, n)
    store.commit()
    got = store.calls_newest_first(skip=skip, take=take, after_seq=after_seq)
    assert [c.seq for c in got] == expected


def test_calls_take_zero_is_empty(store: EventStore) -> None:
    for n in range(1, 4):
        _call(store, n)
    store.commit()
    assert store.calls_newest_first(skip=0, take=0) == []
    assert store.calls_newest_first(skip=1, take=0, after_seq=1) == []


def test_calls_on_empty_store(store: EventStore) -> None:
    assert store.calls_newest_first(skip=0, take=10) == []


@pytest.mark.parametrize(("skip", "take"), [(-1, 5), (0, -1), (-3, -3)])
def test_calls_negative_skip_or_take_raises(store: EventStore, skip: int, take: int) -> None:
    _call(store, 1)
    with pytest.raises(ValueError):
        store.calls_newest_first(skip=skip, take=take)


def test_pending_calls_are_visible_to_the_same_store(store: EventStore) -> None:
    _call(store, 1)
    store.commit()
    _call(store, 2)
    assert [c.seq for c in store.calls_newest_first(0, 10)] == [2, 1]
    assert store.last_call_seq() == 2


def test_last_call_seq(store: EventStore) -> None:
    assert store.last_call_seq() == 0
    _event(store, 1)
    assert store.last_call_seq() == 0  # events don't count
    _call(store, 1)
    _call(store, 2)
    assert store.last_call_seq() == 2
    store.commit()
    assert store.last_call_seq() == 2


def test_last_event_seq(harness: Harness) -> None:
    store = harness.store
    assert store.last_event_seq() == 0
    _call(store, 1)
    assert store.last_event_seq() == 0  # calls don't count
    _event(store, 1)
    _event(store, 2)
    assert store.last_event_seq() == 2  # pending ones do
    store.commit()
    _event(store, 3)
    assert harness.restart().last_event_seq() == 2  # the uncommitted one is gone


# -- commit, restart, durability --------------------------------------------


def test_commit_with_nothing_pending_is_a_no_op(store: EventStore) -> None:
    store.commit()
    store.commit()
    _event(store, 1)
    store.commit()
    store.commit()
    assert [e.seq for e in store.events()] == [1]


def test_committed_work_survives_restart_and_uncommitted_does_not(harness: Harness) -> None:
    store = harness.store
    _event(store, 1)
    _event(store, 2)
    _call(store, 1)
    store.commit()
    _event(store, 3)
    _call(store, 2)
    _call(store, 3)

    store = harness.restart()

    assert list(store.events()) == [StoredEvent(n, TS, f"type-{n}", 1, f"payload-{n}".encode()) for n in (1, 2)]
    assert store.calls_newest_first(0, 10) == [CallRecord(1, "/api/call/1", "uuid-1", TS, 200)]
    assert store.last_call_seq() == 1


def test_restart_with_nothing_committed_is_empty(harness: Harness) -> None:
    _event(harness.store, 1)
    _call(harness.store, 1)
    store = harness.restart()
    assert list(store.events()) == []
    assert store.last_call_seq() == 0


def test_restarted_store_keeps_counting_from_where_it_was(harness: Harness) -> None:
    store = harness.store
    for n in range(1, 4):
        _event(store, n)
    for n in range(1, 3):
        _call(store, n)
    store.commit()

    store = harness.restart()

    assert _event(store, 4) == 4
    assert _call(store, 3) == 3
    store.commit()
    store = harness.restart()
    assert [e.seq for e in store.events()] == [1, 2, 3, 4]
    assert [c.seq for c in store.calls_newest_first(0, 10)] == [3, 2, 1]


def test_seqs_of_lost_appends_are_handed_out_again(harness: Harness) -> None:
    """Documented behaviour: nobody saw the lost rows, so reusing their numbers is safe."""
    store = harness.store
    _event(store, 1)
    store.commit()
    assert _event(store, 2) == 2  # never committed
    store = harness.restart()
    assert store.append_event("again", 1, b"x", TS) == 2
    store.commit()
    assert [(e.seq, e.type) for e in store.events()] == [(1, "type-1"), (2, "again")]


def test_close_is_idempotent(store: EventStore) -> None:
    store.close()
    store.close()


# -- sqlite only --------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite3"


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def test_sqlite_file_is_in_wal_mode(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    try:
        reader = _read_only(db_path)
        try:
            assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            reader.close()
    finally:
        store.close()


def test_sqlite_schema(db_path: Path) -> None:
    SqliteEventStore(db_path).close()
    reader = _read_only(db_path)
    try:
        assert reader.execute("PRAGMA user_version").fetchone() == (3,)
        events = [row[1:4] + row[5:] for row in reader.execute("PRAGMA table_info(events)")]
        assert events == [
            ("seq", "INTEGER", 0, 1),
            ("recorded_at", "TEXT", 1, 0),
            ("type", "TEXT", 1, 0),
            ("version", "INTEGER", 1, 0),
            ("payload", "BLOB", 1, 0),
            ("prev_hash", "BLOB", 1, 0),
            ("hash", "BLOB", 1, 0),
        ]
        calls = [row[1:4] + row[5:] for row in reader.execute("PRAGMA table_info(calls)")]
        assert calls == [
            ("seq", "INTEGER", 0, 1),
            ("url", "TEXT", 1, 0),
            ("uuid", "TEXT", 1, 0),
            ("timestamp", "TEXT", 1, 0),
            ("status_code", "INTEGER", 1, 0),
            ("prev_hash", "BLOB", 1, 0),
            ("hash", "BLOB", 1, 0),
            ("caller", "TEXT", 0, 0),  # v3: added to the v2 table, as a migration adds it
        ]
        heads = [row[1:4] + row[5:] for row in reader.execute("PRAGMA table_info(chain_heads)")]
        assert heads == [("name", "TEXT", 0, 1), ("seq", "INTEGER", 1, 0), ("hash", "BLOB", 1, 0)]
        assert reader.execute("SELECT name, seq, hash FROM chain_heads ORDER BY name").fetchall() == [
            ("calls", 0, bytes(32)),
            ("events", 0, bytes(32)),
        ]
        segments = [row[1:4] + row[5:] for row in reader.execute("PRAGMA table_info(segments)")]
        assert segments == [
            ("id", "INTEGER", 0, 1),
            ("file", "TEXT", 1, 0),
            ("first_event_seq", "INTEGER", 0, 0),
            ("last_event_seq", "INTEGER", 0, 0),
            ("last_event_hash", "BLOB", 0, 0),
            ("first_call_seq", "INTEGER", 0, 0),
            ("last_call_seq", "INTEGER", 0, 0),
            ("last_call_hash", "BLOB", 0, 0),
            ("sealed_at", "TEXT", 1, 0),
        ]
    finally:
        reader.close()


def test_sqlite_rows_are_hash_chained_and_head_follows_commits(db_path: Path) -> None:
    from eventlog import chain

    store = SqliteEventStore(db_path)
    try:
        _event(store, 1)
        _event(store, 2)
        _call(store, 1)
        store.commit()
        _event(store, 3)  # pending: not in chain_heads yet
        reader = _read_only(db_path)
        try:
            rows = reader.execute(
                "SELECT seq, recorded_at, type, version, payload, prev_hash, hash FROM events ORDER BY seq"
            ).fetchall()
            prev = chain.GENESIS
            for seq, recorded_at, type_, version, payload, prev_hash, digest in rows:
                assert prev_hash == prev
                assert digest == chain.link(prev, chain.event_bytes(seq, recorded_at, type_, version, payload))
                prev = digest
            assert reader.execute("SELECT seq, hash FROM chain_heads WHERE name = 'events'").fetchone() == (
                2,
                prev,
            )
            (call_hash,) = reader.execute("SELECT hash FROM calls").fetchone()
            assert call_hash == chain.link(chain.GENESIS, chain.call_bytes(1, "/api/call/1", "uuid-1", TS, 200))
            store.commit()
            assert reader.execute("SELECT seq FROM chain_heads WHERE name = 'events'").fetchone() == (3,)
        finally:
            reader.close()
    finally:
        store.close()


def test_sqlite_rolled_back_appends_do_not_move_the_chain(db_path: Path) -> None:
    """A lost append's seq is reused; its hash must be too, or the chain would break."""
    from eventlog.verify import verify

    store = SqliteEventStore(db_path)
    _event(store, 1)
    store.commit()
    _event(store, 2)
    store.close()
    store = SqliteEventStore(db_path)
    try:
        assert _event(store, 3) == 2
        store.commit()
    finally:
        store.close()
    assert verify(db_path).ok


def test_sqlite_reopen_existing_file_is_idempotent(db_path: Path) -> None:
    for _ in range(3):
        SqliteEventStore(db_path).close()
    store = SqliteEventStore(db_path)
    try:
        assert _event(store, 1) == 1
        store.commit()
    finally:
        store.close()


def test_sqlite_refuses_a_newer_schema(db_path: Path) -> None:
    SqliteEventStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version=4")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        SqliteEventStore(db_path)


@pytest.mark.parametrize(("durability", "expected"), [("full", 2), ("normal", 1)])
def test_sqlite_durability_sets_synchronous(db_path: Path, durability: str, expected: int) -> None:
    # `synchronous` is per connection, so it can only be read on the store's own.
    store = SqliteEventStore(db_path, durability=durability)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (expected,)  # noqa: SLF001
        assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0  # noqa: SLF001
    finally:
        store.close()


def test_sqlite_default_durability_is_full(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    try:
        assert store.durability == "full"
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # noqa: SLF001
    finally:
        store.close()


@pytest.mark.parametrize("durability", ["FULL", "off", "", "extra"])
def test_sqlite_bad_durability_raises(db_path: Path, durability: str) -> None:
    with pytest.raises(ValueError):
        SqliteEventStore(db_path, durability=durability)


def test_sqlite_read_only_reader_sees_committed_not_pending(db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    try:
        _event(store, 1)
        _call(store, 1)
        store.commit()
        _event(store, 2)  # pending: holds the write lock
        reader = _read_only(db_path)
        try:
            rows = reader.execute("SELECT seq, type, payload FROM events ORDER BY seq").fetchall()
            assert rows == [(1, "type-1", b"payload-1")]
            assert reader.execute("SELECT seq, url FROM calls").fetchall() == [(1, "/api/call/1")]
            store.commit()
            assert [r[0] for r in reader.execute("SELECT seq FROM events ORDER BY seq")] == [1, 2]
            with pytest.raises(sqlite3.OperationalError):
                reader.execute("INSERT INTO events VALUES (9, 'x', 'x', 1, x'00', x'', x'')")
        finally:
            reader.close()
    finally:
        store.close()


def test_sqlite_streams_many_events_in_order(db_path: Path) -> None:
    store = SqliteEventStore(db_path, durability="normal")
    try:
        count = 20_000
        started = time.perf_counter()
        for n in range(count):
            store.append_event("tick", 1, n.to_bytes(4, "big"), TS)
        store.commit()
        tracemalloc.start()
        try:
            expected = 1
            for event in store.events():
                assert event.seq == expected
                assert event.payload == (expected - 1).to_bytes(4, "big")
                expected += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert expected == count + 1
        # Materializing all 20k events costs several MB; one 1000-row page, a few hundred kB.
        assert peak < 1_500_000
        assert [e.seq for e in store.events(after=count - 2)] == [count - 1, count]
        assert time.perf_counter() - started < 5
    finally:
        store.close()


def test_sqlite_close_rolls_back_pending_work(db_path: Path) -> None:
    """close() never commits: a half-finished batch must not become durable on shutdown."""
    store = SqliteEventStore(db_path)
    _event(store, 1)
    store.commit()
    _event(store, 2)
    store.close()
    store = SqliteEventStore(db_path)
    try:
        assert [e.seq for e in store.events()] == [1]
    finally:
        store.close()


def test_sqlite_real_crash_keeps_only_committed_work(db_path: Path) -> None:
    """A process that dies without close() (os._exit, no rollback, no atexit)."""
    script = textwrap.dedent(
        f"""
        import os
        from eventlog.sqlite_store import SqliteEventStore
        store = SqliteEventStore({str(db_path)!r})
        store.append_event("kept", 1, b"\\xff\\x00", "t")
        store.append_call("/api/kept", "u1", "t", 200)
        store.commit()
        store.append_event("lost", 1, b"", "t")
        store.append_call("/api/lost", "u2", "t", 500)
        os._exit(9)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], timeout=30)
    assert result.returncode == 9
    store = SqliteEventStore(db_path)
    try:
        assert [(e.seq, e.type, e.payload) for e in store.events()] == [(1, "kept", b"\xff\x00")]
        assert [c.url for c in store.calls_newest_first(0, 10)] == ["/api/kept"]
        assert _event(store, 2) == 2
    finally:
        store.close()
