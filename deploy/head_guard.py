"""The pure half of the API's guarded gunicorn worker (deploy/guarded_worker.py): when a request head is complete,
how large it may grow, and when a connection still shaking hands or sending its head is closed.

Why a guard at all: gunicorn's gthread worker gives each new connection a thread before it has sent anything,
and that thread then waits on the TLS handshake and on the request head with no deadline. Some sixty connections
that each send one byte hold every thread of the API's two processes, and `Status` stops answering for everyone
(issue 20, "hostile callers"). The guarded worker keeps a connection on its poller, holding no thread, until its
head is complete; this module decides what "complete", "too large" and "too late" mean, with no I/O and no
gunicorn, so that the rules are unit-tested in milliseconds (tests/unit/test_head_guard.py).
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

HANDSHAKE_SECONDS = 5.0
"""From accept to the end of the TLS handshake. A client on this machine (a HIS, a browser, curl) shakes hands in
milliseconds, so 5 s is generous to a loaded machine and still bounds how long a connection that sends nothing, or
its ClientHello a byte at a time, keeps one of gunicorn's `worker_connections` slots (it never holds a thread)."""

HEAD_SECONDS = 10.0
"""From the first byte of a request head to its blank line. Clients write a head in one go (a few hundred bytes),
so anything slower is a stalled or hostile client; it is closed rather than given a thread. Not a setting:
`serve` has no flag for it, and the tests wait out the real 5 s and 10 s (tests/integration/test_slow_clients.py)."""

LINGER_SECONDS = 2.0
"""How long a connection closed after its answer (`Connection: close`, an error) waits for the client's own close
while what it still sends is drained (RFC 9112 section 9.6: closing with unread bytes would reset the connection
and could cut the answer short). gunicorn's `util.close_graceful` waits as long, but blocking, in the worker's main
loop: a client that never closes stalled every other connection of the process for 2 s."""

MAX_HEAD_BYTES = 64 * 1024
"""The largest request head taken, blank line included. gunicorn's own limits (a 4094-byte request line, 100
fields of up to 8190 bytes) would allow ~800 KiB; a head that large, held for each of 1000 connections a process,
is memory a hostile client could pin. No caller of this console sends a head near 64 KiB (its own pages and a
HIS send a few hundred bytes; the `Cookie` a browser sends for `localhost` is bounded by gunicorn's 8190-byte
field anyway). gunicorn's parser still enforces its own limits on what is let through."""

LINGER_MAX_BYTES = 64 * 1024
"""The most a lingering close drains before it gives up and closes (as gunicorn's `close_graceful`)."""

_END = b"\r\n\r\n"


class Stage(enum.Enum):
    """Where a connection guarded by the worker is, each stage with its own deadline."""

    HANDSHAKE = "handshake"
    """Accepted, TLS not done yet: `HANDSHAKE_SECONDS` from accept."""
    IDLE = "idle"
    """Handshake done, nothing of a request yet: the keep-alive timeout, as gunicorn gives a kept-alive connection."""
    HEAD = "head"
    """Some of a request head has come: `HEAD_SECONDS` from its first byte."""
    LINGER = "linger"
    """Answered and half-closed, waiting for the client to close: `LINGER_SECONDS`."""


class HeadState(enum.Enum):
    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    """The blank line has come: gunicorn's parser can read the whole head without waiting for another byte."""
    TOO_LARGE = "too large"
    """More than `MAX_HEAD_BYTES` before the blank line: refused."""


def head_state(buffer: bytes | bytearray, limit: int = MAX_HEAD_BYTES, searched: int = 0) -> HeadState:
    """Whether `buffer`, the bytes of a connection so far, holds a complete request head, and whether it is too large.

    Complete means what gunicorn's parser needs in order to read the head without another read from the socket:
    a CRLF CRLF, after the one empty line (CRLF) that RFC 9112 section 2.2 lets a client send before the request
    line and that the parser skips. A head the parser will refuse (a bare LF, a bad request line) is let through
    only once it is complete too: the parser then answers 400 at once instead of reading on in a thread.

    `searched`: how far an earlier call already looked, so that a head arriving a byte at a time is searched
    once, not once per byte.
    """
    start = max(2 if buffer[:2] == b"\r\n" else 0, searched - (len(_END) - 1))
    end = buffer.find(_END, start)
    if end >= 0:
        return HeadState.COMPLETE if end + len(_END) <= limit else HeadState.TOO_LARGE
    # No blank line among `len(buffer)` bytes: it can end no earlier than at byte len(buffer) + 1.
    return HeadState.TOO_LARGE if len(buffer) >= limit else HeadState.INCOMPLETE


@dataclass(eq=False)
class PendingHead:
    """A guarded connection's progress: its stage, its deadline, and the bytes of a head read so far.

    Only the clock readings passed in move it, so that every rule is a unit test."""

    stage: Stage
    deadline: float
    buffer: bytearray = field(default_factory=bytearray)
    limit: int = MAX_HEAD_BYTES
    drained_bytes: int = 0
    """What a lingering close has read and dropped so far."""
    _searched: int = 0

    @classmethod
    def handshaking(cls, now: float) -> PendingHead:
        """A connection just accepted, TLS to come."""
        return cls(Stage.HANDSHAKE, now + HANDSHAKE_SECONDS)

    @classmethod
    def idle(cls, now: float, idle_seconds: float) -> PendingHead:
        """A connection ready for a request (plain HTTP just accepted, or TLS just done) that has sent none yet."""
        return cls(Stage.IDLE, now + idle_seconds)

    @classmethod
    def reading(cls, now: float, buffered: bytes = b"") -> PendingHead:
        """A kept-alive connection that became readable, or whose next request is partly read ahead already
        (`buffered`, from gunicorn's parser): its head's clock starts now, at its first byte."""
        pending = cls(Stage.HEAD, now + HEAD_SECONDS)
        pending.buffer += buffered
        return pending

    def shook_hands(self, now: float, idle_seconds: float) -> None:
        """The TLS handshake is done: wait for a request as for a kept-alive connection."""
        self.stage = Stage.IDLE
        self.deadline = now + idle_seconds

    def stirred(self, now: float) -> None:
        """The socket became readable: a request's first byte is on the wire (perhaps inside a TLS record not yet
        whole), so the head's clock starts now."""
        if self.stage is Stage.IDLE:
            self.stage = Stage.HEAD
            self.deadline = now + HEAD_SECONDS

    def received(self, data: bytes, now: float) -> HeadState:
        """`data` read from the connection: appended, and the head judged."""
        self.stirred(now)
        self.buffer += data
        state = head_state(self.buffer, self.limit, self._searched)
        self._searched = len(self.buffer)
        return state

    def state(self) -> HeadState:
        """The head judged on what was read so far (a read-ahead given back by gunicorn may be complete already)."""
        state = head_state(self.buffer, self.limit, self._searched)
        self._searched = len(self.buffer)
        return state

    @classmethod
    def lingering(cls, now: float) -> PendingHead:
        """A connection answered and half-closed: the client has `LINGER_SECONDS` to close its side."""
        return cls(Stage.LINGER, now + LINGER_SECONDS)

    def drained(self, count: int) -> bool:
        """`count` bytes read and dropped while lingering (0: the client closed); whether to keep lingering."""
        self.drained_bytes += count
        return count > 0 and self.drained_bytes < LINGER_MAX_BYTES


K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """Which of many keys are due, each key with one deadline that may move either way, a change in O(log n).

    A heap of (deadline, order, key) where an entry is current only while the key's deadline is still that value:
    an entry left behind by a moved or discarded key is dropped when it comes to the top. The worker's loop asks
    `due` every turn (at least once a second), with up to a thousand guarded connections a process, so a scan of
    every connection per turn would cost more than the connections themselves.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._current: dict[K, float] = {}
        self._order = itertools.count()
        self._ceiling: float | None = None

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: K) -> bool:
        return key in self._current

    def __iter__(self) -> Iterator[K]:
        """The keys with a deadline, as a copy: the caller may discard keys meanwhile."""
        return iter(list(self._current))

    def get(self, key: K) -> float | None:
        return self._current.get(key)

    def set(self, key: K, when: float) -> float:
        """Give `key` the deadline `when` (no later than the ceiling, once `cap` set one); return the one it got."""
        if self._ceiling is not None:
            when = min(when, self._ceiling)
        if self._current.get(key) != when:
            self._current[key] = when
            heapq.heappush(self._heap, (when, next(self._order), key))
        return when

    def discard(self, key: K) -> None:
        self._current.pop(key, None)

    def cap(self, ceiling: float) -> None:
        """No deadline later than `ceiling` from now on, those already set included: a stopping worker closes
        every guarded connection by then."""
        self._ceiling = ceiling if self._ceiling is None else min(self._ceiling, ceiling)
        for key, when in list(self._current.items()):
            if when > self._ceiling:
                self.set(key, self._ceiling)

    def due(self, now: float) -> list[K]:
        """The keys whose deadline is `now` or earlier, earliest first, each removed."""
        found: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._current.get(key) == when:
                del self._current[key]
                found.append(key)
        return found

    def next_due(self) -> float | None:
        """The earliest current deadline, if any (stale entries at the top are dropped on the way)."""
        while self._heap:
            when, _, key = self._heap[0]
            if self._current.get(key) == when:
                return when
            heapq.heappop(self._heap)
        return None
