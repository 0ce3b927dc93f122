"""Where each sealed segment's archive is expected and whether it is there, and an event's chain hash by seq.

Why apart from the reader and the store: a console must start, and an auditor must see what is missing,
without any archive being readable. Both questions are answered from the live database (`segments`, the live
rows) first; an archive is opened only for a hash the live database cannot give, and only if it is there.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from eventlog import chain
from eventlog.sqlite_store import archive_path, load_segments, open_read_only
from eventlog.store import SegmentInfo


@dataclass(frozen=True, slots=True)
class SegmentFile:
    segment: SegmentInfo
    path: Path
    """Where `segments` says the archive is (relative paths resolved against the live database's directory)."""
    present: bool


def segment_files(conn: sqlite3.Connection, base_dir: Path) -> list[SegmentFile]:
    """Every sealed segment, in order, with its expected archive path and whether a file is there."""
    found = []
    for segment in load_segments(conn):
        path = archive_path(base_dir, segment)
        found.append(SegmentFile(segment, path, path.is_file()))
    return found


def describe_range(segment: SegmentInfo) -> str:
    """`events 1..500000, calls 1..499000`: the sequence ranges a segment holds, for a report line."""
    parts = []
    if segment.first_event_seq is not None:
        parts.append(f"events {segment.first_event_seq}..{segment.last_event_seq}")
    if segment.first_call_seq is not None:
        parts.append(f"calls {segment.first_call_seq}..{segment.last_call_seq}")
    return ", ".join(parts) or "no rows"


def event_hash_at(conn: sqlite3.Connection, base_dir: Path, seq: int) -> bytes | None:
    """The events chain's hash at `seq` (GENESIS at 0); None when the log does not hold that row readably.

    The live row first; then a segment's recorded last hash if `seq` ends one; then the archive holding it,
    if its file is there.
    """
    if seq == 0:
        return chain.GENESIS
    row = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    if row is not None:
        return bytes(row[0])
    for segment in load_segments(conn):
        first, last = segment.first_event_seq, segment.last_event_seq
        if first is None or last is None or not first <= seq <= last:
            continue
        if seq == last and segment.last_event_hash is not None:
            return segment.last_event_hash
        path = archive_path(base_dir, segment)
        if not path.is_file():
            return None
        archive = open_read_only(path)
        try:
            row = archive.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
        except sqlite3.Error:
            return None
        finally:
            archive.close()
        return None if row is None else bytes(row[0])
    return None
