"""The worker's heartbeat: a thread of its own, on a socket of its own, independent of the command it runs.

The main loop runs card commands synchronously, and a slow card (an RSA signature on an old card), a PC/SC
transaction another program holds, or the serial link's own retransmits can keep it in one command for many
seconds. Its status reports stop meanwhile; these heartbeats do not, so the broker does not take a busy worker
for a dead one and kill it (and the card session, a verified PIN, with it).

ZeroMQ sockets are not thread-safe, so the thread owns a DEALER socket of its own, connected to the broker's
worker endpoint, whose identity is the main socket's identity plus `HEARTBEAT_SUFFIX` (the broker's
broker/runtime/liveness.py reads it so): the broker credits the worker those heartbeats. It sends nothing else
and reads nothing.

It vouches for the main loop only while that loop keeps turning or has been in one command for less than
`hung_after`: a call that never returns (a hung driver) stops the heartbeats, and the broker replaces the
worker, as it would one that died.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

import zmq

from contract.protocol import HEARTBEAT_SUFFIX, Heartbeat, build

HUNG_AFTER = 120.0
"""Seconds in one command after which the main loop is taken for hung: far beyond a card step's deadline
(contract/deadlines.py, 10 s) and the serial link's retransmits (2 s x 3 a frame); keypad waits run aside."""

SEND_QUEUE = 16
"""Heartbeats queued for a broker that is not reading (stopped, restarting): older ones say nothing more."""

log = logging.getLogger(__name__)


def new_identity(pid: int) -> bytes:
    """The worker's main socket identity: unique per process start, never starting with a zero byte (ZeroMQ
    keeps those for the identities it makes up)."""
    return b"worker-%d-%s" % (pid, secrets.token_hex(4).encode("ascii"))


def vouches(now: float, loop_turned: float, hung_after: float) -> bool:
    """Whether the heartbeat may still speak for the main loop, last seen turning at `loop_turned`."""
    return now - loop_turned <= hung_after


class HeartbeatThread:
    """Sends a `Heartbeat` twice every `interval` from its own socket while the main loop is not hung (twice:
    a late wake-up of this thread must not cost a third of the broker's patience)."""

    def __init__(
        self,
        context: zmq.Context,
        endpoint: str,
        identity: bytes,
        interval: float,
        *,
        hung_after: float = HUNG_AFTER,
        clock: Callable[[], float] = time.monotonic,
        configure: Callable[[zmq.Socket], None] | None = None,
    ) -> None:
        self._context = context
        self._endpoint = endpoint
        self._identity = identity + HEARTBEAT_SUFFIX
        self._interval = interval
        self._hung_after = hung_after
        self._clock = clock
        self._configure = configure
        """Options the main socket has too (an agent worker's Curve keys), set before connecting."""
        self._loop_turned = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def loop_turned(self) -> None:
        """The main loop is between commands (a float written under the GIL: no lock needed)."""
        self._loop_turned = self._clock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        socket = self._context.socket(zmq.DEALER)  # made in the thread that uses it, and only there
        socket.setsockopt(zmq.ROUTING_ID, self._identity)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, SEND_QUEUE)
        if self._configure is not None:
            self._configure(socket)
        socket.connect(self._endpoint)
        frames = build(Heartbeat())
        silenced = False
        try:
            while not self._stop.wait(self._interval / 2):
                if not vouches(self._clock(), self._loop_turned, self._hung_after):
                    if not silenced:
                        log.error(
                            "the worker has been in one command for over %.0f s: heartbeats stop", self._hung_after
                        )
                        silenced = True
                    continue
                silenced = False
                try:
                    socket.send_multipart(frames, zmq.NOBLOCK)
                except zmq.Again:
                    pass  # no broker reading now; the queued heartbeats say it all when it is back
        finally:
            socket.close(linger=0)
