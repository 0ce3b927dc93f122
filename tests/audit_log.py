"""A small day of the log, written through the real store with events encoded as the broker encodes them: the
audit tests' material (tests/unit/test_audit_query.py, test_audit_cli.py, tests/integration/test_datasette_audit.py).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from broker.domain import events as ev
from eventlog.audit_views import INDEXES, VIEWS
from eventlog.sqlite_store import SqliteEventStore

CARD_A = "ref-a"
CARD_B = "ref-b"
NATIVE = "native"
PAGE = "https://his.example"


class Day:
    """Writes a small day into a store: events with their causing calls, at increasing times."""

    def __init__(self, store: SqliteEventStore) -> None:
        self.store = store
        self.minute = 0

    def _at(self) -> str:
        self.minute += 1
        return f"2026-12-01T08:{self.minute:02d}:00+08:00"

    def event(self, event: ev.Event, caused_by: str | None = None) -> None:
        type_name, version, payload = ev.encode(event, caused_by)
        self.store.append_event(type_name, version, payload, self._at())

    def call(self, url: str, uuid: str, status: int, caller: str = NATIVE) -> None:
        self.store.append_call(url, uuid, self._at(), status, caller)


def write_day(store: SqliteEventStore) -> None:
    day = Day(store)
    day.event(ev.ReaderAttached(reader="R1", backend="pcsc"))
    day.event(ev.CorsHostAllowed(host=PAGE), caused_by="u-cors")
    day.call("/api/common/v1/CorsHosts", "u-cors", 0)
    day.event(ev.SessionInitialized(device="cloud", sam_type=1, reader=None), caused_by="u-init")
    day.event(ev.SamVerified(expires_at="2026-12-01T16:00:00+08:00"), caused_by="u-init")
    day.call("/api/common/v1/Initial", "u-init", 0)
    # Card A (a health card): inserted, read twice through two calls from a page, removed.
    day.event(ev.CardInserted(reader="R1", atr="3B", kind="hc", session=1, card_ref=CARD_A))
    day.event(ev.CardDetected(kind="hc", reader="R1", session=1), caused_by="u-read1")
    day.event(ev.CardDataRead(kind="hc", reader="R1", session=1), caused_by="u-read1")
    day.call("/api/hc/v1/Basic", "u-read1", 0, PAGE)
    day.event(ev.CardDataRead(kind="hc", reader="R1", session=1), caused_by="u-read2")
    day.call("/api/hc/v1/Basic", "u-read2", 0, PAGE)
    day.event(ev.CardRemoved(reader="R1", session=1, reason="taken"))
    # Card B (a staff card): a wrong PIN, then the right one.
    day.event(ev.CardInserted(reader="R1", atr="3B", kind="hpc", session=2, card_ref=CARD_B, card_type=1))
    day.event(ev.CardDetected(kind="hpc", reader="R1", session=2), caused_by="u-pin1")
    day.event(ev.CardAuthenticated(kind="hpc", reader="R1", session=2), caused_by="u-pin1")
    day.event(ev.HpcPinRejected(reader="R1", session=2, tries_left=2, blocked=False), caused_by="u-pin1")
    day.call("/api/hpc/v1/Verification", "u-pin1", 2108)
    day.event(ev.HpcPinVerified(reader="R1", session=2, expires_at="2026-12-01T16:00:00+08:00"), caused_by="u-pin2")
    day.call("/api/hpc/v1/Verification", "u-pin2", 0)
    # Refusals, a DC error, a lost worker.
    day.event(ev.CallRefused(url="/api/hc/v1/Basic", caller="https://evil.example", status=403, reason="r"), "u-x1")
    day.event(ev.CallRefused(url="/api/hc/v1/Basic", caller=NATIVE, status=421, reason="r"), "u-x2")
    day.event(ev.SamVerificationFailed(code=1702, reason="dc"), caused_by="u-dc")
    day.call("/api/sam/v1/Verification", "u-dc", 1702)
    day.event(ev.WorkerLost(reader="R1", reason="silent"))
    day.event(ev.CardRemoved(reader="R1", session=2, reason="worker lost"))
    store.commit()


def fingerprint(database: Path) -> dict[str, str]:
    """Every byte of the log: the live file, its WAL's content (a read-only reader of a WAL database may leave an
    empty -wal and a -shm, SQLite's shared-memory index, behind: no data), and every archive."""
    files = [database, *sorted((database.parent / "archive").glob("*.db"))]
    out = {str(item.relative_to(database.parent)): hashlib.sha256(item.read_bytes()).hexdigest() for item in files}
    wal = database.with_name(database.name + "-wal")
    out["wal"] = hashlib.sha256(wal.read_bytes() if wal.exists() else b"").hexdigest()
    return out


def make_v2_archive(archive: Path) -> None:
    """Turn a sealed archive into what a v2 console sealed: no caller column, no audit views or indexes."""
    conn = sqlite3.connect(archive)
    try:
        for name in VIEWS:
            conn.execute(f"DROP VIEW IF EXISTS {name}")
        for statement in INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {statement.split(' IF NOT EXISTS ')[1].split()[0]}")
        conn.execute("ALTER TABLE calls DROP COLUMN caller")
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    finally:
        conn.close()
