"""The state an event log replays to: what a restarted broker rebuilds, and what `nhi-console log replay` and the
crash tests compare a running broker's state with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.domain.events import decode
from broker.domain.state import ConsoleState, apply, snapshot
from eventlog.reader import LogReader


def replayed_snapshot(database: Path, through_seq: int) -> dict[str, Any]:
    """`snapshot()` of events 1..through_seq folded from an empty state; read-only, beside a running console."""
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
