"""Snapshot files beside the event log: where they are, when one is due, writing them off the loop's thread,
and reading one back only once it checks out against the log.

Why: a start that folds the whole history grows with the log (24.6 s at 1,000,000 events) and needs every
archive. A start from the newest snapshot folds only the events after it. The loop hands over the state (an
immutable object, safe to share) with the seq and chain hash it covers; a thread serialises it, writes it,
fsyncs the file, renames it into place and fsyncs the directory, so a power cut leaves the old snapshot or the
new one, never half of one. The format is `broker.domain.snapshots`'.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from broker.domain.snapshots import Snapshot, SnapshotRejected, decode_snapshot, encode_snapshot
from broker.domain.state import ConsoleState
from eventlog.durable_files import write_atomically
from eventlog.segment_files import event_hash_at
from eventlog.sqlite_store import open_read_only

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_EVENTS: Final = 10_000
"""A snapshot after this many events since the last one. Folding 10,000 events takes about a quarter of a
second on a 2-core machine, so a start never folds much more than that. (A default here, not in
contract/settings.py's `LogSettings`, which another part of the code owns; it may move there.)"""

SNAPSHOT_EVERY_SECONDS: Final = 10 * 60.0
"""...or this long after the last one, if any event came since: a quiet console's snapshot stays recent."""


def snapshot_path(database: Path) -> Path:
    """`console.db` -> `console.snapshot.json` beside it (the bench's `sim-console.db` has its own)."""
    return database.with_name(f"{database.stem}.snapshot.json")


class SnapshotMissing(SnapshotRejected):
    """No snapshot file: a first start, or one deleted; the log is folded from its start."""


def load_snapshot(database: Path) -> Snapshot:
    """The snapshot beside `database`, checked in itself and against the log (its seq's chain hash).

    Raises SnapshotRejected (SnapshotMissing when there is none) with the reason. Reads the log read-only,
    through its own connection, and opens an archive only if the snapshot's seq was sealed and is not the end
    of a segment (which the live database records).
    """
    path = snapshot_path(database)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise SnapshotMissing(f"no snapshot at {path}") from error
    except OSError as error:
        raise SnapshotRejected(f"{path} could not be read ({error.strerror})") from error
    taken = decode_snapshot(raw)
    conn = open_read_only(database)
    try:
        (head,) = conn.execute("SELECT seq FROM chain_heads WHERE name = 'events'").fetchone()
        if taken.seq > head:
            raise SnapshotRejected(f"it covers events through {taken.seq}, but the log ends at {head}")
        actual = event_hash_at(conn, database.parent, taken.seq)
    finally:
        conn.close()
    if actual is None:
        raise SnapshotRejected(f"the log's event {taken.seq} cannot be read to check it (its archive is missing)")
    if actual != taken.chain_hash:
        raise SnapshotRejected(f"its chain hash does not match the log's event {taken.seq}")
    return taken


@dataclass(frozen=True, slots=True)
class SnapshotJob:
    """What the loop hands over: the state after event `seq`, whose chain hash is `chain_hash`."""

    state: ConsoleState
    seq: int
    chain_hash: bytes
    written_at: str


class SnapshotWriter:
    """Decides when a snapshot is due (on the loop's thread) and writes it (on its own thread).

    At most one writing thread at a time; a job handed over while it writes replaces any job still waiting, so
    a slow disk means fewer snapshots, never a queue. The thread is not a daemon: a broker stopping right after
    handing one over finishes writing it (milliseconds) before the process ends.
    """

    def __init__(
        self,
        path: Path,
        every_events: int = SNAPSHOT_EVERY_EVENTS,
        every_seconds: float = SNAPSHOT_EVERY_SECONDS,
    ) -> None:
        self.path: Final = path
        self._every_events = every_events
        self._every_seconds = every_seconds
        self._scheduled_seq = 0
        self._scheduled_at = float("-inf")
        self._lock = threading.Lock()
        self._pending: SnapshotJob | None = None
        self._thread: threading.Thread | None = None
        self._file_lock = threading.Lock()
        self._written_seq = -1

    def started_from(self, seq: int | None, now: float) -> None:
        """The start used the snapshot at `seq` (None: none was usable, so one is due as soon as events exist)."""
        if seq is not None:
            self._scheduled_seq, self._scheduled_at, self._written_seq = seq, now, seq

    def due(self, seq: int, now: float) -> bool:
        """Whether the state after event `seq` should be snapshotted now (loop thread; cheap)."""
        if seq <= self._scheduled_seq:
            return False
        return seq - self._scheduled_seq >= self._every_events or now - self._scheduled_at >= self._every_seconds

    def submit(self, job: SnapshotJob, now: float) -> None:
        """Write `job` in the background; returns at once."""
        self._scheduled_seq, self._scheduled_at = job.seq, now
        with self._lock:
            self._pending = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="snapshot-writer", daemon=False)
                self._thread.start()

    def write_now(self, job: SnapshotJob, now: float) -> bool:
        """Write `job` before returning (before a seal: the sealed rows must be covered); False if it failed."""
        self._scheduled_seq, self._scheduled_at = job.seq, now
        return self._write(job)

    def wait(self) -> None:
        """Until the background writes handed over so far are done (tests, and a clean stop)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _drain(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._thread = None
                    return
            self._write(job)

    def _write(self, job: SnapshotJob) -> bool:
        with self._file_lock:
            if job.seq <= self._written_seq and self.path.exists():
                return True  # the same or a newer one is on disk already
            try:
                write_atomically(self.path, encode_snapshot(job.state, job.seq, job.chain_hash, job.written_at))
            except OSError as error:
                # The log is intact; the next start just folds more of it. Worth a warning, not a crash.
                log.warning("could not write the snapshot at event %d to %s: %s", job.seq, self.path, error)
                return False
            self._written_seq = job.seq
            log.info("snapshot of the state after event %d written to %s", job.seq, self.path)
            return True
