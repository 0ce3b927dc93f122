"""Card commands on their way to a reader's worker: one in flight per reader, the rest in a bounded queue.

One in flight per reader is what keeps two clients' APDU sequences from ever
interleaving on a card (the worker also holds a PC/SC transaction around each
sequence, against programs outside the console); commands to different
readers proceed in parallel.  A full queue answers "busy" at once instead of
dropping anything.  Pure: the loop sends what this says to send.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUE_LIMIT = 32
"""Commands waiting per reader; a reader is slow (a card, a keypad), so a longer queue only hides trouble."""


@dataclass
class PendingCommand:
    """A flow's card step on its way to a reader's worker. Every card command is a flow (one step is a flow
    too): its reply resumes the flow, and the reader stays held for that flow until it ends."""

    flow_id: int
    reader: str
    command: str
    args: dict[str, Any]
    deadline: float
    worker_request_id: str = ""
    sent: bool = False


@dataclass
class ReaderQueues:
    limit: int = QUEUE_LIMIT
    _waiting: dict[str, deque[PendingCommand]] = field(default_factory=dict)
    _in_flight: dict[str, PendingCommand] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)
    """reader -> the flow holding it between its steps: only that flow's commands go to it."""

    def submit(self, command: PendingCommand, *, ahead: bool = False) -> bool:
        """Queue a command (`ahead`: before those waiting); False when its reader's queue is full (answer busy,
        run nothing)."""
        waiting = self._waiting.setdefault(command.reader, deque())
        if len(waiting) >= self.limit:
            return False
        if ahead:
            waiting.appendleft(command)
        else:
            waiting.append(command)
        return True

    def next_to_send(self, reader: str, new_id: Callable[[], str]) -> PendingCommand | None:
        """The command to send to this reader now, if it has none in flight."""
        if reader in self._in_flight:
            return None
        command = self._next_waiting(reader)
        if command is None:
            return None
        self._waiting[reader].remove(command)
        self._held[reader] = command.flow_id
        command.worker_request_id = new_id()
        command.sent = True
        self._in_flight[reader] = command
        return command

    def _next_waiting(self, reader: str) -> PendingCommand | None:
        waiting = self._waiting.get(reader)
        if not waiting:
            return None
        holder = self._held.get(reader)
        if holder is None:
            return waiting[0]
        return next((command for command in waiting if command.flow_id == holder), None)

    def readers_with_work(self) -> list[str]:
        return [
            reader
            for reader in self._waiting
            if reader not in self._in_flight and self._next_waiting(reader) is not None
        ]

    def release(self, flow_id: int) -> None:
        """A flow ended: the readers it held take other commands again."""
        for reader in [reader for reader, holder in self._held.items() if holder == flow_id]:
            del self._held[reader]

    def complete(self, reader: str, worker_request_id: str) -> PendingCommand | None:
        command = self._in_flight.get(reader)
        if command is None or command.worker_request_id != worker_request_id:
            return None  # a late reply to something already answered (timed out): drop it
        del self._in_flight[reader]
        return command

    def expired(self, now: float) -> list[PendingCommand]:
        gone = [c for c in self._in_flight.values() if now >= c.deadline]
        for command in gone:
            del self._in_flight[command.reader]
        for waiting in self._waiting.values():
            late = [c for c in waiting if now >= c.deadline]
            for command in late:
                waiting.remove(command)
            gone.extend(late)
        return gone

    def fail_in_flight(self, reader: str) -> PendingCommand | None:
        """The reader's worker died: its command in flight has an unknown outcome and is never resent."""
        return self._in_flight.pop(reader, None)

    def drop_reader(self, reader: str) -> list[PendingCommand]:
        self._held.pop(reader, None)
        dropped = list(self._waiting.pop(reader, deque()))
        in_flight = self._in_flight.pop(reader, None)
        return dropped + ([in_flight] if in_flight else [])
