"""The durable event store: one SQLite file in WAL mode, written by the broker alone.

Why SQLite in WAL mode: the broker is the only writer, but operators' tools
(and the audit surface) open the same file read-only while the console runs;
in WAL mode those readers never block the writer and never see a half-written
transaction.

Why explicit transactions: the broker groups many appends into one `commit()`
(one fsync per batch, not per request), so the connection runs in autocommit
mode and this class issues `BEGIN IMMEDIATE` itself, lazily, on the first
append after a commit.

About sequence numbers: `seq` is the table's INTEGER PRIMARY KEY (the rowid),
deliberately without AUTOINCREMENT. After a rollback or a crash before
`commit()`, SQLite may hand out the same seq again (max(seq) + 1). That is
safe: uncommitted rows never became visible to any reader and no answer that
quoted them was ever sent (the broker answers only after `commit()`), so a
reused number never names two different things anyone saw.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final, Iterator

import sqlite_utils

from eventlog.store import CallRecord, StoredEvent

SCHEMA_VERSION: Final = 1
"""Stored in `PRAGMA user_version`, so a later migration knows what it is looking at."""

# Pragmas take no bound parameters, so their values are spelled out here as
# literals rather than interpolated.
_SET_BUSY_TIMEOUT: Final = "PRAGMA busy_timeout=5000"
"""Wait up to 5 s for a lock held by another connection (a reader's checkpoint, a stray writer)."""

_SET_SCHEMA_VERSION: Final = "PRAGMA user_version=1"
assert _SET_SCHEMA_VERSION.endswith(f"={SCHEMA_VERSION}"), "keep in step with SCHEMA_VERSION"

PAGE_SIZE: Final = 1_000
"""Rows fetched per query when streaming events: bounds memory during replay."""

_SYNCHRONOUS: Final[dict[str, str]] = {
    # FULL: the WAL is fsynced at every commit, so a commit survives power loss.
    "full": "PRAGMA synchronous=FULL",
    # NORMAL: a commit survives the process dying but may be lost on power loss
    # (the WAL is only synced at checkpoints); the database never corrupts.
    "normal": "PRAGMA synchronous=NORMAL",
}

_INSERT_EVENT: Final = "INSERT INTO events (recorded_at, type, version, payload) VALUES (?, ?, ?, ?)"
_INSERT_CALL: Final = "INSERT INTO calls (url, uuid, timestamp, status_code) VALUES (?, ?, ?, ?)"
_SELECT_EVENTS_PAGE: Final = (
    "SELECT seq, recorded_at, type, version, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
)
_SELECT_CALLS_NEWEST: Final = (
    "SELECT seq, url, uuid, timestamp, status_code FROM calls"
    " WHERE seq > ? ORDER BY seq DESC LIMIT ? OFFSET ?"
)
_SELECT_LAST_CALL_SEQ: Final = "SELECT max(seq) FROM calls"


class SqliteEventStore:
    """`EventStore` on one SQLite file; see the module docstring for the durability model.

    Not thread-safe: the broker owns it from a single thread (sqlite3's default
    same-thread check stays on to catch mistakes).
    """

    def __init__(self, path: str | Path, durability: str = "full") -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        self.path: Final = Path(path)
        self.durability: Final = durability
        self._closed = False
        # isolation_level=None: the sqlite3 module must not open transactions
        # behind our back; we BEGIN and COMMIT ourselves.
        conn = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            conn.execute(_SET_BUSY_TIMEOUT)
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() != "wal":
                # e.g. ":memory:" or a filesystem without shared memory: readers
                # would block the writer, which the deployment relies on not happening.
                raise RuntimeError(f"{self.path}: could not enable WAL mode (journal_mode={mode})")
            conn.execute(_SYNCHRONOUS[durability])
            _ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._conn: Final = conn

    # -- appends (the hot path: one prepared-statement execute each) ---------

    def append_event(self, type: str, version: int, payload: bytes, recorded_at: str) -> int:
        """Append to the open transaction; the seq is final once `commit()` returns."""
        _check_payload(payload)
        conn = self._conn
        if not conn.in_transaction:
            # IMMEDIATE: take the write lock now rather than on first write, so a
            # lock conflict surfaces here (after busy_timeout), never mid-batch.
            conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(_INSERT_EVENT, (recorded_at, type, version, payload))
        return _rowid(cursor)

    def append_call(self, url: str, uuid: str, timestamp: str, status_code: int) -> int:
        """Append to the open transaction; the seq is final once `commit()` returns."""
        conn = self._conn
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(_INSERT_CALL, (url, uuid, timestamp, status_code))
        return _rowid(cursor)

    def commit(self) -> None:
        """One COMMIT (one WAL fsync under durability "full") for the whole batch; no-op if idle."""
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    # -- queries (see pending appends: same connection, same transaction) ----

    def events(self, after: int = 0) -> Iterator[StoredEvent]:
        """Stream by keyset pagination so replaying millions of events uses constant memory.

        No cursor stays open between pages, so the caller may append and commit
        while iterating. Iteration ends at the first empty page: events appended
        before that point (including during iteration) are yielded, which makes
        this a "catch up" read rather than a snapshot.
        """
        last = after
        while True:
            rows = self._conn.execute(_SELECT_EVENTS_PAGE, (last, PAGE_SIZE)).fetchall()
            if not rows:
                return
            for seq, recorded_at, type_, version, payload in rows:
                yield StoredEvent(seq, recorded_at, type_, version, payload)
            last = rows[-1][0]

    def calls_newest_first(self, skip: int, take: int, after_seq: int = 0) -> list[CallRecord]:
        """Walk the primary key backwards so a page near the newest end is cheap."""
        _check_window(skip, take)
        if take == 0:
            return []
        rows = self._conn.execute(_SELECT_CALLS_NEWEST, (after_seq, take, skip)).fetchall()
        return [CallRecord(*row) for row in rows]

    def last_call_seq(self) -> int:
        """max() over the primary key is an index lookup, not a scan."""
        (seq,) = self._conn.execute(_SELECT_LAST_CALL_SEQ).fetchone()
        return int(seq) if seq is not None else 0

    def close(self) -> None:
        """Roll back anything not yet committed, then close; idempotent.

        Deliberately no implicit commit: only the broker knows when a batch is
        complete, and committing half a batch on shutdown would make durable
        work whose answers were never sent.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        finally:
            self._conn.close()


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """Create (idempotently) the version-1 schema, refusing files from a newer version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"event store schema version {version} is newer than this code ({SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        # Steady state: no writes at all, so opening never waits for a lock.
        return
    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    with db.atomic():
        db["events"].create(
            {"seq": int, "recorded_at": str, "type": str, "version": int, "payload": bytes},
            pk="seq",
            not_null=["recorded_at", "type", "version", "payload"],
            if_not_exists=True,
        )
        db["calls"].create(
            {"seq": int, "url": str, "uuid": str, "timestamp": str, "status_code": int},
            pk="seq",
            not_null=["url", "uuid", "timestamp", "status_code"],
            if_not_exists=True,
        )
        conn.execute(_SET_SCHEMA_VERSION)


def _rowid(cursor: sqlite3.Cursor) -> int:
    seq = cursor.lastrowid
    assert seq is not None, "an INSERT always sets lastrowid"
    return seq


def _check_payload(payload: bytes) -> None:
    """A str payload would be stored as TEXT and come back as str: refuse it up front."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")


def _check_window(skip: int, take: int) -> None:
    """SQLite treats a negative LIMIT as "no limit": refuse instead of returning everything."""
    if skip < 0 or take < 0:
        raise ValueError(f"skip and take must be >= 0 (skip={skip}, take={take})")
