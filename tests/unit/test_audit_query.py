"""The audit views and the read-only query surface (eventlog/audit_views.py, eventlog/audit_query.py).

A log is written through the real SQLite store with events encoded as the broker encodes them; each view's
rows are then compared with what was written, counted by hand. The refusal tests hash the live file and its
WAL before and after: a refused statement changes no byte.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog.audit_query import ATTACH_LIMIT, AuditQuery, QueryRefused
from eventlog.audit_views import VIEWS
from eventlog.sqlite_store import SqliteEventStore
from tests.audit_log import CARD_A, CARD_B, NATIVE, PAGE, fingerprint, make_v2_archive, write_day


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    write_day(store)
    store.close()
    yield path


def test_card_sessions_follow_each_insertion(log: Path) -> None:
    with AuditQuery(log) as surface:
        rows = list(surface.rows("SELECT * FROM card_sessions ORDER BY inserted_seq"))
    assert [(r["card_ref"], r["kind"], r["session"]) for r in rows] == [(CARD_A, "hc", 1), (CARD_B, "hpc", 2)]
    a, b = rows
    assert (a["level_reached"], a["reads"], a["pin_failures"], a["calls"], a["removal_reason"]) == (1, 2, 0, 2, "taken")
    assert (b["level_reached"], b["reads"], b["pin_failures"], b["calls"], b["card_type"]) == (3, 0, 1, 2, 1)
    assert b["removal_reason"] == "worker lost"


def test_pin_attempts_name_card_call_and_caller(log: Path) -> None:
    with AuditQuery(log) as surface:
        rows = list(surface.rows("SELECT * FROM pin_attempts ORDER BY seq"))
    assert [(r["card"], r["secret"], r["outcome"], r["tries_left"], r["card_ref"], r["caused_by"]) for r in rows] == [
        ("hpc", "PIN", "rejected", 2, CARD_B, "u-pin1"),
        ("hpc", "PIN", "verified", None, CARD_B, "u-pin2"),
    ]
    assert {r["caller"] for r in rows} == {NATIVE}
    assert {r["day"] for r in rows} == {"2026-12-01"}


def test_sam_settings_refusals_faults_and_touches(log: Path) -> None:
    with AuditQuery(log) as surface:
        sam = list(surface.rows("SELECT * FROM sam_sessions"))
        settings = list(surface.rows("SELECT setting, change, value, caller FROM settings_changes"))
        refusals = list(surface.rows("SELECT status, caller, url FROM refusals ORDER BY seq"))
        faults = list(surface.rows("SELECT kind, code, url, reader FROM faults ORDER BY recorded_at"))
        touches = surface.query(
            "SELECT DISTINCT c.uuid, c.caller FROM calls c JOIN call_touches t ON t.call_uuid = c.uuid"
            " JOIN card_sessions s ON s.reader = t.reader AND s.session = t.session"
            " WHERE s.card_ref = ? ORDER BY c.seq",
            (CARD_A,),
        ).rows
    assert [(r["device"], r["sam_type"], r["verifications"], r["verification_failures"]) for r in sam] == [
        ("cloud", 1, 1, 1)
    ]
    assert settings == [{"setting": "cors", "change": "CorsHostAllowed", "value": PAGE, "caller": NATIVE}]
    assert refusals == [
        {"status": 403, "caller": "https://evil.example", "url": "/api/hc/v1/Basic"},
        {"status": 421, "caller": NATIVE, "url": "/api/hc/v1/Basic"},
    ]
    assert [(r["kind"], r["code"]) for r in faults] == [
        ("authentication_failed", 1702),
        ("dc_error", 1702),
        ("worker_lost", None),
    ]
    assert touches == [("u-read1", PAGE), ("u-read2", PAGE)]


def test_every_view_is_documented_and_in_the_file_itself(log: Path) -> None:
    """The migration created the views in the live file: the sqlite3 shell sees the same names."""
    conn = sqlite3.connect(log)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
        assert names == set(VIEWS)
        for name in VIEWS:
            conn.execute(f"SELECT * FROM {name}").fetchall()
    finally:
        conn.close()
    assert all(view.description.strip() for view in VIEWS.values())


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM live.events",
        "DELETE FROM events",
        "UPDATE live.calls SET status_code = 0",
        "INSERT INTO live.calls (url, uuid, timestamp, status_code, prev_hash, hash) VALUES ('a','b','c',0,x'',x'')",
        "ATTACH DATABASE '/tmp/other.db' AS other",
        "DETACH DATABASE live",
        "PRAGMA writable_schema = ON",
        "PRAGMA live.journal_mode = DELETE",
        "PRAGMA query_only = 0",
        "CREATE TABLE t (x)",
        "CREATE TEMP TABLE t (x)",
        "DROP VIEW card_sessions",
        "DROP TABLE live.events",
        "ALTER TABLE live.calls ADD COLUMN x",
        "VACUUM",
        "VACUUM INTO '/tmp/copy.db'",
        "BEGIN",
        "SELECT 1; DELETE FROM live.events",
        "REINDEX",
        "ANALYZE",
        "SELECT load_extension('x')",
        "not sql at all",
    ],
)
def test_query_refuses_anything_but_a_read(log: Path, statement: str) -> None:
    before = fingerprint(log)
    with AuditQuery(log) as surface:
        with pytest.raises(QueryRefused):
            surface.query(statement)
        # The surface still answers afterwards.
        assert surface.query("SELECT count(*) FROM events").rows[0][0] > 0
    assert fingerprint(log) == before


def test_query_reads_archives_and_live_together(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    write_day(store)
    first_half = store.last_event_seq() // 2
    assert store.seal(first_half, store.last_call_seq() // 2, tmp_path / "archive") is not None
    write_day(store)
    total_events, total_calls = store.last_event_seq(), store.last_call_seq()
    store.close()
    with AuditQuery(path) as surface:
        assert surface.query("SELECT count(*), min(seq), max(seq) FROM events").rows == [
            (total_events, 1, total_events)
        ]
        assert surface.query("SELECT count(*) FROM calls").rows == [(total_calls,)]
        assert surface.query("SELECT count(*) FROM card_sessions WHERE card_ref = ?", (CARD_A,)).rows == [(2,)]
        # The first day's session 1 spans the seal (inserted in the archive, removed live): one row, both ends.
        rows = list(surface.rows("SELECT * FROM card_sessions WHERE card_ref = ? ORDER BY inserted_seq", (CARD_A,)))
        assert all(row["removed_at"] is not None for row in rows)


def a_sealed_day(tmp_path: Path) -> tuple[Path, Path]:
    """A log whose one day is all sealed: (the live log, its archive)."""
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    write_day(store)
    segment = store.seal(store.last_event_seq(), store.last_call_seq(), tmp_path / "archive")
    assert segment is not None
    store.close()
    return path, tmp_path / segment.file


def test_a_v2_archive_reads_with_no_caller(tmp_path: Path) -> None:
    """Calls recorded before callers were kept (schema v2) answer NULL as their caller."""
    path, archive = a_sealed_day(tmp_path)
    make_v2_archive(archive)
    with AuditQuery(path) as surface:
        callers = {row[0] for row in surface.query("SELECT caller FROM calls").rows}
        assert callers == {None}
        assert surface.query("SELECT count(*) FROM pin_attempts WHERE caller IS NULL").rows == [(2,)]


def test_more_archives_than_sqlite_attaches(tmp_path: Path) -> None:
    """Past SQLite's attach limit the oldest archives are merged into one temporary file: the same answers."""
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    for _ in range(ATTACH_LIMIT + 2):
        write_day(store)
        assert store.seal(store.last_event_seq(), store.last_call_seq(), tmp_path / "archive") is not None
    write_day(store)
    total_events = store.last_event_seq()
    assert len(store.segments()) == ATTACH_LIMIT + 2
    store.close()
    before = fingerprint(path)
    with AuditQuery(path) as surface:
        assert surface.query("SELECT count(*), count(DISTINCT seq) FROM events").rows == [(total_events, total_events)]
        assert surface.query("SELECT count(*) FROM card_sessions WHERE card_ref = ?", (CARD_B,)).rows == [
            (ATTACH_LIMIT + 3,)
        ]
    assert fingerprint(path) == before


def test_a_missing_archive_is_named(tmp_path: Path) -> None:
    path, archive = a_sealed_day(tmp_path)
    archive.unlink()
    with pytest.raises(FileNotFoundError, match="sealed archive missing"):
        AuditQuery(path)
