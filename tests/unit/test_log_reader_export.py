"""The read-only audit surface: LogReader across archives, while the console writes; exports."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from eventlog.export import write_csv, write_jsonl
from eventlog.reader import LogReader
from eventlog.sqlite_store import SqliteEventStore, parse_timestamp
from eventlog.store import CallRecord, StoredEvent

TAIPEI = timezone(timedelta(hours=8))


def stamp(minute: int) -> str:
    """Minute `minute` after 2024-05-23 15:00 Taipei, in the console's 7-digit shape."""
    moment = datetime(2024, 5, 23, 15, 0, tzinfo=TAIPEI) + timedelta(minutes=minute)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".2514272+08:00"


def at(minute: int) -> datetime:
    return datetime(2024, 5, 23, 15, 0, tzinfo=TAIPEI) + timedelta(minutes=minute)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventStore]:
    """40 events (minute n, type by n % 3) and 20 calls, events 1..15 / calls 1..8 sealed."""
    store = SqliteEventStore(tmp_path / "events.sqlite3", durability="normal")
    for n in range(1, 41):
        store.append_event(f"type-{n % 3}", 1, json.dumps({"n": n, "名": "健保"}).encode(), stamp(n))
    for n in range(1, 21):
        store.append_call(f"/api/{n}?q=a,b", f"uuid-{n}", stamp(n), 200 + n % 2)
    store.commit()
    assert store.seal(15, 8, Path(tmp_path / "archive")) is not None
    yield store
    store.close()


def test_reader_reads_everything_across_the_boundary(log: SqliteEventStore) -> None:
    with LogReader(log.path) as reader:
        assert [e.seq for e in reader.events()] == list(range(1, 41))
        assert list(reader.events()) == list(log.events())
        assert [c.seq for c in reader.calls()] == list(range(1, 21))
        assert [e.seq for e in reader.events(after=14)] == list(range(15, 41))


def test_reader_filters(log: SqliteEventStore) -> None:
    with LogReader(log.path) as reader:
        window = [e.seq for e in reader.events(since=at(10), until=at(20))]
        assert window == list(range(10, 20))  # since inclusive, until exclusive, crosses seq 15
        # The same instant in another offset selects the same rows.
        utc = [e.seq for e in reader.events(since=at(10).astimezone(UTC), until=at(20))]
        assert utc == window
        assert [e.seq for e in reader.events(types=["type-0"])] == list(range(3, 41, 3))
        both = reader.events(since=at(12), until=at(31), types=["type-1", "type-2"])
        assert [e.seq for e in both] == [n for n in range(12, 31) if n % 3]
        assert list(reader.events(types=[])) == []
        assert [c.seq for c in reader.calls(since=at(7), until=at(10))] == [7, 8, 9]
        with pytest.raises(ValueError):
            list(reader.events(since=datetime(2024, 1, 1)))


def test_reader_sees_committed_data_only_while_the_writer_appends(log: SqliteEventStore) -> None:
    reader = LogReader(log.path)
    try:
        log.append_event("pending", 1, b"{}", stamp(99))
        assert [e.seq for e in reader.events()][-1] == 40
        iterator = reader.events(after=38)
        assert next(iterator).seq == 39
        log.commit()
        # A streaming read catches up with what was committed meanwhile.
        assert [e.seq for e in iterator] == [40, 41]
        with pytest.raises(sqlite3.OperationalError):
            reader._conn.execute("DELETE FROM events")  # noqa: SLF001  # read-only URI
    finally:
        reader.close()


def test_reader_survives_a_seal_during_iteration(
    log: SqliteEventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventlog.sqlite_store

    monkeypatch.setattr(eventlog.sqlite_store, "PAGE_SIZE", 2)  # so the seal lands between pages
    with LogReader(log.path) as reader:
        seen: list[int] = []
        for event in reader.events():
            seen.append(event.seq)
            if event.seq == 16:  # now reading live rows: the writer seals the next ones
                assert log.seal(30, 12, tmp_path / "archive") is not None
        assert seen == list(range(1, 41))


def test_reader_reads_a_log_left_by_an_interrupted_seal_once(log: SqliteEventStore, tmp_path: Path) -> None:
    plan = log._plan_segment(25, 12)  # noqa: SLF001
    assert plan is not None
    path = log._write_archive(plan, tmp_path / "archive")  # noqa: SLF001
    log._register_segment(plan, path)  # noqa: SLF001
    log._conn.execute("ATTACH DATABASE ? AS arc", (str(path),))  # noqa: SLF001
    log._conn.execute("INSERT INTO main.events SELECT * FROM arc.events")  # noqa: SLF001
    log._conn.execute("DETACH DATABASE arc")  # noqa: SLF001
    with LogReader(log.path) as reader:
        assert [e.seq for e in reader.events()] == list(range(1, 41))
        assert reader.stats().event_count == 40


def test_stats(log: SqliteEventStore) -> None:
    with LogReader(log.path) as reader:
        stats = reader.stats()
    assert stats.event_count == 40
    assert stats.events_by_type == {"type-0": 13, "type-1": 14, "type-2": 13}
    assert stats.call_count == 20
    assert stats.first_event_at == stamp(1)
    assert stats.last_event_at == stamp(40)
    assert [(s.id, s.first_event_seq, s.last_event_seq, s.first_call_seq, s.last_call_seq) for s in stats.segments] == [
        (1, 1, 15, 1, 8)
    ]
    assert str(log.path) in stats.file_sizes
    assert any(name.endswith("segment-000001.db") for name in stats.file_sizes)
    assert all(size > 0 for size in stats.file_sizes.values())


def test_stats_of_an_empty_log(tmp_path: Path) -> None:
    SqliteEventStore(tmp_path / "e.sqlite3").close()
    with LogReader(tmp_path / "e.sqlite3") as reader:
        stats = reader.stats()
    assert (stats.event_count, stats.call_count, stats.first_event_at, stats.segments) == (0, 0, None, [])


def test_jsonl_round_trip(log: SqliteEventStore) -> None:
    out = io.StringIO()
    ticks: list[int] = []
    with LogReader(log.path) as reader:
        assert write_jsonl(reader.events(), out, progress=ticks.append, every=16) == 40
        events = list(reader.events())
    assert ticks == [16, 32, 40]
    lines = out.getvalue().splitlines()
    assert len(lines) == 40
    for line, event in zip(lines, events, strict=True):
        record = json.loads(line)
        assert record == {
            "seq": event.seq,
            "recorded_at": event.recorded_at,
            "type": event.type,
            "version": event.version,
            "payload": json.loads(event.payload),
        }
    calls_out = io.StringIO()
    with LogReader(log.path) as reader:
        assert write_jsonl(reader.calls(), calls_out) == 20
    first = json.loads(calls_out.getvalue().splitlines()[0])
    assert {key: value for key, value in first.items() if key != "caller"} == {
        "seq": 1,
        "url": "/api/1?q=a,b",
        "uuid": "uuid-1",
        "timestamp": stamp(1),
        "statusCode": 201,
    }
    assert first.pop("caller", "absent") is None  # a call written without a caller


def test_csv_round_trip(log: SqliteEventStore) -> None:
    with LogReader(log.path) as reader:
        events = list(reader.events())
        calls = list(reader.calls())
    out = io.StringIO(newline="")
    assert write_csv(events, out) == 40
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    back = [
        StoredEvent(int(r["seq"]), r["recorded_at"], r["type"], int(r["version"]), r["payload"].encode()) for r in rows
    ]
    assert back == events
    out = io.StringIO(newline="")
    assert write_csv(calls, out) == 20
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert list(rows[0]) == ["seq", "url", "uuid", "timestamp", "statusCode", "caller"]
    back_calls = [
        CallRecord(int(r["seq"]), r["url"], r["uuid"], r["timestamp"], int(r["statusCode"]), r["caller"] or None)
        for r in rows
    ]
    assert back_calls == calls


def test_exports_keep_non_json_payloads_exactly() -> None:
    events = [StoredEvent(1, "t", "x", 1, b"\xff\x00not json")]
    out = io.StringIO()
    write_jsonl(events, out)
    record = json.loads(out.getvalue())
    assert record["payload"] is None
    import base64

    assert base64.b64decode(record["payload_base64"]) == b"\xff\x00not json"
    with pytest.raises(TypeError):
        write_csv([*events, CallRecord(1, "u", "u", "t", 200)], io.StringIO())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-23T15:38:00.2514272+08:00", datetime(2024, 5, 23, 15, 38, 0, 251427, tzinfo=TAIPEI)),
        ("2024-05-23T07:38:00Z", datetime(2024, 5, 23, 7, 38, tzinfo=UTC)),
        ("2024-05-23T15:38:00.5+08:00", datetime(2024, 5, 23, 15, 38, 0, 500000, tzinfo=TAIPEI)),
        ("2024-05-23T15:38:00", None),  # naive: not comparable
        ("t", None),
        ("", None),
    ],
)
def test_parse_timestamp(text: str, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_calls_after_a_seq_skips_the_older_ones(tmp_path: Path) -> None:
    """What `log tail -f --calls` relies on to read only what is new."""
    from eventlog.reader import LogReader
    from eventlog.sqlite_store import SqliteEventStore

    store = SqliteEventStore(tmp_path / "log.db")
    for index in range(5):
        store.append_call("/api/common/v1/Status", f"u-{index}", "2026-11-23T12:00:00.0000000+08:00", 0)
    store.commit()
    store.close()
    with LogReader(tmp_path / "log.db") as reader:
        assert [call.seq for call in reader.calls(after=3)] == [4, 5]
