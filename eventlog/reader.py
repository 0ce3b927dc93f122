"""Read the whole log (archives and live) from outside the console, safely while it runs.

Why a separate reader rather than SqliteEventStore: the store is the single
writer and migrates schemas on open; an operator's tool must never write, so
this opens the live database with a `mode=ro` URI (SQLite itself refuses
writes) and relies on WAL mode so reading never blocks the console.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from eventlog.segment_files import SegmentFile, event_hash_at, segment_files
from eventlog.sqlite_store import (
    READABLE_VERSIONS,
    TIME_COLUMN,
    Table,
    archive_path,
    iter_rows,
    load_segments,
    open_read_only,
    parse_timestamp,
)
from eventlog.store import CallRecord, SegmentInfo, StoredEvent


@dataclass(frozen=True, slots=True)
class LogStats:
    event_count: int
    events_by_type: dict[str, int]
    call_count: int
    first_event_at: str | None
    last_event_at: str | None
    segments: list[SegmentInfo]
    file_sizes: dict[str, int] = field(default_factory=dict)
    """Bytes per file (live database, its -wal, each archive) keyed by path; missing files omitted."""


class LogReader:
    """Read-only view of a live event store and its archives."""

    def __init__(self, database: Path) -> None:
        self.database: Final = Path(database)
        self._conn: Final = open_read_only(self.database)
        try:
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
            if version not in READABLE_VERSIONS:
                raise RuntimeError(
                    f"{self.database}: event store schema version {version}, this reader reads {READABLE_VERSIONS}"
                )
        except BaseException:
            self._conn.close()
            raise

    def events(
        self,
        after: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Iterable[str] | None = None,
    ) -> Iterator[StoredEvent]:
        """Events with seq > after, oldest first, archives then live; streams.

        `since` (inclusive) and `until` (exclusive) must be timezone-aware and
        are compared with each row's parsed `recorded_at`; with either given, a
        row whose timestamp can't be parsed is left out (it can't be shown to
        be inside the window). `types` is matched exactly, in SQL.
        """
        _check_aware(since, until)
        where = ""
        params: tuple[str, ...] = ()
        if types is not None:
            wanted = tuple(dict.fromkeys(types))
            if not wanted:
                return
            where = f"type IN ({', '.join('?' * len(wanted))})"
            params = wanted
        for row in self._rows("events", after, where, params, since, until):
            seq, recorded_at, type_, version, payload = row
            yield StoredEvent(seq, recorded_at, type_, version, payload)

    def calls(
        self, after: int = 0, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[CallRecord]:
        """Call records with seq > after, archived and live, oldest first; same window rules as `events`."""
        _check_aware(since, until)
        for row in self._rows("calls", after, "", (), since, until):
            yield CallRecord(*row)

    def _rows(
        self,
        table: Table,
        after: int,
        where: str,
        params: tuple[object, ...],
        since: datetime | None,
        until: datetime | None,
    ) -> Iterator[tuple[Any, ...]]:
        time_index = 1 if table == "events" else 3
        assert TIME_COLUMN[table] in ("recorded_at", "timestamp")
        for row in iter_rows(self._conn, self.database.parent, table, after, where, params):
            if since is not None or until is not None:
                value = row[time_index]
                moment = parse_timestamp(value) if isinstance(value, str) else None
                if moment is None:
                    continue
                if since is not None and moment < since:
                    continue
                if until is not None and moment >= until:
                    continue
            yield row

    def stats(self) -> LogStats:
        """Counts over archives and live, from one snapshot of the live database.

        Live rows already archived (left by a seal interrupted mid-way) are
        counted once.
        """
        conn = self._conn
        conn.execute("BEGIN")
        try:
            segments = load_segments(conn)
            by_type: Counter[str] = Counter()
            calls = 0
            first_at: str | None = None
            last_at: str | None = None
            sealed_events = sealed_calls = 0
            for segment in segments:
                sealed_events = max(sealed_events, segment.last_event_seq or 0)
                sealed_calls = max(sealed_calls, segment.last_call_seq or 0)
                path = archive_path(self.database.parent, segment)
                if not path.is_file():
                    continue  # a moved archive: its rows are not counted (`segment_files` says which)
                archive = open_read_only(path)
                try:
                    by_type.update(_count_types(archive, 0))
                    (n,) = archive.execute("SELECT count(*) FROM calls").fetchone()
                    calls += n
                    first_at = first_at or _edge_time(archive, "ASC")
                    last_at = _edge_time(archive, "DESC") or last_at
                finally:
                    archive.close()
            by_type.update(_count_types(conn, sealed_events))
            (n,) = conn.execute("SELECT count(*) FROM calls WHERE seq > ?", (sealed_calls,)).fetchone()
            calls += n
            first_at = first_at or _edge_time(conn, "ASC", sealed_events)
            last_at = _edge_time(conn, "DESC", sealed_events) or last_at
        finally:
            conn.execute("COMMIT")
        sizes: dict[str, int] = {}
        paths = [self.database, Path(f"{self.database}-wal")]
        paths += [archive_path(self.database.parent, s) for s in segments]
        for path in paths:
            try:
                sizes[str(path)] = path.stat().st_size
            except OSError:
                pass
        return LogStats(
            event_count=sum(by_type.values()),
            events_by_type=dict(sorted(by_type.items())),
            call_count=calls,
            first_event_at=first_at,
            last_event_at=last_at,
            segments=segments,
            file_sizes=sizes,
        )

    def segment_files(self) -> list[SegmentFile]:
        """Each sealed segment with where its archive is expected and whether it is there."""
        return segment_files(self._conn, self.database.parent)

    def event_hash_at(self, seq: int) -> bytes | None:
        """The events chain's hash at `seq`, None if the log cannot show it (see eventlog.segment_files)."""
        return event_hash_at(self._conn, self.database.parent, seq)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _count_types(conn: sqlite3.Connection, after: int) -> dict[str, int]:
    return dict(conn.execute("SELECT type, count(*) FROM events WHERE seq > ? GROUP BY type", (after,)))


def _edge_time(conn: sqlite3.Connection, order: str, after: int = 0) -> str | None:
    assert order in ("ASC", "DESC")
    row = conn.execute(
        f"SELECT recorded_at FROM events WHERE seq > ? ORDER BY seq {order} LIMIT 1", (after,)
    ).fetchone()
    return None if row is None else row[0]


def _check_aware(*moments: datetime | None) -> None:
    """Naive datetimes would compare against offset timestamps by guesswork: refuse them."""
    for moment in moments:
        if moment is not None and moment.utcoffset() is None:
            raise ValueError("since/until must be timezone-aware datetimes")
