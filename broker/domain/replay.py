"""Replay: the state an event log folds to, in one place. A starting broker rebuilds its state with it, and
`nhi-console log replay` and the crash tests compare a running broker's state with it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from broker.domain.events import Event, decode
from broker.domain.state import ConsoleState, apply, snapshot
from eventlog.reader import LogReader
from eventlog.store import StoredEvent


def decoded(stored: Iterable[StoredEvent]) -> Iterator[tuple[int, Event]]:
    """Each stored event as its domain event (old versions are upcast by `decode`), with its sequence number."""
    for event in stored:
        yield event.seq, decode(event.type, event.version, event.payload)


def fold(
    stored: Iterable[StoredEvent], through_seq: int | None = None, state: ConsoleState | None = None
) -> tuple[ConsoleState, int]:
    """The state after events 1..through_seq (all of them by default), and the last sequence number folded."""
    state = state or ConsoleState()
    last = 0
    for seq, event in decoded(stored):
        if through_seq is not None and seq > through_seq:
            break
        state, last = apply(state, event), seq
    return state, last


def replayed_snapshot(database: Path, through_seq: int) -> dict[str, Any]:
    """`snapshot()` of events 1..through_seq folded from an empty state; read-only, beside a running console."""
    reader = LogReader(database)
    try:
        return snapshot(fold(reader.events(), through_seq)[0])
    finally:
        reader.close()
