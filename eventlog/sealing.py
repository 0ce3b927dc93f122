"""A seal run off the broker's loop: a thread with its own connection to the live database.

Why a thread with its own connection, not steps the loop interleaves: the slow parts of a seal are one
`INSERT ... SELECT` of up to 500,000 rows into the archive, its fsync, and the deletes, and SQLite runs each
of them in C with Python's GIL released, so a thread costs the loop nothing but the write lock, which the
deletes take a chunk at a time (`DELETE_CHUNK` rows, milliseconds) and give back with a pause between chunks.
Steps the loop ran itself would each add their whole duration to the answer of every call that arrived
meanwhile, and would need the copy cut into resumable pieces by hand. WAL mode lets the thread read the live
rows while the loop keeps writing; the archive is its own file.

The broker decides in its loop whether a seal is due (`seal_due`: a few indexed queries for the size rule)
and takes its snapshot first, then hands the range to this thread. One seal at a time (the next starts only
after this one ended); a failure (a full disk, say) is logged and the next check tries again, since a seal
that stopped half-way loses nothing (see `SqliteEventStore.seal`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from eventlog.sqlite_store import SqliteEventStore
from eventlog.store import SegmentInfo

log = logging.getLogger(__name__)

CHUNK_PAUSE: Final = 0.01
"""Seconds the sealing thread waits between two delete chunks: time for the loop's commit to take the lock."""


@dataclass(frozen=True)
class SealRange:
    """What to seal (as `SqliteEventStore.seal_due` answered) and where its archive goes."""

    through_event_seq: int
    through_call_seq: int
    archive_dir: Path


class BackgroundSeal:
    """Runs one seal in a daemon thread on its own connection; `stop()` ends it between two chunks."""

    def __init__(self, database: Path, durability: str, what: SealRange) -> None:
        self._database = database
        self._durability = durability
        self._what = what
        self._stop = threading.Event()
        self.sealed: SegmentInfo | None = None
        self.failed: str | None = None
        self._thread = threading.Thread(target=self._run, name="seal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, wait: float) -> None:
        """Ask it to stop after the chunk under way and wait up to `wait` seconds (its rows stay, to be redone)."""
        self._stop.set()
        self._thread.join(wait)

    def _between_chunks(self) -> bool:
        return not self._stop.wait(CHUNK_PAUSE)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            store = SqliteEventStore(self._database, durability=self._durability)
        except Exception as error:  # a full or read-only disk: logged; the next check tries again
            self.failed = str(error)
            log.warning("could not open the log to seal it: %s", error)
            return
        try:
            what = self._what
            log.info("sealing events through %d and calls through %d", what.through_event_seq, what.through_call_seq)
            self.sealed = store.seal(
                what.through_event_seq, what.through_call_seq, what.archive_dir, self._between_chunks
            )
            if self.sealed is not None:
                log.info(
                    "sealed segment %d (events through %s, calls through %s) in %.1f s",
                    self.sealed.id,
                    self.sealed.last_event_seq,
                    self.sealed.last_call_seq,
                    time.monotonic() - started,
                )
        except Exception as error:
            self.failed = str(error)
            log.warning("sealing failed, to be tried again at the next check: %s", error)
        finally:
            store.close()
