"""Growth: sealing old rows into archives keeps the whole history readable and verifiable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog.memory_store import MemoryEventStore
from eventlog.sqlite_store import ArchiveMissingError, SqliteEventStore
from eventlog.verify import verify

TS = "2024-05-23T15:38:00.2514272+08:00"


def _fill(store: SqliteEventStore, events: int, calls: int, start: int = 1) -> None:
    for n in range(start, start + events):
        store.append_event(f"type-{n % 3}", 1, f'{{"n":{n}}}'.encode(), TS)
    for n in range(start, start + calls):
        store.append_call(f"/api/{n}", f"uuid-{n}", TS, 200)
    store.commit()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    s = SqliteEventStore(tmp_path / "events.sqlite3", durability="normal")
    yield s
    s.close()


def _sealed_twice(store: SqliteEventStore, archive: Path) -> None:
    _fill(store, 30, 20)
    first = store.seal(10, 8, archive)
    assert first is not None and first.id == 1
    assert (first.first_event_seq, first.last_event_seq) == (1, 10)
    assert (first.first_call_seq, first.last_call_seq) == (1, 8)
    assert first.file == "archive/segment-000001.db"
    _fill(store, 10, 5, start=31)
    second = store.seal(25, 20, archive)
    assert second is not None and second.id == 2
    assert (second.first_event_seq, second.last_event_seq) == (11, 25)
    assert (second.first_call_seq, second.last_call_seq) == (9, 20)
    _fill(store, 5, 5, start=41)  # events 41..45, calls 26..30 (call seqs continue)


def test_seal_twice_and_keep_appending(store: SqliteEventStore, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    _sealed_twice(store, archive)
    assert [e.seq for e in store.events()] == list(range(1, 46))
    assert [e.seq for e in store.events(after=12)] == list(range(13, 46))
    assert next(e.payload for e in store.events(after=9)) == b'{"n":10}'
    assert [c.seq for c in store.calls_newest_first(0, 100)] == list(range(30, 20, -1))
    assert store.last_call_seq() == 30
    assert sorted(p.name for p in archive.iterdir()) == ["segment-000001.db", "segment-000002.db"]
    live = store._conn.execute("SELECT min(seq), count(*) FROM events").fetchone()  # noqa: SLF001
    assert live == (26, 20)
    report = verify(store.path)
    assert report.ok, report.problems
    assert (report.events_checked, report.calls_checked, report.segments_checked) == (45, 30, 2)


def test_seqs_continue_across_reopen_after_sealing_everything(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    store = SqliteEventStore(path)
    _fill(store, 5, 3)
    assert store.seal(100, 100, tmp_path / "a") is not None
    assert store.calls_newest_first(0, 10) == []
    assert store.last_call_seq() == 3  # never backwards
    store.close()
    store = SqliteEventStore(path)
    try:
        assert store.last_call_seq() == 3
        assert store.append_event("t", 1, b"{}", TS) == 6
        assert store.append_call("/api/x", "u", TS, 200) == 4
        store.commit()
        assert [e.seq for e in store.events()] == [1, 2, 3, 4, 5, 6]
    finally:
        store.close()
    assert verify(path).ok


def test_seal_commits_pending_work_and_nothing_to_seal_is_none(store: SqliteEventStore, tmp_path: Path) -> None:
    assert store.seal(10, 10, tmp_path / "a") is None
    store.append_event("t", 1, b"{}", TS)  # pending
    info = store.seal(1, 0, tmp_path / "a")
    assert info is not None and info.last_event_seq == 1 and info.first_call_seq is None
    assert store.seal(1, 0, tmp_path / "a") is None  # already sealed
    assert verify(store.path).ok


def test_tampering_inside_an_archive_is_reported(store: SqliteEventStore, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    _sealed_twice(store, archive)
    conn = sqlite3.connect(archive / "segment-000002.db")
    conn.execute("UPDATE events SET payload = x'7b7d' WHERE seq = 17")
    conn.execute("UPDATE calls SET status_code = 404 WHERE seq = 11")
    conn.commit()
    conn.close()
    report = verify(store.path)
    assert [(p.table, p.seq) for p in report.problems] == [("events", 17), ("calls", 11)]
    assert report.first is not None and (report.first.table, report.first.seq) == ("calls", 11)


def test_deleting_a_row_at_the_end_of_an_archive_is_reported(store: SqliteEventStore, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    _sealed_twice(store, archive)
    conn = sqlite3.connect(archive / "segment-000001.db")
    conn.execute("DELETE FROM events WHERE seq = 10")
    conn.commit()
    conn.close()
    report = verify(store.path)
    assert report.first is not None and (report.first.table, report.first.seq) == ("events", 10)


def test_editing_a_segments_recorded_hash_is_reported(store: SqliteEventStore, tmp_path: Path) -> None:
    _sealed_twice(store, tmp_path / "archive")
    store.close()
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE segments SET last_event_hash = zeroblob(32) WHERE id = 1")
    conn.commit()
    conn.close()
    report = verify(store.path)
    assert report.first is not None and (report.first.table, report.first.seq) == ("events", 10)


def test_deleted_archive_file_is_reported(store: SqliteEventStore, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    _sealed_twice(store, archive)
    (archive / "segment-000001.db").unlink()
    report = verify(store.path)
    assert {(p.table, p.seq) for p in report.problems} == {("events", 1), ("calls", 1)}
    assert all("segment 1" in p.reason for p in report.problems)
    with pytest.raises(ArchiveMissingError):
        list(store.events())


def test_crash_between_archive_and_live_delete(store: SqliteEventStore, tmp_path: Path) -> None:
    """Step 1 done, step 2 never ran: an unlisted archive, rows still live."""
    archive = tmp_path / "archive"
    _fill(store, 20, 10)
    plan = store._plan_segment(12, 6)  # noqa: SLF001
    assert plan is not None
    written = store._write_archive(plan, archive)  # noqa: SLF001
    assert written.is_file()
    assert [e.seq for e in store.events()] == list(range(1, 21))
    assert verify(store.path).ok
    # The next seal (after a restart, say) redoes the work under the same id.
    info = store.seal(12, 6, archive)
    assert info is not None and info.id == 1 and info.last_event_seq == 12
    assert [e.seq for e in store.events()] == list(range(1, 21))
    assert verify(store.path).ok


def test_segment_registered_but_live_rows_kept(store: SqliteEventStore, tmp_path: Path) -> None:
    """Rows in both places (e.g. restored from a backup): read once, verified against the archive."""
    archive = tmp_path / "archive"
    _fill(store, 20, 10)
    plan = store._plan_segment(12, 6)  # noqa: SLF001
    assert plan is not None
    path = store._write_archive(plan, archive)  # noqa: SLF001
    store._register_segment(plan, path)  # noqa: SLF001
    conn = store._conn  # noqa: SLF001
    # Put the moved rows back into the live database, as an interrupted step 2 would leave them.
    conn.execute("ATTACH DATABASE ? AS arc", (str(path),))
    conn.execute("INSERT INTO main.events SELECT * FROM arc.events")
    conn.execute("INSERT INTO main.calls SELECT * FROM arc.calls")
    conn.execute("DETACH DATABASE arc")
    assert [e.seq for e in store.events()] == list(range(1, 21))
    assert verify(store.path).ok
    # A live leftover that differs from its archived copy is a problem.
    conn.execute("UPDATE events SET type = 'changed' WHERE seq = 4")
    report = verify(store.path)
    assert [(p.table, p.seq) for p in report.problems] == [("events", 4)]
    conn.execute("UPDATE events SET type = (SELECT type FROM events WHERE seq = 5) WHERE seq = 4")
    # A later seal moves only what is not archived yet, and first deletes the leftovers (an interrupted
    # seal's chunked deletes leave them, issue 19).
    info = store.seal(15, 6, archive)
    assert info is not None and (info.first_event_seq, info.last_event_seq) == (13, 15)
    assert info.first_call_seq is None
    assert [e.seq for e in store.events()] == list(range(1, 21))
    assert conn.execute("SELECT min(seq) FROM events").fetchone() == (16,)
    assert conn.execute("SELECT min(seq) FROM calls").fetchone() == (7,)
    assert verify(store.path).ok


def test_seal_due_size_rule(store: SqliteEventStore) -> None:
    assert store.seal_due(10, None) is None
    _fill(store, 10, 3)
    assert store.seal_due(10, None) is None  # at the limit, not past it
    _fill(store, 1, 0, start=11)
    # 11 live events > 10: keep the newest 5, seal through 6; calls are within bounds.
    assert store.seal_due(10, None) == (6, 0)
    _fill(store, 0, 9)
    assert store.seal_due(10, None) == (6, 7)
    with pytest.raises(ValueError):
        store.seal_due(0, None)


def test_seal_due_after_sealing_counts_only_live_rows(store: SqliteEventStore, tmp_path: Path) -> None:
    _fill(store, 12, 0)
    due = store.seal_due(10, None)
    assert due == (7, 0)
    store.seal(*due, tmp_path / "a")
    assert store.seal_due(10, None) is None
    _fill(store, 6, 0, start=13)  # live 8..18 = 11 rows
    assert store.seal_due(10, None) == (13, 0)


def test_seal_due_age_rule(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "e.sqlite3", durability="normal")
    try:
        hour = 3600 * 10**9
        base = 1_700_000_000 * 10**9
        # Events at base + 0h, 1h, ..., 9h (UTC and +08:00 offsets mixed).
        for h in range(10):
            stamp = f"2023-11-14T{22 + h - 24 if h >= 2 else 22 + h:02d}:13:20.0000000+00:00"
            if h >= 2:
                stamp = f"2023-11-15T{h - 2 + 8:02d}:13:20.1234567+08:00"
            store.append_event("t", 1, b"{}", stamp)
        store.append_call("/api/x", "u", "not a timestamp", 200)
        store.commit()
        now = base + 10 * hour
        assert store.seal_due(None, 11 * 3600, now) is None  # oldest is 10 h old
        # Oldest is 10 h > 8 h: seal everything older than 4 h (events at 0h..5h).
        assert store.seal_due(None, 8 * 3600, now) == (6, 0)
        # Size and age together: the larger bound wins.
        assert store.seal_due(4, 8 * 3600, now) == (8, 0)
    finally:
        store.close()


def test_memory_store_does_not_seal(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError):
        MemoryEventStore().seal(1, 1, tmp_path)
