"""The log read offline beside a running console: the state it replays to, and the events after a point."""

from __future__ import annotations

from pathlib import Path

from broker.domain.replay import replayed_snapshot
from eventlog.reader import LogReader

__all__ = ["event_types_after", "replayed_snapshot"]


def event_types_after(database: Path, after_seq: int, through_seq: int) -> list[str]:
    reader = LogReader(database)
    try:
        return [event.type for event in reader.events(after=after_seq) if event.seq <= through_seq]
    finally:
        reader.close()
