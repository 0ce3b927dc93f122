"""The live event stream (`GET /api/events/v1/Stream`): what a page or a HIS may watch, derived from the log.

The official console must be polled; ours also streams. What it streams is not
the event log itself (its payloads are the audit trail's, with card pseudonyms)
but a public view of the state, diffed event by event: a card went in or out
of a reader, a reader was plugged or unplugged, a card's (or the SAM's) status
changed, the session or the default reader changed, the record was cleared.
No card number, ID number, name, pseudonym or secret is in it.

Each stream event is positioned by the log event it comes from and its index
among that event's stream events (`Position`, written `seq-index`), so a client
that reconnects with `Last-Event-ID` gets exactly what came after. The broker
keeps the last `RING_SIZE` stream events in memory, rebuilt from the log when
it starts; a client further behind than that gets a fresh snapshot instead.
Everything here is pure.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from broker.domain.state import ConsoleState, render_status
from contract.stream_positions import AFTER_ALL, Position

RING_SIZE = 4096
"""Stream events kept for reconnecting clients: hours of a clinic's day, a few hundred KB."""
REPLAYED_EVENTS = 4 * RING_SIZE
"""Log events a starting broker turns into stream events again (the newest): enough to fill the ring in any
ordinary day, without doubling the time a long log takes to fold. Before them, a client starts afresh."""


CARDS = ("sam", "hpc", "hc")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    position: Position
    type: str
    data: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {"id": self.position.text(), "type": self.type, "data": self.data}


@dataclass(frozen=True, slots=True)
class PublicView:
    """The part of the state the stream shows, comparable field by field."""

    status: dict[str, Any]
    readers: tuple[tuple[str, str | None, int | None], ...]
    """(reader, card kind or None, the insertion it belongs to): a new insertion of the same kind is news."""
    default_reader: str | None
    record_cleared_through: int


def public_view(state: ConsoleState) -> PublicView:
    return PublicView(
        status=render_status(state),
        readers=tuple(
            (
                name,
                None if reader.card is None else reader.card.kind,
                None if reader.card is None else reader.card.session,
            )
            for name, reader in sorted(state.readers.items())
        ),
        default_reader=state.default_reader,
        record_cleared_through=state.record_cleared_through,
    )


def snapshot(view: PublicView) -> dict[str, Any]:
    """Everything a watcher needs to draw the console as it is now (the stream's first message)."""
    return {
        "status": view.status,
        "readers": [{"name": name, "card": kind} for name, kind, _ in view.readers],
        "defaultReader": view.default_reader,
    }


def stream_changes(before: PublicView, after: PublicView) -> list[tuple[str, dict[str, Any]]]:
    """The stream events that take a watcher from `before` to `after`, in a fixed order."""
    changes: list[tuple[str, dict[str, Any]]] = []
    old_readers = {name: (kind, session) for name, kind, session in before.readers}
    new_readers = {name: (kind, session) for name, kind, session in after.readers}
    for name in sorted(old_readers.keys() - new_readers.keys()):
        kind = old_readers[name][0]
        if kind is not None:
            changes.append(("card-removed", {"reader": name, "kind": kind}))
        changes.append(("reader-unplugged", {"reader": name}))
    for name in sorted(new_readers.keys() - old_readers.keys()):
        changes.append(("reader-plugged", {"reader": name}))
        if new_readers[name][0] is not None:
            changes.append(("card-inserted", {"reader": name, "kind": new_readers[name][0]}))
    for name in sorted(old_readers.keys() & new_readers.keys()):
        (old_kind, old_session), (new_kind, new_session) = old_readers[name], new_readers[name]
        if (old_kind, old_session) == (new_kind, new_session):
            continue
        if old_kind is not None:
            changes.append(("card-removed", {"reader": name, "kind": old_kind}))
        if new_kind is not None:
            changes.append(("card-inserted", {"reader": name, "kind": new_kind}))
    session_fields = ("initialized", "name", "readerName")
    if any(before.status[field] != after.status[field] for field in session_fields):
        changes.append(("session-changed", {field: after.status[field] for field in session_fields}))
    for card in CARDS:
        if before.status[card] != after.status[card]:
            changes.append(("level-changed", {"card": card, **after.status[card]}))
    if before.default_reader != after.default_reader:
        changes.append(("default-reader-changed", {"reader": after.default_reader}))
    if before.record_cleared_through != after.record_cleared_through:
        changes.append(("record-cleared", {}))
    return changes


class StreamFeed:
    """The last `ring_size` stream events, fed with each log event's before-and-after views."""

    def __init__(self, ring_size: int = RING_SIZE) -> None:
        self._ring: deque[StreamEvent] = deque()
        self._ring_size = ring_size
        self._dropped_through: Position | None = None
        """The newest stream event no longer kept; None while nothing has been dropped."""
        self.position = Position(0, 0)
        """Where the stream is now: after every stream event so far."""

    def begin_after(self, seq: int) -> None:
        """The stream is rebuilt from after log event `seq`: a client positioned at or before it starts afresh."""
        self._dropped_through = self.position = Position(seq, AFTER_ALL)

    def observe(self, seq: int, before: PublicView, after: PublicView) -> None:
        changes = stream_changes(before, after)
        for index, (type_name, data) in enumerate(changes):
            if len(self._ring) == self._ring_size:
                self._dropped_through = self._ring.popleft().position
            self._ring.append(StreamEvent(Position(seq, index), type_name, data))
        if changes:
            self.position = Position(seq, len(changes) - 1)

    def after(self, position: Position) -> list[StreamEvent] | None:
        """The stream events after `position`, oldest first; None if some of them are no longer kept, or if
        `position` is one this stream never reached (the data dir was reset, say): the watcher starts afresh."""
        if position > self.position:
            return None
        if self._dropped_through is not None and position < self._dropped_through:
            return None
        newer: list[StreamEvent] = []
        for event in reversed(self._ring):
            if event.position <= position:
                break
            newer.append(event)
        return newer[::-1]
