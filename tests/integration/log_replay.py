"""The state an event log gives when replayed offline, as `nhi-console log replay` computes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.events import decode
from broker.state import ConsoleState, apply, snapshot
from eventlog.reader import LogReader


def replayed_snapshot(database: Path, through_seq: int) -> dict[str, Any]:
    """`snapshot()` of events 1..through_seq folded from an empty state; read-only, beside the running console."""
    state = ConsoleState()
    reader = LogReader(database)
    try:
        for event in reader.events():
            if event.seq > through_seq:
                break
            state = apply(state, decode(event.type, event.version, event.payload))
    finally:
        reader.close()
    return snapshot(state)


def event_types_after(database: Path, after_seq: int, through_seq: int) -> list[str]:
    reader = LogReader(database)
    try:
        return [event.type for event in reader.events(after=after_seq) if event.seq <= through_seq]
    finally:
        reader.close()
