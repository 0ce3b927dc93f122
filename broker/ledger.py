"""The ledger: the event log and the state it folds to. Load (replay) at start, append and fold, commit.

Every change of the console's state is an event appended here and folded at once, so the state is always the
fold of the log. Appends go into the store's open transaction; the broker's loop commits once per turn and only
then sends the replies, so a reply never acknowledges something a crash could still lose. The live stream's
feed is kept beside the fold: what each event changed in the public view.
"""

from __future__ import annotations

import datetime
import logging

from broker.domain import events as domain
from broker.domain.replay import decoded, fold
from broker.domain.state import apply
from broker.domain.stream import REPLAYED_EVENTS, PublicView, StreamFeed, public_view
from broker.runtime.clock import Clock
from eventlog import EventStore, format_record_timestamp

log = logging.getLogger(__name__)


class Ledger:
    def __init__(self, store: EventStore, clock: Clock) -> None:
        self.store = store
        self._clock = clock
        self.feed = StreamFeed()
        streamed_after = max(0, store.last_event_seq() - REPLAYED_EVENTS)
        if streamed_after:
            self.feed.begin_after(streamed_after)
        # The log's head folds quietly; its newest events also rebuild the stream's memory of what changed.
        self.state, self.last_event_seq = fold(store.events(), streamed_after)
        self.view: PublicView = public_view(self.state)
        for seq, event in decoded(store.events(after=streamed_after)):
            self._advance(seq, event)

    def emit(self, event: domain.Event) -> None:
        """Append an event and fold it into the state (and the stream)."""
        type_name, version, payload = domain.encode(event)
        self._advance(self.store.append_event(type_name, version, payload, self.timestamp()), event)
        log.info("event %s", type_name)

    def _advance(self, seq: int, event: domain.Event) -> None:
        self.last_event_seq = seq
        self.state = apply(self.state, event)
        before, self.view = self.view, public_view(self.state)
        self.feed.observe(seq, before, self.view)

    def record_call(self, url: str, uuid: str, status_code: int) -> None:
        self.store.append_call(url, uuid, self.timestamp(), status_code)

    def commit(self) -> None:
        self.store.commit()

    # --- time: the clock, moved by the bench's SimClockAdvanced events -------------------------------

    def wall_ns(self) -> int:
        return self._clock.wall_ns() + self.state.clock_offset_seconds * 1_000_000_000

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.wall_ns() / 1e9, datetime.UTC)

    def timestamp(self) -> str:
        return format_record_timestamp(self.wall_ns())
