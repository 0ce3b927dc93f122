"""Which worker connection serves which reader, which have gone silent, and which still owe an answer.

A worker is known by its ZeroMQ identity; its reports say which reader it owns.
Liveness counts the worker's own signs of life: its reports, its replies, and
the heartbeats its heartbeat thread sends from a socket of its own (identity:
the worker's identity + `HEARTBEAT_SUFFIX`), which go on while a slow card
command holds the worker's main loop.  A worker silent for `intervals`
heartbeat intervals is dead to us even if its process still exists: its
heartbeat thread stops vouching for a main loop stuck in one command for
minutes (workers/heartbeat.py).

Only time the broker spent listening counts as silence: a gap in the broker's
own loop (a SIGSTOP, a paused VM, a slow disk) counts at most one heartbeat
interval against any worker, since the heartbeats sent meanwhile wait unread in
the broker's queue.  Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.agent_link import LIVENESS_INTERVALS
from contract.protocol import HEARTBEAT_SUFFIX

ANSWER_WAIT_LIMIT = 150.0
"""Seconds a command sent to a worker may stay unanswered before the broker stops holding the reader's next
command for it: longer than a worker's main loop may be stuck before its heartbeats stop (120 s), so this
only matters for a request lost on the way, which would otherwise hold the reader for good."""


def heartbeat_owner(identity: bytes) -> bytes | None:
    """The worker identity a heartbeat socket's identity speaks for; None for any other socket."""
    if identity.endswith(HEARTBEAT_SUFFIX) and len(identity) > len(HEARTBEAT_SUFFIX):
        return identity[: -len(HEARTBEAT_SUFFIX)]
    return None


def counted_gap(gap: float, cap: float) -> float:
    """How much of a gap between two of the broker's judgements may count as a worker's silence: all of a
    normal turn, at most `cap` of a stall (the worker's heartbeats of the rest are queued, unread)."""
    return min(gap, cap)


@dataclass
class WorkerConnection:
    identity: bytes
    reader: str
    pid: int
    last_seen: float
    owed: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    """Request ids sent to this reader's worker and not yet answered, with when they were sent."""
    agent: str | None = None
    """The reader agent the worker runs under (issue 23), None for the console's own: an agent's `pid` is a
    process on another machine, which the broker never signals, and its loss is a reader leaving."""


class WorkerRegistry:
    def __init__(self, heartbeat_interval: float, intervals: int = LIVENESS_INTERVALS) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.limit = heartbeat_interval * intervals
        self._by_reader: dict[str, WorkerConnection] = {}
        self._last_turn: float | None = None

    def seen(
        self, identity: bytes, reader: str, pid: int, now: float, agent: str | None = None
    ) -> WorkerConnection | None:
        """Note a report; returns the connection it replaced, if another one held this reader."""
        previous = self._by_reader.get(reader)
        if previous is not None and previous.identity == identity:
            previous.pid, previous.last_seen = pid, now  # the same worker: what it still owes stays owed
            return None
        self._by_reader[reader] = WorkerConnection(identity, reader, pid, now, agent=agent)
        return previous

    def touch(self, identity: bytes, now: float) -> list[str]:
        """Any message from a known worker counts as a heartbeat; returns its readers (one, or a device's slots)."""
        readers = []
        for connection in self._by_reader.values():
            if connection.identity == identity:
                connection.last_seen = now
                readers.append(connection.reader)
        return readers

    def turned(self, now: float) -> float:
        """The broker judges liveness now: forgive every worker what of the gap since the last judgement was
        a stall of the broker's own. Returns the seconds forgiven (0.0 after a normal turn)."""
        gap = 0.0 if self._last_turn is None else max(0.0, now - self._last_turn)
        self._last_turn = now
        forgiven = gap - counted_gap(gap, self.heartbeat_interval)
        if forgiven > 0:
            for connection in self._by_reader.values():
                connection.last_seen = min(now, connection.last_seen + forgiven)
                for request_id, sent in connection.owed.items():
                    connection.owed[request_id] = min(now, sent + forgiven)
        return forgiven

    def sent(self, reader: str, request_id: str, now: float) -> None:
        """A command went to this reader's worker: it owes an answer, even one that comes too late."""
        connection = self._by_reader.get(reader)
        if connection is not None:
            connection.owed[request_id] = now

    def answered(self, identity: bytes, request_id: str) -> None:
        """A reply came from this worker (in time or not): the command no longer holds its reader."""
        for connection in self._by_reader.values():
            if connection.identity == identity:
                connection.owed.pop(request_id, None)

    def busy(self, reader: str, now: float) -> bool:
        """Whether the reader's worker still runs a command sent to it (its answer may come after the broker
        answered the caller at the deadline): the next command waits here, not in the worker's queue, so
        that a command whose caller was answered already is never run."""
        connection = self._by_reader.get(reader)
        if connection is None:
            return False
        for request_id, sent in list(connection.owed.items()):
            if now - sent > ANSWER_WAIT_LIMIT:
                del connection.owed[request_id]  # lost on the way: the worker would have stopped beating
        return bool(connection.owed)

    def get(self, reader: str) -> WorkerConnection | None:
        return self._by_reader.get(reader)

    def silent(self, now: float) -> list[WorkerConnection]:
        return [c for c in self._by_reader.values() if now - c.last_seen > self.limit]

    def forget(self, reader: str) -> WorkerConnection | None:
        return self._by_reader.pop(reader, None)

    def connections(self) -> list[WorkerConnection]:
        return list(self._by_reader.values())

    def local_connections(self) -> list[WorkerConnection]:
        """The console's own workers: processes of this machine, whose pids mean something here."""
        return [connection for connection in self._by_reader.values() if connection.agent is None]

    def remote_readers(self) -> set[str]:
        """The readers agents serve now (issue 23)."""
        return {connection.reader for connection in self._by_reader.values() if connection.agent is not None}
