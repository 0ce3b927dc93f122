"""What a starting broker reads, and what it says about it: the snapshot it starts from (or why none), the
events after it without needing any archive, and the rows it had to leave out.

Why a module of its own: the ledger's load must never fail for want of a cache or an archive. Each refusal is
one log line saying why, and the start goes on with less: the whole log instead of a snapshot, the live rows
instead of a missing archive's, the decodable rows instead of all of them. The ledger folds what this hands it
with `broker.domain.replay`, the one place replay lives.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from broker.domain.events import UnknownEvent
from broker.domain.snapshots import Snapshot, SnapshotRejected
from broker.snapshot_files import SnapshotMissing, SnapshotWriter, load_snapshot, snapshot_path
from eventlog import EventStore, StoredEvent
from eventlog.segment_files import describe_range
from eventlog.sqlite_store import SqliteEventStore
from eventlog.store import SegmentInfo

log = logging.getLogger("broker.ledger")

SKIPPED_ROWS_LOGGED: Final = 20
"""Undecodable rows named one by one in the log; beyond that, only counted (a downgrade may leave many)."""


class StartLoad:
    """One broker start's reading of its log; also owns the snapshot writer for what follows."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._began = time.perf_counter()
        self._snapshot: Snapshot | None = None
        self._skipped = 0
        self.writer: SnapshotWriter | None = None
        if isinstance(store, SqliteEventStore):
            self.writer = SnapshotWriter(snapshot_path(store.path))

    def snapshot(self) -> Snapshot | None:
        """The newest snapshot, if it checks out; otherwise None and one line saying why it was ignored."""
        if not isinstance(self._store, SqliteEventStore):
            return None
        try:
            self._snapshot = load_snapshot(self._store.path)
        except SnapshotMissing as missing:
            if self._store.last_event_seq() > 0:
                log.info("no snapshot to start from (%s): replaying the whole log", missing)
        except SnapshotRejected as rejected:
            log.warning("snapshot %s ignored: %s; replaying the whole log", snapshot_path(self._store.path), rejected)
        except (sqlite3.Error, OSError) as error:
            log.warning("snapshot ignored: the log could not be read to check it (%s); replaying the whole log", error)
        return self._snapshot

    def events(self, after: int) -> Iterator[StoredEvent]:
        """The stored events after `after`; an archive that is not there is logged and its rows left out."""
        if isinstance(self._store, SqliteEventStore):
            return self._store.events(after, on_missing=self._archive_missing)
        return self._store.events(after)

    def _archive_missing(self, segment: SegmentInfo, path: Path) -> None:
        log.error(
            "archive of segment %d (%s) is missing, expected at %s: starting without its events, so the state may"
            " be incomplete (no snapshot covered them); `nhi-console log verify` reports the gap",
            segment.id,
            describe_range(segment),
            path,
        )

    def skipped(self, event: StoredEvent, error: UnknownEvent) -> None:
        """An undecodable row: left out of the fold, logged (never its payload)."""
        self._skipped += 1
        if self._skipped <= SKIPPED_ROWS_LOGGED:
            log.error(
                "event %d (%s v%d) cannot be read and is left out: %s", event.seq, event.type, event.version, error
            )

    def loaded(self, last_seq: int, now: float) -> None:
        """The load is done: say how, and tell the writer where the snapshots stand."""
        after = self._snapshot.seq if self._snapshot is not None else 0
        source = f"the snapshot at event {after}" if self._snapshot is not None else "an empty state"
        log.info(
            "state loaded from %s plus %d events (through %d) in %.2f s",
            source,
            last_seq - after,
            last_seq,
            time.perf_counter() - self._began,
        )
        if self._skipped > SKIPPED_ROWS_LOGGED:
            log.error("%d unreadable events were left out in all", self._skipped)
        if self.writer is not None:
            self.writer.started_from(after if self._snapshot is not None else None, now)
