"""Replay: the state an event log folds to, in one place. A starting broker rebuilds its state with it (from
its newest snapshot, when one checks out), and `nhi-console log replay`/`verify` and the crash tests compare a
running broker's state, or a snapshot, with it.

One rule for rows this console cannot decode (a newer console's events after a downgrade, a damaged payload):
they are skipped and reported through `skipped`, never a reason not to start; without `skipped` they raise, as
before, for callers that want to stop there."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from broker.domain.events import Event, UnknownEvent, decode
from broker.domain.state import ConsoleState, apply, snapshot
from eventlog.reader import LogReader
from eventlog.store import StoredEvent

Skipped = Callable[[StoredEvent, UnknownEvent], None]
"""Told of each stored event that cannot be decoded, which is then left out of the fold."""


def decoded(stored: Iterable[StoredEvent], skipped: Skipped | None = None) -> Iterator[tuple[int, Event]]:
    """Each stored event as its domain event (old versions are upcast by `decode`), with its sequence number."""
    for event in stored:
        try:
            domain_event = decode(event.type, event.version, event.payload)
        except UnknownEvent as error:
            if skipped is None:
                raise
            skipped(event, error)
            continue
        yield event.seq, domain_event


def fold(
    stored: Iterable[StoredEvent],
    through_seq: int | None = None,
    state: ConsoleState | None = None,
    after_seq: int = 0,
    skipped: Skipped | None = None,
) -> tuple[ConsoleState, int]:
    """The state after events through_seq (all of them by default), and the last sequence number folded.

    `state` is the state after event `after_seq` (a snapshot's), and `stored` the events after it; by default
    the empty state before event 1.
    """
    state = state or ConsoleState()
    last = after_seq
    for seq, event in decoded(stored, skipped):
        if through_seq is not None and seq > through_seq:
            break
        state, last = apply(state, event), seq
    return state, last


def replayed_snapshot(database: Path, through_seq: int) -> dict[str, Any]:
    """`snapshot()` of events 1..through_seq folded from an empty state; read-only, beside a running console.

    Reads the archives (ArchiveMissingError if one is gone) and skips undecodable rows, as the broker does."""
    reader = LogReader(database)
    try:
        return snapshot(fold(reader.events(), through_seq, skipped=_ignore)[0])
    finally:
        reader.close()


def _ignore(event: StoredEvent, error: UnknownEvent) -> None:
    """The broker logged these rows when it skipped them; an offline replay skips them the same way."""
