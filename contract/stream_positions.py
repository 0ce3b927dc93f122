"""Where a live-stream event sits (`seq-index`): what the broker writes as an event id and the API reads back
from `Last-Event-ID`. Shared, so that the API parses a position without loading the broker's stream."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AFTER_ALL", "Position", "parse_position"]

AFTER_ALL = 999_999
"""An index past every stream event of one log event (a bare seq means: after all of it)."""
_POSITION = re.compile(r"^([0-9]{1,18})(?:-([0-9]{1,6}))?$")


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a stream event sits: after log event `seq`'s first `index` stream events."""

    seq: int
    index: int

    def text(self) -> str:
        return f"{self.seq}-{self.index}"


def parse_position(text: str | None) -> Position | None:
    """A `Last-Event-ID` as the stream wrote it (`123-0`), or a bare log seq (`123`: after all of it); else None."""
    if text is None:
        return None
    found = _POSITION.match(text.strip())
    if found is None:
        return None
    seq, index = found.groups()
    return Position(int(seq), int(index) if index is not None else AFTER_ALL)
