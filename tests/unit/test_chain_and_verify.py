"""Tamper evidence: every single-row change to a copy of a real log is found, at the right seq.

The log is written by the real store; each test mutates a COPY (sqlite3 backup
API, so the -wal content is included) with raw SQL, as an attacker with the
file would, then runs `verify` on the copy.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from eventlog import chain
from eventlog.sqlite_store import SqliteEventStore
from eventlog.store import StoredEvent
from eventlog.verify import VerifyError, VerifyReport, verify

TS = "2024-05-23T15:38:00.2514272+08:00"
N_EVENTS = 50
N_CALLS = 30


def build_log(path: Path) -> SqliteEventStore:
    """50 events and 30 calls over 5 transactions; the store is left open (like a running console)."""
    store = SqliteEventStore(path, durability="normal")
    e = c = 0
    for _batch in range(5):
        for _ in range(10):
            e += 1
            payload = json.dumps({"n": e, "who": f"pseudonym-{e}"}).encode()
            store.append_event(f"type-{e % 4}", 1 + e % 2, payload, TS)
        for _ in range(6):
            c += 1
            store.append_call(f"/api/call/{c}", f"uuid-{c}", TS, 200 + c % 3)
        store.commit()
    return store


def copy_db(source: Path, target: Path) -> Path:
    """A consistent copy even while the writer holds the file open (committed data only)."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target


def mutate(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(path)
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "events.sqlite3"
    store = build_log(path)
    store.close()
    return path


@pytest.fixture
def copy(original: Path, tmp_path: Path) -> Path:
    return copy_db(original, tmp_path / "copy.sqlite3")


def _first(report: VerifyReport) -> tuple[str, int]:
    assert not report.ok
    first = report.first
    assert first is not None
    return first.table, first.seq


def test_untouched_log_verifies(copy: Path) -> None:
    report = verify(copy)
    assert report.ok
    assert report.problems == []
    assert report.first is None
    assert (report.events_checked, report.calls_checked) == (N_EVENTS, N_CALLS)


def test_verify_while_the_writer_is_open(tmp_path: Path) -> None:
    path = tmp_path / "live.sqlite3"
    store = build_log(path)
    try:
        store.append_event("pending", 1, b"{}", TS)  # uncommitted: invisible to verify
        report = verify(path)
        assert report.ok
        assert report.events_checked == N_EVENTS
    finally:
        store.close()


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        pytest.param(
            [("UPDATE events SET payload = ? WHERE seq = 20", (b'{"n":20,"who":"someone-else"}',))],
            ("events", 20),
            id="edit-payload",
        ),
        pytest.param([("UPDATE events SET type = 'card.removed' WHERE seq = 7", ())], ("events", 7), id="edit-type"),
        pytest.param(
            [("UPDATE events SET recorded_at = ? WHERE seq = 33", ("2024-05-23T15:38:00.2514273+08:00",))],
            ("events", 33),
            id="edit-timestamp",
        ),
        pytest.param([("UPDATE events SET version = 9 WHERE seq = 1", ())], ("events", 1), id="edit-version-first-row"),
        pytest.param([("UPDATE calls SET status_code = 500 WHERE seq = 12", ())], ("calls", 12), id="edit-call-status"),
        pytest.param(
            [("UPDATE calls SET url = '/api/other' WHERE seq = 30", ())], ("calls", 30), id="edit-last-call-url"
        ),
        pytest.param([("DELETE FROM events WHERE seq = 25", ())], ("events", 25), id="delete-middle-event"),
        pytest.param([("DELETE FROM calls WHERE seq = 1", ())], ("calls", 1), id="delete-first-call"),
        pytest.param(
            [
                (
                    "UPDATE events SET (recorded_at, type, version, payload) ="
                    " (SELECT recorded_at, type, version, payload FROM events AS o"
                    "  WHERE o.seq = CASE events.seq WHEN 10 THEN 15 ELSE 10 END)"
                    " WHERE seq IN (10, 15)",
                    (),
                )
            ],
            ("events", 10),
            id="swap-two-rows-contents",
        ),
        pytest.param(
            [
                (
                    "UPDATE events SET (recorded_at, type, version, payload, prev_hash, hash) ="
                    " (SELECT recorded_at, type, version, payload, prev_hash, hash FROM events AS o"
                    "  WHERE o.seq = CASE events.seq WHEN 10 THEN 15 ELSE 10 END)"
                    " WHERE seq IN (10, 15)",
                    (),
                )
            ],
            ("events", 10),
            id="swap-two-rows-with-hashes",
        ),
        pytest.param([("DELETE FROM events WHERE seq >= 46", ())], ("events", 46), id="truncate-last-events"),
        pytest.param([("DELETE FROM calls WHERE seq = 30", ())], ("calls", 30), id="truncate-last-call"),
        pytest.param(
            [("UPDATE chain_heads SET hash = zeroblob(32) WHERE name = 'events'", ())],
            ("events", 50),
            id="edit-head-hash",
        ),
        pytest.param(
            [("UPDATE chain_heads SET seq = 45 WHERE name = 'events'", ())],
            ("events", 46),
            id="edit-head-seq-down",
        ),
        pytest.param(
            [("UPDATE chain_heads SET seq = 52 WHERE name = 'calls'", ())],
            ("calls", 31),
            id="edit-head-seq-up",
        ),
        pytest.param(
            [("UPDATE events SET hash = zeroblob(32) WHERE seq = 30", ())],
            ("events", 30),
            id="edit-stored-hash",
        ),
        pytest.param(
            [("UPDATE events SET prev_hash = zeroblob(32) WHERE seq = 31", ())],
            ("events", 31),
            id="edit-stored-prev-hash",
        ),
        pytest.param(
            [("UPDATE events SET payload = CAST(payload AS TEXT) WHERE seq = 5", ())],
            ("events", 5),
            id="same-bytes-as-text",
        ),
        pytest.param(
            [("UPDATE events SET seq = 1000 WHERE seq = 50", ())],
            ("events", 50),
            id="renumber-last-row",
        ),
    ],
)
def test_single_change_is_found_at_its_seq(
    copy: Path, statements: list[tuple[str, tuple[object, ...]]], expected: tuple[str, int]
) -> None:
    mutate(copy, *statements)
    assert _first(verify(copy)) == expected


def test_forged_row_correctly_chained_is_beyond_the_head(copy: Path) -> None:
    conn = sqlite3.connect(copy)
    try:
        (last_hash,) = conn.execute("SELECT hash FROM events WHERE seq = 50").fetchone()
        payload = b'{"forged":true}'
        digest = chain.link(last_hash, chain.event_bytes(51, TS, "forged", 1, payload))
        conn.execute("INSERT INTO events VALUES (51, ?, 'forged', 1, ?, ?, ?)", (TS, payload, last_hash, digest))
        conn.commit()
    finally:
        conn.close()
    report = verify(copy)
    assert _first(report) == ("events", 51)
    assert "head" in report.problems[0].reason


def test_reasons_never_quote_row_contents(copy: Path) -> None:
    mutate(
        copy,
        ("UPDATE events SET payload = ? WHERE seq = 3", (b'{"who":"pseudonym-secret"}',)),
        ("UPDATE calls SET url = '/api/secret-url' WHERE seq = 4", ()),
    )
    report = verify(copy)
    assert {(p.table, p.seq) for p in report.problems} == {("events", 3), ("calls", 4)}
    for problem in report.problems:
        assert "secret" not in problem.reason and "pseudonym" not in problem.reason


def test_one_edit_is_one_problem(copy: Path) -> None:
    mutate(copy, ("UPDATE events SET type = 'x' WHERE seq = 11", ()))
    assert [(p.table, p.seq) for p in verify(copy).problems] == [("events", 11)]


def test_problems_are_capped(copy: Path) -> None:
    mutate(copy, ("UPDATE events SET type = 'x'", ()))
    report = verify(copy, max_problems=5)
    assert len(report.problems) == 5 and report.truncated and not report.ok
    assert report.first is not None and report.first.seq == 1


def test_verify_refuses_non_logs(tmp_path: Path) -> None:
    with pytest.raises(VerifyError):
        verify(tmp_path / "missing.sqlite3")
    v1 = make_v1(tmp_path / "v1.sqlite3", 2)
    with pytest.raises(VerifyError, match="version 1"):
        verify(v1)


# -- hypothesis: any single column of any single row ---------------------------

_COLUMN_VALUES = {
    "recorded_at": st.text(max_size=40),
    "type": st.text(max_size=20),
    "version": st.integers(-(2**63), 2**63 - 1),
    "payload": st.binary(max_size=64),
    "url": st.text(max_size=40),
    "uuid": st.text(max_size=40),
    "timestamp": st.text(max_size=40),
    "status_code": st.integers(-(2**63), 2**63 - 1),
    "prev_hash": st.binary(max_size=40),
    "hash": st.binary(max_size=40),
    "seq": st.integers(1_000, 2**62),
}
_TABLE_COLUMNS = {
    "events": ("seq", "recorded_at", "type", "version", "payload", "prev_hash", "hash"),
    "calls": ("seq", "url", "uuid", "timestamp", "status_code", "prev_hash", "hash"),
}


@st.composite
def single_change(draw: st.DrawFn) -> tuple[str, int, str, object]:
    table = draw(st.sampled_from(["events", "calls"]))
    seq = draw(st.integers(1, N_EVENTS if table == "events" else N_CALLS))
    column = draw(st.sampled_from(_TABLE_COLUMNS[table]))
    value = draw(_COLUMN_VALUES[column])
    return table, seq, column, value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=single_change())
def test_any_single_cell_change_is_found_at_that_row(original: Path, change: tuple[str, int, str, object]) -> None:
    table, seq, column, value = change
    with tempfile.TemporaryDirectory() as scratch:
        path = copy_db(original, Path(scratch) / "copy.sqlite3")
        conn = sqlite3.connect(path)
        try:
            (old,) = conn.execute(f"SELECT {column} FROM {table} WHERE seq = ?", (seq,)).fetchone()
            assume(old != value)
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE seq = ?", (value, seq))
            conn.commit()
        finally:
            conn.close()
        report = verify(path)
        assert not report.ok
        assert report.first is not None
        assert (report.first.table, report.first.seq) == (table, seq)


# -- v1 -> v2 migration --------------------------------------------------------

_V1_EVENTS = (
    "CREATE TABLE [events] ([seq] INTEGER PRIMARY KEY, [recorded_at] TEXT NOT NULL,"
    " [type] TEXT NOT NULL, [version] INTEGER NOT NULL, [payload] BLOB NOT NULL)"
)
_V1_CALLS = (
    "CREATE TABLE [calls] ([seq] INTEGER PRIMARY KEY, [url] TEXT NOT NULL, [uuid] TEXT NOT NULL,"
    " [timestamp] TEXT NOT NULL, [status_code] INTEGER NOT NULL)"
)


def make_v1(path: Path, n: int) -> Path:
    """A version-1 file exactly as the old code created it (WAL, user_version=1, no hashes)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_V1_EVENTS)
        conn.execute(_V1_CALLS)
        for i in range(1, n + 1):
            conn.execute(
                "INSERT INTO events (recorded_at, type, version, payload) VALUES (?, ?, 1, ?)",
                (TS, f"type-{i}", f'{{"n":{i}}}'.encode()),
            )
            conn.execute(
                "INSERT INTO calls (url, uuid, timestamp, status_code) VALUES (?, ?, ?, 200)",
                (f"/api/{i}", f"uuid-{i}", TS),
            )
        conn.execute("PRAGMA user_version=1")
        conn.commit()
    finally:
        conn.close()
    return path


def test_v1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = make_v1(tmp_path / "old.sqlite3", 2_500)  # more than one migration page
    store = SqliteEventStore(path)
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone() == (3,)  # noqa: SLF001
        events = list(store.events())
        assert len(events) == 2_500
        assert events[41] == StoredEvent(42, TS, "type-42", 1, b'{"n":42}')
        assert store.last_call_seq() == 2_500
        assert store.append_event("after", 1, b"{}", TS) == 2_501
        assert store.append_call("/api/after", "u", TS, 200) == 2_501
        store.commit()
    finally:
        store.close()
    report = verify(path)
    assert report.ok, report.problems[:3]
    assert (report.events_checked, report.calls_checked) == (2_501, 2_501)

    # The migrated chain is exactly the one a fresh v2 store builds for the same rows.
    fresh = SqliteEventStore(tmp_path / "fresh.sqlite3", durability="normal")
    try:
        for i in range(1, 2_501):
            fresh.append_event(f"type-{i}", 1, f'{{"n":{i}}}'.encode(), TS)
        fresh.commit()
        fresh_head = fresh._conn.execute(  # noqa: SLF001
            "SELECT hash FROM events WHERE seq = 2500"
        ).fetchone()
    finally:
        fresh.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT hash FROM events WHERE seq = 2500").fetchone() == fresh_head
        ddl = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        assert set(ddl) == {"events", "calls", "chain_heads", "segments"}
    finally:
        conn.close()


def test_migrating_a_damaged_v1_file_changes_nothing(tmp_path: Path) -> None:
    """The migration is one transaction: if it fails, the file is still a valid v1."""
    path = make_v1(tmp_path / "old.sqlite3", 3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET version = 'not a number' WHERE seq = 2")
    conn.commit()
    conn.close()
    with pytest.raises(TypeError):
        SqliteEventStore(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)
    finally:
        conn.close()


def test_canonical_bytes_are_unambiguous() -> None:
    """Moving bytes between adjacent fields must change the canonical form."""
    a = chain.event_bytes(1, "ab", "c", 1, b"")
    b = chain.event_bytes(1, "a", "bc", 1, b"")
    assert a != b
    assert chain.event_bytes(1, "x", "y", 1, b"z") != chain.call_bytes(1, "x", "y", "z", 1)
    assert chain.event_bytes(1, "é", "t", 1, b"") == chain.event_bytes(1, "é".encode(), b"t", 1, b"")
    expected = (
        b"nhi-console/event/v1\0"
        + (7).to_bytes(8, "big")
        + b"\0\0\0\x02ts"
        + b"\0\0\0\x01t"
        + (-1).to_bytes(8, "big", signed=True)
        + b"\0\0\0\x03abc"
    )
    assert chain.event_bytes(7, "ts", "t", -1, b"abc") == expected
    with pytest.raises(TypeError):
        chain.event_bytes(1, "x", 5, 1, b"")  # type: ignore[arg-type]  # deliberately off-type
    with pytest.raises(TypeError):
        chain.call_bytes(1, "u", "u", "t", True)
