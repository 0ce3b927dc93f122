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

Tamper evidence (schema v2): every row carries `prev_hash` and `hash`
(eventlog/chain.py), and `chain_heads` records the last seq and hash of each
chain, updated in the same transaction as the appends. The heads are kept in
memory so an append costs one SHA-256 of a few hundred bytes, not a query.

Growth: `seal()` moves old rows to archive files (a "segment"), recorded in
`segments` with the hash they end on; `events()` still reads the whole history
(archives first, then live), the Record API (`calls_newest_first`) only the
live part. docs/sqlite-schema.md describes all of it for outside tools.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from eventlog import chain
from eventlog.audit_views import ARCHIVE_STATEMENTS, LIVE_STATEMENTS
from eventlog.durable_files import fsync_directory, fsync_file
from eventlog.store import CallRecord, SegmentInfo, StoredEvent, StoreMark, StoreWriteError
from eventlog.timestamps import format_record_timestamp

SCHEMA_VERSION: Final = 3
"""Stored in `PRAGMA user_version`, so a later migration knows what it is looking at.

v1: the two tables; v2: their hash chains, chain heads and segments; v3: the caller of each call
(`calls.caller`), and the audit views and indexes (eventlog/audit_views.py)."""

READABLE_VERSIONS: Final = (2, 3)
"""What a reader (`log`, verify, an archive) accepts: a v2 file has no `calls.caller` (read as NULL); a v1
file has no chain and must be opened by the console once to be migrated."""

# Pragmas take no bound parameters, so their values are spelled out here as
# literals rather than interpolated.
_SET_BUSY_TIMEOUT: Final = "PRAGMA busy_timeout=5000"
"""Wait up to 5 s for a lock held by another connection (a reader's checkpoint, a stray writer)."""

_SET_SCHEMA_VERSION: Final = "PRAGMA user_version=3"
assert _SET_SCHEMA_VERSION.endswith(f"={SCHEMA_VERSION}"), "keep in step with SCHEMA_VERSION"

PAGE_SIZE: Final = 1_000
"""Rows fetched per query when streaming events: bounds memory during replay."""

DELETE_CHUNK: Final = 2_000
"""Live rows a seal deletes per transaction: each holds the write lock for a few milliseconds only, so the
broker's own commits (which wait for that lock) are never held up long while a large seal runs."""

_SYNCHRONOUS: Final[dict[str, str]] = {
    # FULL: the WAL is fsynced at every commit, so a commit survives power loss.
    "full": "PRAGMA synchronous=FULL",
    # NORMAL: a commit survives the process dying but may be lost on power loss
    # (the WAL is only synced at checkpoints); the database never corrupts.
    "normal": "PRAGMA synchronous=NORMAL",
}

Table = Literal["events", "calls"]
TABLES: Final[tuple[Table, Table]] = ("events", "calls")

# Explicit DDL (not generated) so docs/sqlite-schema.md can quote it and the
# archives are guaranteed to have exactly the live layout.
EVENTS_DDL: Final = (
    "CREATE TABLE events ("
    "seq INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, type TEXT NOT NULL,"
    " version INTEGER NOT NULL, payload BLOB NOT NULL,"
    " prev_hash BLOB NOT NULL, hash BLOB NOT NULL)"
)
CALLS_DDL: Final = (
    "CREATE TABLE calls ("
    "seq INTEGER PRIMARY KEY, url TEXT NOT NULL, uuid TEXT NOT NULL,"
    " timestamp TEXT NOT NULL, status_code INTEGER NOT NULL,"
    " prev_hash BLOB NOT NULL, hash BLOB NOT NULL)"
)
CHAIN_HEADS_DDL: Final = "CREATE TABLE chain_heads (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL)"
ADD_CALLER_DDL: Final = "ALTER TABLE calls ADD COLUMN caller TEXT"
"""Schema v3: who made each call (see CallRecord.caller); NULL in rows recorded before, which keep their
chain bytes (eventlog/chain.py). Added to the v2 table rather than rebuilt into it, in live files and new
archives alike, so every v3 file has the same layout: an ALTER that adds a nullable column rewrites no row."""
SEGMENTS_DDL: Final = (
    "CREATE TABLE segments ("
    "id INTEGER PRIMARY KEY, file TEXT NOT NULL,"
    " first_event_seq INTEGER, last_event_seq INTEGER, last_event_hash BLOB,"
    " first_call_seq INTEGER, last_call_seq INTEGER, last_call_hash BLOB,"
    " sealed_at TEXT NOT NULL)"
)

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "events": ("seq", "recorded_at", "type", "version", "payload"),
    "calls": ("seq", "url", "uuid", "timestamp", "status_code", "caller"),
}
"""Content columns in canonical order (chain.event_bytes / chain.call_bytes)."""

_V2_COLUMNS: Final[dict[str, tuple[str, ...]]] = {"events": COLUMNS["events"], "calls": COLUMNS["calls"][:-1]}
"""What v1 and v2 tables hold (the v1 migration copies these, then v3 adds the caller)."""

TIME_COLUMN: Final[dict[str, str]] = {"events": "recorded_at", "calls": "timestamp"}

_INSERT: Final[dict[str, str]] = {
    "events": "INSERT INTO events (seq, recorded_at, type, version, payload, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "calls": "INSERT INTO calls (seq, url, uuid, timestamp, status_code, caller, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
}
_UPDATE_HEAD: Final = "UPDATE chain_heads SET seq = ?, hash = ? WHERE name = ?"
_SELECT_CALLS_NEWEST: Final = (
    "SELECT seq, url, uuid, timestamp, status_code, caller FROM calls"
    " WHERE seq > ? AND seq <= (SELECT max(seq) FROM calls) - ? ORDER BY seq DESC LIMIT ?"
)
"""The Record's page by sequence number: the `skip` newest live calls are the seqs above max(seq) - skip, so
skipping costs one primary-key seek, not a walk of `skip` rows (issue 19: skip=999999999 walked them all).
Exact because the live calls' seqs have no gaps (see `calls_newest_first`)."""
_SELECT_CALLS_NEWEST_BY_OFFSET: Final = (
    "SELECT seq, url, uuid, timestamp, status_code, caller FROM calls WHERE seq > ? ORDER BY seq DESC LIMIT ? OFFSET ?"
)
"""The walk, for a file whose live calls do have a gap (none this code writes): slow, but the same answer."""
_CALLS_GAPLESS: Final = "SELECT count(*) = coalesce(max(seq) - min(seq) + 1, 0) FROM calls"
_SQLITE_MAX_INTEGER: Final = 2**63 - 1
"""A larger Python int cannot be bound (OverflowError): a skip or take past it is clamped."""
_SELECT_SEGMENTS: Final = (
    "SELECT id, file, first_event_seq, last_event_seq, last_event_hash,"
    " first_call_seq, last_call_seq, last_call_hash, sealed_at FROM {schema}.segments ORDER BY id"
)
_COUNT_SEGMENTS: Final = "SELECT count(*) FROM segments"


MissingArchive = Callable[[SegmentInfo, Path], None]
"""Told of a sealed segment whose archive file is not where `segments` says (the segment, the path expected)."""


class ArchiveMissingError(FileNotFoundError):
    """A sealed segment's archive file is gone: the full history can't be read.

    Raised rather than skipped: replay over a silently shortened history
    would rebuild the wrong state.
    """


@dataclass(frozen=True, slots=True)
class _Range:
    first: int
    last: int
    last_hash: bytes


@dataclass(frozen=True, slots=True)
class _SegmentPlan:
    """What one `seal()` moves; computed before anything is written, so both steps agree."""

    id: int
    events: _Range | None
    calls: _Range | None


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
            heads = _read_heads(conn)
        except BaseException:
            conn.close()
            raise
        self._conn: Final = conn
        # (seq, hash) per chain: `_heads` includes pending appends, `_committed`
        # is what chain_heads holds on disk.
        self._heads: dict[str, tuple[int, bytes]] = dict(heads)
        self._committed: dict[str, tuple[int, bytes]] = dict(heads)
        self._failed: str | None = None
        """Why the last write failed; appends are refused until `rollback()` (see StoreWriteError)."""
        self._savepoints = itertools.count(1)

    # -- appends (the hot path: one hash and one prepared-statement execute each)

    def append_event(self, type: str, version: int, payload: bytes, recorded_at: str) -> int:
        """Append to the open transaction; the seq is final once `commit()` returns."""
        _check_payload(payload)
        payload = bytes(payload)  # hash exactly what is stored, even if the caller mutates later
        seq, prev = self._heads["events"]
        seq += 1
        digest = chain.link(prev, chain.event_bytes(seq, recorded_at, type, version, payload))
        self._write(_INSERT["events"], (seq, recorded_at, type, version, payload, prev, digest))
        self._heads["events"] = (seq, digest)
        return seq

    def append_call(self, url: str, uuid: str, timestamp: str, status_code: int, caller: str | None = None) -> int:
        """Append to the open transaction; the seq is final once `commit()` returns."""
        seq, prev = self._heads["calls"]
        seq += 1
        digest = chain.link(prev, chain.call_bytes(seq, url, uuid, timestamp, status_code, caller))
        self._write(_INSERT["calls"], (seq, url, uuid, timestamp, status_code, caller, prev, digest))
        self._heads["calls"] = (seq, digest)
        return seq

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """One insert into the open transaction; a storage failure drops the whole transaction (see `_failure`)."""
        if self._failed is not None:
            raise StoreWriteError(f"an earlier write failed ({self._failed}); roll back first")
        try:
            self._begin()
            self._conn.execute(sql, params)
        except sqlite3.Error as error:
            raise self._failure(error) from error

    def commit(self) -> None:
        """One COMMIT (one WAL fsync under durability "full") for the whole batch; no-op if idle.

        The chain heads are written here, once per changed chain, rather than
        per append: same transaction, so they can never disagree with the rows.
        """
        conn = self._conn
        if self._failed is not None:
            raise StoreWriteError(f"an earlier write failed ({self._failed}); nothing was committed")
        if not conn.in_transaction:
            return
        try:
            for name in TABLES:
                if self._heads[name] != self._committed[name]:
                    seq, digest = self._heads[name]
                    conn.execute(_UPDATE_HEAD, (seq, digest, name))
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._failure(error) from error
        self._committed = dict(self._heads)

    def _failure(self, error: sqlite3.Error) -> StoreWriteError:
        """A write failed (SQLITE_FULL, IOERR, READONLY...): drop the transaction, refuse appends until rollback.

        Why all of it: after such an error SQLite may have rolled the transaction back already, or not; rows
        appended after it would chain onto hashes that are gone. The caller rolls back its own memory of the
        transaction (the broker's ledger) and answers that nothing was recorded.
        """
        self._failed = str(error) or type(error).__name__
        self._abandon()
        return StoreWriteError(self._failed)

    def _abandon(self) -> None:
        """ROLLBACK whatever is open (nothing needs disk space for that in WAL mode); heads back to disk's."""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back a transaction it cannot finish by itself; the heads below are disk's
        self._heads = dict(self._committed)

    def mark(self) -> StoreMark:
        """A savepoint in the open transaction (none if nothing is pending: undoing then is a ROLLBACK)."""
        events, calls = self._heads["events"][0], self._heads["calls"][0]
        if self._failed is not None or not self._conn.in_transaction:
            return StoreMark(events, calls, (None, dict(self._heads)))
        name = f"mark{next(self._savepoints)}"
        try:
            self._conn.execute(f"SAVEPOINT {name}")
        except sqlite3.Error as error:
            raise self._failure(error) from error
        return StoreMark(events, calls, (name, dict(self._heads)))

    def rollback_to(self, mark: StoreMark) -> None:
        """Undo the appends after `mark`; StoreWriteError if a failure already dropped the transaction."""
        if self._failed is not None:
            raise StoreWriteError(f"an earlier write failed ({self._failed}): the whole transaction is gone")
        name, heads = _mark_token(mark)
        if name is None:  # nothing was pending at the mark: all that is pending came after it
            self.rollback()
            return
        try:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")
        except sqlite3.Error as error:
            raise self._failure(error) from error
        self._heads = dict(heads)

    @property
    def write_failed(self) -> bool:
        """Whether a write failed and the store waits for `rollback()` (it refuses appends meanwhile)."""
        return self._failed is not None

    def probe_write(self) -> None:
        """One small write transaction (a chain head rewritten as it is): StoreWriteError if the disk refuses.

        What the broker tries while its log could not be written and no call is trying it, so that it notices
        by itself that space came back. Only with nothing pending (it commits)."""
        if self._conn.in_transaction or self._failed is not None:
            raise StoreWriteError("probe_write needs a store with nothing pending")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("UPDATE chain_heads SET seq = seq WHERE name = 'events'")
            self._conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._abandon()
            raise StoreWriteError(str(error) or type(error).__name__) from error

    def release(self, mark: StoreMark) -> None:
        """Keep what was appended after `mark` (its savepoint merges into the transaction): savepoints stay flat."""
        name, _ = _mark_token(mark)
        if name is None or self._failed is not None:
            return
        try:
            self._conn.execute(f"RELEASE {name}")
        except sqlite3.Error as error:
            raise self._failure(error) from error

    def rollback(self) -> None:
        """Drop everything not committed and take appends again (the loop's answer to a failed turn)."""
        self._abandon()
        self._failed = None

    def _begin(self) -> None:
        if not self._conn.in_transaction:
            # IMMEDIATE: take the write lock now rather than on first write, so a
            # lock conflict surfaces here (after busy_timeout), never mid-batch.
            self._conn.execute("BEGIN IMMEDIATE")

    # -- queries (see pending appends: same connection, same transaction) ----

    def events(self, after: int = 0, on_missing: MissingArchive | None = None) -> Iterator[StoredEvent]:
        """The whole history, archives first then live: replay must see every event.

        A missing archive raises ArchiveMissingError, unless `on_missing` is given: then it is told, and the
        segment's rows are skipped (a start that must not depend on archives; see broker/snapshot_files.py).

        Streams by keyset pagination so replaying millions of events uses
        constant memory. No cursor stays open on the live database between
        pages, so the caller may append and commit while iterating. Iteration
        ends at the first empty page: events appended before that point
        (including during iteration) are yielded, which makes this a "catch up"
        read rather than a snapshot.
        """
        rows = iter_rows(self._conn, self.path.parent, "events", after, on_missing=on_missing)
        for seq, recorded_at, type_, version, payload in rows:
            yield StoredEvent(seq, recorded_at, type_, version, payload)

    def committed_event_head(self) -> tuple[int, bytes]:
        """The last committed event's seq and chain hash: what a snapshot of the state after it names."""
        return self._committed["events"]

    _calls_gapless: bool | None = None
    """Whether the live calls' seqs run without a gap: checked once per store (one count), then kept."""

    def calls_newest_first(self, skip: int, take: int, after_seq: int = 0) -> list[CallRecord]:
        """Live calls only (sealed ones are archived), newest first, in O(take) whatever `skip` is.

        Why seq arithmetic is exact: a call's seq is the chain head plus one, and the only delete is `seal`'s,
        of the oldest live rows; so the live seqs are one run, min..max, and the `skip` newest of those above
        `after_seq` are the ones above max - skip. That is checked once (a file edited by hand, or written by
        some other tool, could have a gap); with a gap the old walk answers, row for row the same.
        """
        _check_window(skip, take)
        if take == 0:
            return []
        skip, take = min(skip, _SQLITE_MAX_INTEGER), min(take, _SQLITE_MAX_INTEGER)  # past any seq: none
        if self._calls_gapless is None:
            self._calls_gapless = bool(self._conn.execute(_CALLS_GAPLESS).fetchone()[0])
        if self._calls_gapless:
            rows = self._conn.execute(_SELECT_CALLS_NEWEST, (after_seq, skip, take)).fetchall()
        else:
            rows = self._conn.execute(_SELECT_CALLS_NEWEST_BY_OFFSET, (after_seq, take, skip)).fetchall()
        return [CallRecord(*row) for row in rows]

    def last_call_seq(self) -> int:
        """From the in-memory chain head, so sealing every live call never makes it go back."""
        return self._heads["calls"][0]

    def last_event_seq(self) -> int:
        """From the in-memory chain head, like `last_call_seq`."""
        return self._heads["events"][0]

    def segments(self) -> list[SegmentInfo]:
        """The sealed segments, oldest first."""
        return load_segments(self._conn)

    # -- growth: sealing old rows into archives -----------------------------

    def seal(
        self,
        through_event_seq: int,
        through_call_seq: int,
        archive_dir: Path,
        between_chunks: Callable[[], bool] | None = None,
    ) -> SegmentInfo | None:
        """Move live events with seq <= through_event_seq and calls with seq <=
        through_call_seq into a new archive file; None if there is nothing to move.

        Three steps, ordered so a crash loses nothing: (1) write and fsync the
        archive under its final name; (2) in one live transaction record the
        segment (and delete the first `DELETE_CHUNK` moved rows); (3) delete the
        rest, `DELETE_CHUNK` at a time, each in a transaction of its own. A crash after (1) leaves an unlisted archive
        (rewritten by the next seal) and the rows still live; a crash or a stop
        during (3) leaves archived rows still live, which every reader skips
        (they are read from the archive) and the next seal deletes first.

        Why chunks: the broker seals in a thread on a connection of its own
        (eventlog/sealing.py), and its loop's commits wait for the write lock;
        one DELETE of 500,000 rows held it for seconds, a chunk holds it for
        milliseconds. `between_chunks()` runs after each chunk (to let the
        loop's commits in); when it returns False the seal stops there.
        """
        self.commit()
        if not self._delete_sealed_rows(between_chunks):
            return None
        plan = self._plan_segment(through_event_seq, through_call_seq)
        if plan is None:
            return None
        archive = self._write_archive(plan, Path(archive_dir))
        info = self._register_segment(plan, archive)
        self._delete_sealed_rows(between_chunks)
        return info

    def _delete_sealed_rows(self, between_chunks: Callable[[], bool] | None) -> bool:
        """Step 3 of `seal()`: delete live rows already archived, a chunk per transaction; False if stopped."""
        sealed = _sealed_through(self._conn)
        conn = self._conn
        for name in TABLES:
            while True:
                (low,) = conn.execute(f"SELECT min(seq) FROM {name}").fetchone()
                if low is None or low > sealed[name]:
                    break
                high = min(sealed[name], low + DELETE_CHUNK - 1)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(f"DELETE FROM {name} WHERE seq BETWEEN ? AND ?", (low, high))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if between_chunks is not None and not between_chunks():
                    return False
        return True

    def seal_due(
        self,
        max_live_events: int | None,
        max_age_seconds: float | None,
        now_ns: int | None = None,
    ) -> tuple[int, int] | None:
        """What to pass to `seal()` now, or None if the live log is within bounds.

        The rule, applied to each table (events, calls) separately, so each
        seal moves a large batch rather than a row at a time:

        - size: when the table holds more than `max_live_events` live rows,
          seal all but the newest `max_live_events // 2`;
        - age: when the table's oldest live row is older than `max_age_seconds`,
          seal every row up to the first one younger than `max_age_seconds / 2`
          (rows are walked in seq order; an unparseable timestamp stops the walk,
          so nothing newer than it is sealed on age).

        The larger of the two wins. For a table with nothing to seal, the
        returned bound is its last already-sealed seq (moves nothing).
        """
        if max_live_events is not None and max_live_events < 1:
            raise ValueError("max_live_events must be >= 1")
        if max_age_seconds is not None and max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be > 0")
        now_ns = time.time_ns() if now_ns is None else now_ns
        sealed = _sealed_through(self._conn)
        result: list[int] = []
        moves = False
        for name in TABLES:
            head_seq = self._heads[name][0]
            (first_live,) = self._conn.execute(f"SELECT min(seq) FROM {name} WHERE seq > ?", (sealed[name],)).fetchone()
            through = sealed[name]
            if first_live is not None:
                if max_live_events is not None and head_seq - first_live + 1 > max_live_events:
                    through = max(through, head_seq - max_live_events // 2)
                if max_age_seconds is not None:
                    through = max(through, self._age_bound(name, first_live, max_age_seconds, now_ns))
                if through >= first_live:
                    moves = True
            result.append(through)
        return (result[0], result[1]) if moves else None

    def _age_bound(self, table: Table, first_live: int, max_age: float, now_ns: int) -> int:
        """Last seq to seal by age (first_live - 1 for none); see `seal_due`."""
        column = TIME_COLUMN[table]
        now = now_ns / 1e9

        def age_of(value: object) -> float | None:
            moment = parse_timestamp(value) if isinstance(value, str) else None
            return None if moment is None else now - moment.timestamp()

        row = self._conn.execute(f"SELECT {column} FROM {table} WHERE seq = ?", (first_live,))
        (oldest,) = row.fetchone()
        oldest_age = age_of(oldest)
        if oldest_age is None or oldest_age <= max_age:
            return first_live - 1
        through = first_live - 1
        last = first_live - 1
        while True:
            rows = self._conn.execute(
                f"SELECT seq, {column} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, PAGE_SIZE),
            ).fetchall()
            if not rows:
                return through
            for seq, value in rows:
                age = age_of(value)
                if age is None or age <= max_age / 2:
                    return through
                through = seq
            last = rows[-1][0]

    def _plan_segment(self, through_event_seq: int, through_call_seq: int) -> _SegmentPlan | None:
        """The committed live rows to move (never ones already archived, even if still live)."""
        sealed = _sealed_through(self._conn)
        ranges: dict[str, _Range | None] = {}
        for name, through in zip(TABLES, (through_event_seq, through_call_seq), strict=True):
            low, high = self._conn.execute(
                f"SELECT min(seq), max(seq) FROM {name} WHERE seq > ? AND seq <= ?",
                (sealed[name], through),
            ).fetchone()
            if low is None:
                ranges[name] = None
                continue
            (last_hash,) = self._conn.execute(f"SELECT hash FROM {name} WHERE seq = ?", (high,)).fetchone()
            ranges[name] = _Range(low, high, bytes(last_hash))
        if ranges["events"] is None and ranges["calls"] is None:
            return None
        (max_id,) = self._conn.execute("SELECT max(id) FROM segments").fetchone()
        return _SegmentPlan((max_id or 0) + 1, ranges["events"], ranges["calls"])

    def _write_archive(self, plan: _SegmentPlan, archive_dir: Path) -> Path:
        """Step 1 of `seal()`: the archive, durable under its final name before any live delete."""
        archive_dir.mkdir(parents=True, exist_ok=True)
        final = archive_dir / f"segment-{plan.id:06d}.db"
        temp = archive_dir / f"segment-{plan.id:06d}.db.tmp"
        for leftover in (temp, Path(f"{temp}-journal")):
            leftover.unlink(missing_ok=True)
        arc = sqlite3.connect(str(temp), isolation_level=None, uri=False)
        try:
            # A self-contained single file (no -wal to lose when copying archives around).
            arc.execute("PRAGMA journal_mode=DELETE")
            arc.execute("PRAGMA synchronous=FULL")
            arc.execute("ATTACH DATABASE ? AS live", (read_only_uri(self.path),))
            arc.execute("BEGIN IMMEDIATE")
            arc.execute(EVENTS_DDL)
            arc.execute(CALLS_DDL)
            arc.execute(ADD_CALLER_DDL)
            for statement in ARCHIVE_STATEMENTS:
                arc.execute(statement)
            arc.execute(_SET_SCHEMA_VERSION)
            for name, rng in (("events", plan.events), ("calls", plan.calls)):
                if rng is None:
                    continue
                columns = ", ".join(COLUMNS[name] + ("prev_hash", "hash"))
                arc.execute(
                    f"INSERT INTO main.{name} ({columns}) SELECT {columns} FROM live.{name}"
                    " WHERE seq BETWEEN ? AND ? ORDER BY seq",
                    (rng.first, rng.last),
                )
                # Defensive: the archive must end exactly where the plan says.
                got = arc.execute(f"SELECT seq, hash FROM main.{name} ORDER BY seq DESC LIMIT 1").fetchone()
                if got is None or got[0] != rng.last or bytes(got[1]) != rng.last_hash:
                    raise RuntimeError(f"sealing {name}: archive does not end at seq {rng.last}")
            arc.execute("COMMIT")
            arc.execute("DETACH DATABASE live")
        except BaseException:
            if arc.in_transaction:
                arc.execute("ROLLBACK")
            arc.close()
            temp.unlink(missing_ok=True)
            raise
        arc.close()
        fsync_file(temp)
        os.replace(temp, final)
        fsync_directory(archive_dir)
        return final

    def _register_segment(self, plan: _SegmentPlan, archive: Path) -> SegmentInfo:
        """Step 2 of `seal()`: record the segment (from here on readers take its rows from the archive), and
        delete the first chunk of its live rows in the same transaction."""
        try:
            file = Path(os.path.relpath(archive.resolve(), self.path.resolve().parent)).as_posix()
        except ValueError:  # another drive on Windows: no relative path exists
            file = str(archive.resolve())
        info = SegmentInfo(
            id=plan.id,
            file=file,
            first_event_seq=plan.events.first if plan.events else None,
            last_event_seq=plan.events.last if plan.events else None,
            last_event_hash=plan.events.last_hash if plan.events else None,
            first_call_seq=plan.calls.first if plan.calls else None,
            last_call_seq=plan.calls.last if plan.calls else None,
            last_call_hash=plan.calls.last_hash if plan.calls else None,
            sealed_at=format_record_timestamp(time.time_ns()),
        )
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO segments (id, file, first_event_seq, last_event_seq, last_event_hash,"
                " first_call_seq, last_call_seq, last_call_hash, sealed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    info.file,
                    info.first_event_seq,
                    info.last_event_seq,
                    info.last_event_hash,
                    info.first_call_seq,
                    info.last_call_seq,
                    info.last_call_hash,
                    info.sealed_at,
                ),
            )
            for name, rng in (("events", plan.events), ("calls", plan.calls)):
                if rng is not None:  # the first chunk with it: a small seal is one transaction, as it always was
                    last = min(rng.last, rng.first + DELETE_CHUNK - 1)
                    conn.execute(f"DELETE FROM {name} WHERE seq BETWEEN ? AND ?", (rng.first, last))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return info

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
                self._heads = dict(self._committed)
        finally:
            self._conn.close()


# -- shared with eventlog.reader and eventlog.verify ---------------------------


def read_only_uri(path: Path) -> str:
    """A `mode=ro` URI: such a connection can never write, even by mistake."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def open_read_only(path: Path, raw_text: bool = False) -> sqlite3.Connection:
    """Open an existing database read-only; `raw_text` returns TEXT as bytes (for hashing)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such database file: {path}")
    conn = sqlite3.connect(read_only_uri(path), uri=True, isolation_level=None)
    conn.execute(_SET_BUSY_TIMEOUT)
    if raw_text:
        conn.text_factory = bytes
    return conn


def load_segments(conn: sqlite3.Connection, schema: str = "main") -> list[SegmentInfo]:
    """All sealed segments in id order (the order of their rows); `schema` names an attached log."""
    out = []
    for row in conn.execute(_SELECT_SEGMENTS.format(schema=schema)):
        row = list(row)
        if isinstance(row[1], bytes):  # raw-text connection
            row[1] = row[1].decode("utf-8", "replace")
        if isinstance(row[8], bytes):
            row[8] = row[8].decode("utf-8", "replace")
        for index in (4, 7):
            row[index] = bytes(row[index]) if row[index] is not None else None
        out.append(SegmentInfo(*row))
    return out


def segment_range(segment: SegmentInfo, table: Table) -> tuple[int | None, int | None]:
    if table == "events":
        return segment.first_event_seq, segment.last_event_seq
    return segment.first_call_seq, segment.last_call_seq


def segment_last_hash(segment: SegmentInfo, table: Table) -> bytes | None:
    return segment.last_event_hash if table == "events" else segment.last_call_hash


def archive_path(base_dir: Path, segment: SegmentInfo) -> Path:
    """Segment files are recorded relative to the live database's directory."""
    return base_dir / Path(segment.file)


def iter_rows(
    conn: sqlite3.Connection,
    base_dir: Path,
    table: Table,
    after: int = 0,
    where: str = "",
    params: tuple[object, ...] = (),
    raw_text: bool = False,
    on_missing: MissingArchive | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Content columns (see COLUMNS) of every row with seq > after: archives, then live.

    Keyset pagination, constant memory. Tolerates a concurrent `seal()` by
    another connection: after each live page it re-counts the segments (a
    count read after the page, so a seal that happened before the page read is
    always noticed), and if one appeared, reads the new archives from where it
    was. Rows still live but already archived (a crash mid-seal) are skipped:
    keyset order means each seq is yielded once, from the archive.
    `where` is an extra SQL condition (with `params`) applied to every page.
    """
    condition = f" AND ({where})" if where else ""

    def query_of(source: sqlite3.Connection) -> str:
        columns = ", ".join(content_columns(source, table))
        return f"SELECT {columns} FROM {table} WHERE seq > ?{condition} ORDER BY seq LIMIT ?"

    query = query_of(conn)
    last = after
    while True:
        segments = load_segments(conn)
        for segment in segments:
            _, high = segment_range(segment, table)
            if high is None or high <= last:
                continue
            path = archive_path(base_dir, segment)
            if not path.is_file():
                if on_missing is None:
                    raise ArchiveMissingError(f"archive of segment {segment.id} is missing: {path}")
                on_missing(segment, path)
                last = max(last, high)
                continue
            archive = open_read_only(path, raw_text=raw_text)
            try:
                archive_query = query_of(archive)
                while True:
                    rows = archive.execute(archive_query, (last, *params, PAGE_SIZE)).fetchall()
                    if not rows:
                        break
                    yield from rows
                    last = rows[-1][0]
            finally:
                archive.close()
            last = max(last, high)
        while True:
            rows = conn.execute(query, (last, *params, PAGE_SIZE)).fetchall()
            (count,) = conn.execute(_COUNT_SEGMENTS).fetchone()
            if count != len(segments):
                break  # sealed meanwhile: re-read the archives from `last`
            if not rows:
                return
            yield from rows
            last = rows[-1][0]


def content_columns(conn: sqlite3.Connection, table: Table) -> tuple[str, ...]:
    """COLUMNS[table] as this file has them: a v2 file (an archive sealed before v3, a log not yet opened by
    a v3 console) has no `calls.caller`, read as NULL, which is what a v3 file holds for those rows."""
    if table != "calls":
        return COLUMNS[table]
    names = {row[1] if isinstance(row[1], str) else row[1].decode() for row in conn.execute("PRAGMA table_info(calls)")}
    return tuple(column if column in names else f"NULL AS {column}" for column in COLUMNS["calls"])


def parse_timestamp(value: str) -> datetime | None:
    """Parse a record timestamp (7 fractional digits, .NET style); None if unparseable or naive.

    Python's fromisoformat takes at most 6 fractional digits on some versions,
    so the fraction is cut to microseconds (the 100 ns digit is dropped, never rounded up
    into the next second).
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: min(end, dot + 7)] + text[end:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _mark_token(mark: StoreMark) -> tuple[str | None, dict[str, tuple[int, bytes]]]:
    """A mark's savepoint name and chain heads, as `SqliteEventStore.mark` made them."""
    token = mark.token
    if not (isinstance(token, tuple) and len(token) == 2 and isinstance(token[1], dict)):
        raise ValueError("not a mark of this store")
    name, heads = token
    return (name if isinstance(name, str) else None), heads


def _sealed_through(conn: sqlite3.Connection) -> dict[str, int]:
    """The highest archived seq per table (0 if none)."""
    events, calls = conn.execute(
        "SELECT coalesce(max(last_event_seq), 0), coalesce(max(last_call_seq), 0) FROM segments"
    ).fetchone()
    return {"events": events, "calls": calls}


def _read_heads(conn: sqlite3.Connection) -> dict[str, tuple[int, bytes]]:
    heads = {
        name: (seq, bytes(digest)) for name, seq, digest in conn.execute("SELECT name, seq, hash FROM chain_heads")
    }
    if set(heads) != set(TABLES):
        raise RuntimeError("event store: chain_heads must hold exactly 'events' and 'calls'")
    return heads


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the v2 schema, or migrate a v1 file in place; refuse files from a newer version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"event store schema version {version} is newer than this code ({SCHEMA_VERSION})")
    if version == SCHEMA_VERSION:
        # Steady state: no writes at all, so opening never waits for a lock.
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version == 1:
            _migrate_v1(conn)
        elif version == 0:
            conn.execute(EVENTS_DDL)
            conn.execute(CALLS_DDL)
            conn.execute(CHAIN_HEADS_DDL)
            conn.execute(SEGMENTS_DDL)
            conn.executemany(
                "INSERT INTO chain_heads (name, seq, hash) VALUES (?, 0, ?)",
                [(name, chain.GENESIS) for name in TABLES],
            )
        _migrate_v2(conn)
        conn.execute(_SET_SCHEMA_VERSION)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """v2 -> v3: the calls' caller column, then the audit views and indexes (eventlog/audit_views.py).

    Every new file goes through this step too (created as v2, then this), so a migrated file and a new one
    have the same schema. In the caller's transaction: a crash leaves the file at v2."""
    conn.execute(ADD_CALLER_DDL)
    for statement in LIVE_STATEMENTS:
        conn.execute(statement)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Rebuild each v1 table with the hash columns, chaining the existing rows in seq order.

    A rebuild rather than ALTER TABLE ADD COLUMN: added NOT NULL columns would
    need a DEFAULT, and migrated files must have exactly the DDL of new ones.
    Runs inside the caller's transaction: a crash leaves the v1 file untouched.
    """
    conn.execute(CHAIN_HEADS_DDL)
    conn.execute(SEGMENTS_DDL)
    for name, ddl, encode in (
        ("events", EVENTS_DDL, chain.event_bytes),
        ("calls", CALLS_DDL, chain.call_bytes),
    ):
        old = f"{name}_v1"
        conn.execute(f"ALTER TABLE {name} RENAME TO {old}")
        conn.execute(ddl)
        columns = ", ".join(_V2_COLUMNS[name])
        seq, prev = 0, chain.GENESIS
        while True:
            rows = conn.execute(
                f"SELECT {columns} FROM {old} WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, PAGE_SIZE),
            ).fetchall()
            if not rows:
                break
            batch = []
            for row in rows:
                digest = chain.link(prev, encode(*row))
                batch.append((*row, prev, digest))
                prev = digest
            marks = ", ".join("?" * (len(_V2_COLUMNS[name]) + 2))
            conn.executemany(f"INSERT INTO {name} ({columns}, prev_hash, hash) VALUES ({marks})", batch)
            seq = rows[-1][0]
        conn.execute(f"DROP TABLE {old}")
        conn.execute("INSERT INTO chain_heads (name, seq, hash) VALUES (?, ?, ?)", (name, seq, prev))


def _check_payload(payload: bytes) -> None:
    """A str payload would be stored as TEXT and come back as str: refuse it up front."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")


def _check_window(skip: int, take: int) -> None:
    """SQLite treats a negative LIMIT as "no limit": refuse instead of returning everything."""
    if skip < 0 or take < 0:
        raise ValueError(f"skip and take must be >= 0 (skip={skip}, take={take})")
