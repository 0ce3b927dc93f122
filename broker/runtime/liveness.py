"""Which worker connection serves which reader, and which have gone silent.

A worker is known by its ZeroMQ identity; its reports say which reader it owns.
A worker silent for `intervals` heartbeat intervals is dead to us even if its
process still exists (a hung pcscd call, say).  Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorkerConnection:
    identity: bytes
    reader: str
    pid: int
    last_seen: float


class WorkerRegistry:
    def __init__(self, heartbeat_interval: float, intervals: int = 3) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.limit = heartbeat_interval * intervals
        self._by_reader: dict[str, WorkerConnection] = {}

    def seen(self, identity: bytes, reader: str, pid: int, now: float) -> WorkerConnection | None:
        """Note a report; returns the connection it replaced, if another one held this reader."""
        previous = self._by_reader.get(reader)
        self._by_reader[reader] = WorkerConnection(identity, reader, pid, now)
        if previous is not None and previous.identity != identity:
            return previous
        return None

    def touch(self, identity: bytes, now: float) -> list[str]:
        """Any message from a known worker counts as a heartbeat; returns its readers (one, or a device's slots)."""
        readers = []
        for connection in self._by_reader.values():
            if connection.identity == identity:
                connection.last_seen = now
                readers.append(connection.reader)
        return readers

    def get(self, reader: str) -> WorkerConnection | None:
        return self._by_reader.get(reader)

    def silent(self, now: float) -> list[WorkerConnection]:
        return [c for c in self._by_reader.values() if now - c.last_seen > self.limit]

    def forget(self, reader: str) -> WorkerConnection | None:
        return self._by_reader.pop(reader, None)

    def connections(self) -> list[WorkerConnection]:
        return list(self._by_reader.values())
