"""The ledger: the event log and the state it folds to. Load (replay) at start, append and fold, commit.

Every change of the console's state is an event appended here and folded at once, so the state is always the
fold of the log. Appends go into the store's open transaction; the broker's loop commits once per turn and only
then sends the replies, so a reply never acknowledges something a crash could still lose. The live stream's
feed is kept beside the fold: what each event changed in the public view.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from broker.domain import events as domain
from broker.domain.replay import decoded, fold
from broker.domain.state import ConsoleState, apply
from broker.domain.stream import REPLAYED_EVENTS, PublicView, StreamFeed, public_view
from broker.runtime.clock import Clock
from broker.snapshot_files import SnapshotJob, SnapshotWriter
from broker.start_load import StartLoad
from eventlog import EventStore, StoreMark, format_record_timestamp
from eventlog.sqlite_store import SqliteEventStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerMark:
    """The ledger at a point of the open transaction: what `rollback_to` puts back (the state is immutable)."""

    store: StoreMark
    state: ConsoleState
    view: PublicView
    last_event_seq: int


class Ledger:
    def __init__(self, store: EventStore, clock: Clock) -> None:
        """Load: the newest snapshot that checks out, then the events after it (docs/decisions.md, "Years
        unattended: snapshots"). Without one, the whole log, as before; neither a missing archive nor an undecodable row
        stops the start (each is logged and left out)."""
        self.store = store
        self._clock = clock
        self._cause: str | None = None
        """The uuid of the call being handled (`caused_by`), stamped on every event emitted meanwhile."""
        self.feed = StreamFeed()
        self._start = StartLoad(store)
        start = self._start.snapshot()
        state, after = (start.state, start.seq) if start is not None else (ConsoleState(), 0)
        # Events before the newest REPLAYED_EVENTS (or before the snapshot) fold quietly; the rest also rebuild
        # the stream's memory of what changed. A snapshot newer than that bounds the memory: a watcher
        # positioned before it gets a fresh stream snapshot, as one further back than the ring always does.
        streamed_after = max(after, store.last_event_seq() - REPLAYED_EVENTS)
        if streamed_after:
            self.feed.begin_after(streamed_after)
        self.state, self.last_event_seq = fold(
            self._start.events(after), streamed_after, state, after, self._start.skipped
        )
        self.view: PublicView = public_view(self.state)
        for seq, event in decoded(self._start.events(streamed_after), self._start.skipped):
            self._advance(seq, event)
        self._start.loaded(self.last_event_seq, clock.monotonic())

    def emit(self, event: domain.Event) -> None:
        """Append an event and fold it into the state (and the stream), caused by the call being handled."""
        type_name, version, payload = domain.encode(event, self._cause)
        self._advance(self.store.append_event(type_name, version, payload, self.timestamp()), event)
        log.info("event %s", type_name)

    def _advance(self, seq: int, event: domain.Event) -> None:
        self.last_event_seq = seq
        self.state = apply(self.state, event)
        before, self.view = self.view, public_view(self.state)
        self.feed.observe(seq, before, self.view)

    @contextlib.contextmanager
    def caused_by(self, call_uuid: str | None) -> Iterator[None]:
        """Events emitted inside are caused by that call (None: by none). Set by the loop around a call's command
        and around each step of its flow, so a flow's later events name the call that started it."""
        previous, self._cause = self._cause, call_uuid
        try:
            yield
        finally:
            self._cause = previous

    def record_call(self, url: str, uuid: str, status_code: int, caller: str | None = None) -> None:
        self.store.append_call(url, uuid, self.timestamp(), status_code, caller)

    def commit(self) -> None:
        self.store.commit()
        self._snapshot_if_due()

    # --- snapshots: written off the loop's thread, so the next start folds only what came after ----------

    def _snapshot_if_due(self) -> None:
        writer = self._start.writer
        if writer is None or not writer.due(self.last_event_seq, self._clock.monotonic()):
            return
        job = self._snapshot_job()
        if job is not None:
            writer.submit(job, self._clock.monotonic())

    @property
    def snapshot_writer(self) -> SnapshotWriter | None:
        """The background writer (None for a store without a file); tests and a clean stop wait on it."""
        return self._start.writer

    def snapshot_before_seal(self) -> bool:
        """Write a snapshot of the committed state now, so the rows a seal is about to archive are covered
        (archives are never needed to start); False if it could not be written (then do not seal)."""
        writer = self._start.writer
        if writer is None:
            return True
        job = self._snapshot_job()
        return job is not None and writer.write_now(job, self._clock.monotonic())

    def _snapshot_job(self) -> SnapshotJob | None:
        """The committed state, its seq and chain hash; None while appends are pending (never snapshot those)."""
        if not isinstance(self.store, SqliteEventStore):
            return None
        seq, chain_hash = self.store.committed_event_head()
        if seq != self.last_event_seq:
            return None
        return SnapshotJob(self.state, seq, chain_hash, self.timestamp())

    # --- undo: the state stays the fold of what is committed -------------------------------------

    def mark(self) -> LedgerMark:
        """Remember this point, to undo what follows: a command that failed, a turn whose commit failed."""
        return LedgerMark(self.store.mark(), self.state, self.view, self.last_event_seq)

    def release(self, mark: LedgerMark) -> None:
        """Keep what followed `mark` (it stays pending until the turn's commit)."""
        self.store.release(mark.store)

    def rollback_to(self, mark: LedgerMark) -> None:
        """Undo the appends after `mark` and put the state back as it was there.

        Raises the store's StoreWriteError if a write failed meanwhile: the whole transaction is gone then,
        and only `rollback_turn` puts the ledger back.
        """
        self.store.rollback_to(mark.store)
        self._restore(mark)

    def rollback_turn(self, mark: LedgerMark) -> None:
        """Drop everything not committed and put the state back to `mark`, taken with nothing pending (the start
        of the loop's turn); always succeeds, and the store takes appends again.

        Why the live stream's feed starts afresh instead of being cut back: its ring may have dropped old
        entries for the undone ones; a watcher positioned anywhere gets a snapshot once, which is always right.
        """
        self.store.rollback()
        self._restore(mark)

    def _restore(self, mark: LedgerMark) -> None:
        undone = self.last_event_seq != mark.last_event_seq
        self.state, self.view, self.last_event_seq = mark.state, mark.view, mark.last_event_seq
        if undone:
            self.feed = StreamFeed()
            self.feed.begin_after(mark.last_event_seq)

    # --- time: the clock, moved by the bench's SimClockAdvanced events -------------------------------

    def wall_ns(self) -> int:
        return self._clock.wall_ns() + self.state.clock_offset_seconds * 1_000_000_000

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.wall_ns() / 1e9, datetime.UTC)

    def timestamp(self) -> str:
        return format_record_timestamp(self.wall_ns())
