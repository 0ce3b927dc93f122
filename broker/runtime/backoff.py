"""When to restart a process that died: quickly at first, slower if it keeps dying.

Shared by the supervisor (broker, API) and the broker (reader workers).  Pure:
the caller says how long the process ran; this says how long to wait.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RestartBackoff:
    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 5.0
    stable_after: float = 10.0
    """A process that ran this long before dying counts as healthy: its next restart is quick again."""
    failures: int = 0

    def delay_after_exit(self, uptime: float) -> float:
        if uptime >= self.stable_after:
            self.failures = 0
        delay = min(self.maximum, self.initial * self.factor**self.failures)
        if delay < self.maximum:
            # Stop counting once at the cap: a reader failing for hours must not overflow the exponent.
            self.failures += 1
        return delay
