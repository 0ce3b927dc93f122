"""Who an agent's message is from, and how many refusals the log is told about: the pure part of the agent link.

Identities. The broker's registry knows a worker by its ZeroMQ identity. The console's own workers choose theirs
(`worker-<pid>-<random>`); an agent's workers choose theirs too, on another socket, so two of them could name the
same identity, and an enrolled agent could name another agent's. The broker therefore keys an agent's worker by
its *route*: a zero byte (which no worker identity starts with: ZeroMQ keeps those for the ones it makes up), the
key id the link authenticated, then the identity the worker chose. A message is credited only to the worker of
the key it came with; a reply under another agent's identity matches nothing.

Refusals. Every connection from an unenrolled key is refused by the ZAP handler, and a refused agent retries
every few seconds for as long as it runs (a machine whose enrolment was removed, or a stranger's). The log gets
the first refusal of a key at once and then at most one a key a `PER_KEY_SECONDS`, carrying the attempts since
the last; and no more than `PER_WINDOW` a window of `WINDOW_SECONDS` in all, against a caller who makes up a new
key for each attempt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Final

from contract.agent_link import remote_reader, split_remote
from contract.commands import MAX_READER_NAME
from contract.protocol import WorkerStatus

ROUTE_MARK: Final = b"\x00"
KEY_ID_BYTES: Final = 64
"""A key id in hex (contract/agent_link.key_id)."""

PER_KEY_SECONDS: Final = 60.0
WINDOW_SECONDS: Final = 60.0
PER_WINDOW: Final = 30
KEYS_REMEMBERED: Final = 1024


def route(key_id: str, identity: bytes) -> bytes:
    """The registry's identity for an agent worker's socket."""
    return ROUTE_MARK + key_id.encode("ascii") + identity


def split_route(identity: bytes) -> tuple[str, bytes] | None:
    """(key id, the worker's own identity) of an agent worker's route; None for a worker of the console's."""
    if not identity.startswith(ROUTE_MARK) or len(identity) <= 1 + KEY_ID_BYTES:
        return None
    return identity[1 : 1 + KEY_ID_BYTES].decode("ascii", "replace"), identity[1 + KEY_ID_BYTES :]


def remote_status(agent: str, status: WorkerStatus) -> WorkerStatus | None:
    """An agent worker's report under the console's name for its reader; None for a name too long to be one
    (a HIS could not name it: `readerName` is at most MAX_READER_NAME characters)."""
    name = remote_reader(agent, status.reader)
    return None if len(name) > MAX_READER_NAME else replace(status, reader=name)


def agent_reader(name: str) -> str:
    """The agent's own name of a remote reader (what its worker is told a command is for)."""
    parts = split_remote(name)
    return name if parts is None else parts[1]


@dataclass(frozen=True)
class Refusal:
    """A refused agent key, to record: `attempts` since the last one recorded for that key."""

    key_id: str
    address: str
    attempts: int


@dataclass
class _Seen:
    reported_at: float
    unreported: int = 0


class RefusalThrottle:
    """Which refusals reach the log (see the module's docstring). Pure: time is passed in."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, _Seen] = OrderedDict()
        self._window_start = float("-inf")
        self._in_window = 0

    def note(self, key_id: str, address: str, now: float) -> Refusal | None:
        seen = self._keys.get(key_id)
        if seen is not None and now - seen.reported_at < PER_KEY_SECONDS:
            seen.unreported += 1
            return None
        if now - self._window_start >= WINDOW_SECONDS:
            self._window_start, self._in_window = now, 0
        if self._in_window >= PER_WINDOW:
            return None
        self._in_window += 1
        attempts = 1 + (seen.unreported if seen is not None else 0)
        self._keys[key_id] = _Seen(now)
        self._keys.move_to_end(key_id)
        while len(self._keys) > KEYS_REMEMBERED:
            self._keys.popitem(last=False)
        return Refusal(key_id, address, attempts)
