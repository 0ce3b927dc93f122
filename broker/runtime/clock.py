"""The one source of time: wall time for timestamps, monotonic time for liveness.

Injected everywhere so that tests (and, later, the bench's `POST /api/sim/v1/Clock`)
can move time without sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def wall_ns(self) -> int:
        """Nanoseconds since the epoch, for timestamps people read."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, for heartbeats and timeouts."""
        ...


class SystemClock:
    def wall_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to: for tests of expiry and liveness."""

    def __init__(self, wall_ns: int = 1_700_000_000_000_000_000, monotonic: float = 1000.0) -> None:
        self._wall_ns = wall_ns
        self._monotonic = monotonic

    def wall_ns(self) -> int:
        return self._wall_ns

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._wall_ns += int(seconds * 1_000_000_000)
        self._monotonic += seconds
