"""`nhi-console log verify`: walk both hash chains and say where the log was altered.

Why a walk from GENESIS rather than spot checks: each row's hash commits to
every row before it, so only a full walk shows that nothing was edited,
deleted, inserted or reordered; and a report that names the first affected seq
tells an auditor where to start looking. The rules are those of
docs/sqlite-schema.md, so an auditor can re-implement this file independently.

Reasons never quote row contents (payloads may hold pseudonyms, calls hold
URLs): only table, seq and what is wrong.

The live database is read inside one read transaction (a WAL snapshot), so a
console appending or sealing meanwhile can't produce false alarms; archives
are immutable once listed in `segments`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eventlog import chain
from eventlog.sqlite_store import (
    PAGE_SIZE,
    READABLE_VERSIONS,
    TABLES,
    Table,
    archive_path,
    content_columns,
    load_segments,
    open_read_only,
    segment_last_hash,
    segment_range,
)
from eventlog.store import SegmentInfo

_TYPES: Final[dict[str, frozenset[bytes]]] = {
    "events": frozenset({b"text,text,integer,blob,blob,blob"}),
    "calls": frozenset({b"text,text,text,integer,null,blob,blob", b"text,text,text,integer,text,blob,blob"}),
}
"""Expected storage classes of the non-seq columns: a changed type is an edit even if the bytes match."""

_ENCODERS: Final[dict[Table, Callable[..., bytes]]] = {"events": chain.event_bytes, "calls": chain.call_bytes}

DEFAULT_MAX_PROBLEMS: Final = 100
"""Per table; keeps the report (and memory) bounded on a thoroughly damaged log."""


class VerifyError(RuntimeError):
    """The log can't be verified at all (no such file, not a v2 event store)."""


@dataclass(frozen=True, slots=True)
class Problem:
    table: Table
    seq: int
    reason: str


@dataclass(slots=True)
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    events_checked: int = 0
    calls_checked: int = 0
    segments_checked: int = 0
    truncated: bool = False
    """True when more problems were found than kept (see DEFAULT_MAX_PROBLEMS)."""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.truncated

    @property
    def first(self) -> Problem | None:
        """The earliest problem: lowest seq, events before calls on a tie (the chains are independent)."""
        if not self.problems:
            return None
        return min(self.problems, key=lambda p: (p.seq, TABLES.index(p.table)))


def verify(database: Path, max_problems: int = DEFAULT_MAX_PROBLEMS) -> VerifyReport:
    """Verify the live log at `database` and every archive it lists; never writes."""
    database = Path(database)
    try:
        conn = open_read_only(database, raw_text=True)
    except (FileNotFoundError, sqlite3.Error) as error:
        raise VerifyError(f"cannot open event store {database}") from error
    report = VerifyReport()
    try:
        conn.execute("BEGIN")  # one snapshot for the whole walk
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version not in READABLE_VERSIONS:
            raise VerifyError(
                f"{database}: schema version {version}, expected one of {READABLE_VERSIONS}"
                " (a v1 log has no hash chain: open it once with the console to migrate it)"
            )
        segments = load_segments(conn)
        heads = {
            name.decode() if isinstance(name, bytes) else name: (seq, digest)
            for name, seq, digest in conn.execute("SELECT name, seq, hash FROM chain_heads")
        }
        report.segments_checked = len(segments)
        for table in TABLES:
            walker = _ChainWalk(table, report, max_problems)
            walker.walk(conn, database.parent, segments, heads.get(table))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return report


class _ChainWalk:
    """One table's walk; state is the next expected seq and the running hash (constant memory)."""

    def __init__(self, table: Table, report: VerifyReport, max_problems: int) -> None:
        self.table: Final = table
        self.report: Final = report
        self.max_problems: Final = max_problems
        self.found = 0
        self.expected = 1
        self.running = chain.GENESIS
        self.encode = _ENCODERS[table]

    def problem(self, seq: int, reason: str) -> None:
        self.found += 1
        if self.found > self.max_problems:
            self.report.truncated = True
            return
        self.report.problems.append(Problem(self.table, seq, reason))

    def count(self) -> None:
        if self.table == "events":
            self.report.events_checked += 1
        else:
            self.report.calls_checked += 1

    def check_row(self, row: tuple[object, ...]) -> None:
        """The per-row rules; afterwards the walk continues from the row's stored hash,
        so one altered row yields one problem, not one per following row."""
        seq, *content, types, prev_hash, digest = row
        assert isinstance(seq, int)
        if seq < self.expected:
            self.problem(seq, "row out of sequence")
            return
        self.count()
        if seq > self.expected:
            missing = seq - self.expected
            self.problem(self.expected, "row missing" if missing == 1 else f"{missing} rows missing")
            # Resynchronise on this row so its own checks (and later rows) still count.
            self.running = prev_hash if isinstance(prev_hash, bytes) else b""
        if types not in _TYPES[self.table]:
            self.problem(seq, "row edited (a column has the wrong storage type)")
        elif prev_hash != self.running:
            self.problem(seq, "prev_hash does not match the preceding row (inserted, deleted or reordered)")
        elif digest != chain.link(self.running, self.encode(seq, *content)):  # prev_hash == self.running here
            self.problem(seq, "row edited (hash does not match its contents)")
        self.running = digest if isinstance(digest, bytes) else b""
        self.expected = seq + 1

    def walk(
        self,
        conn: sqlite3.Connection,
        base_dir: Path,
        segments: list[SegmentInfo],
        head: tuple[int, bytes] | None,
    ) -> None:
        for segment in segments:
            self.walk_segment(base_dir, segment)
        sealed_through = self.expected - 1
        # Live rows with seq <= sealed_through are leftovers of a seal interrupted
        # between its two steps: fine if identical to the archived copy.
        archives = _ArchiveLookup(base_dir, segments, self.table)
        try:
            for row in _rows(conn, self.table, 0):
                seq = row[0]
                assert isinstance(seq, int)
                if seq <= sealed_through and seq >= 1:
                    if archives.has(seq) is False:
                        continue  # its archive is missing: already reported
                    if archives.row(seq) != row:
                        self.problem(seq, "live row differs from its archived copy")
                    continue
                if head is not None and seq > head[0]:
                    # The head's hash is then not compared: it names a row
                    # the log has moved past, one finding is enough.
                    self.problem(seq, "row after the recorded head")
                    if self.expected <= head[0]:
                        self.problem(self.expected, "rows missing at the end")
                    return
                self.check_row(row)
        finally:
            archives.close()
        self.check_head(head)

    def check_head(self, head: tuple[int, bytes] | None) -> None:
        if head is None:
            self.problem(self.expected, "chain head missing")
            return
        head_seq, head_hash = head
        if self.expected - 1 < head_seq:
            self.problem(self.expected, "rows missing at the end")
        elif head_hash != self.running:
            self.problem(head_seq, "recorded head hash does not match the chain")

    def walk_segment(self, base_dir: Path, segment: SegmentInfo) -> None:
        first, last = segment_range(segment, self.table)
        if first is None or last is None:
            return
        recorded = segment_last_hash(segment, self.table)
        path = archive_path(base_dir, segment)
        start = self.expected
        try:
            archive = open_read_only(path, raw_text=True)
        except (FileNotFoundError, sqlite3.Error):
            what = "missing" if not path.is_file() else "unreadable"
            self.problem(
                first, f"archive of segment {segment.id} ({self.table} {first}..{last}) is {what}: expected at {path}"
            )
            self.resync(last, recorded)
            return
        try:
            seen_first: int | None = None
            for row in _rows(archive, self.table, 0):
                seq = row[0]
                assert isinstance(seq, int)
                if seq > last:
                    self.problem(seq, f"row after the recorded end of segment {segment.id}")
                    break
                seen_first = seq if seen_first is None else seen_first
                self.check_row(row)
        except sqlite3.Error:
            self.problem(self.expected, f"archive file of segment {segment.id} is unreadable")
            self.resync(last, recorded)
            return
        finally:
            archive.close()
        if seen_first is not None and seen_first != first and first >= start:
            self.problem(min(first, seen_first), f"segment {segment.id}: recorded first seq does not match its archive")
        if self.expected - 1 < last:
            self.problem(self.expected, f"rows missing at the end of segment {segment.id}")
            self.resync(last, recorded)
        elif recorded != self.running:
            self.problem(last, f"segment {segment.id}: recorded last hash does not match its archive")

    def resync(self, last: int, recorded: bytes | None) -> None:
        """Carry on after an unreadable stretch, trusting the segment's record for its end."""
        self.expected = max(self.expected, last + 1)
        self.running = recorded if recorded is not None else b""


class _ArchiveLookup:
    """Point lookups into archives, for the rare live leftovers of an interrupted seal."""

    def __init__(self, base_dir: Path, segments: list[SegmentInfo], table: Table) -> None:
        self.base_dir = base_dir
        self.segments = segments
        self.table: Final = table
        self.open_id: int | None = None
        self.conn: sqlite3.Connection | None = None

    def _segment(self, seq: int) -> SegmentInfo | None:
        for segment in self.segments:
            first, last = segment_range(segment, self.table)
            if first is not None and last is not None and first <= seq <= last:
                return segment
        return None

    def _connect(self, seq: int) -> sqlite3.Connection | None:
        segment = self._segment(seq)
        if segment is None:
            return None
        if self.open_id != segment.id:
            self.close()
            try:
                self.conn = open_read_only(archive_path(self.base_dir, segment), raw_text=True)
            except (FileNotFoundError, sqlite3.Error):
                return None
            self.open_id = segment.id
        return self.conn

    def has(self, seq: int) -> bool:
        return self._connect(seq) is not None

    def row(self, seq: int) -> tuple[object, ...] | None:
        conn = self._connect(seq)
        if conn is None:
            return None
        rows = list(_rows(conn, self.table, seq - 1, limit=1))
        return rows[0] if rows and rows[0][0] == seq else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.open_id = None


def _rows(conn: sqlite3.Connection, table: Table, after: int, limit: int | None = None) -> Iterator[tuple[object, ...]]:
    """(seq, content..., storage types, prev_hash, hash), keyset-paginated."""
    content = content_columns(conn, table)
    columns = ", ".join(content)
    values = [column.split(" AS ")[0] for column in content[1:]]  # `NULL AS caller` -> typeof(NULL)
    types = " || ',' || ".join(f"typeof({value})" for value in [*values, "prev_hash", "hash"])
    query = f"SELECT {columns}, {types}, prev_hash, hash FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?"
    last = after
    page = PAGE_SIZE if limit is None else limit
    while True:
        rows = conn.execute(query, (last, page)).fetchall()
        if not rows:
            return
        yield from rows
        if limit is not None:
            return
        last = rows[-1][0]
