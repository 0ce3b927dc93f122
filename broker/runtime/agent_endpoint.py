"""The console's agent endpoint (`serve --agents tcp://ADDRESS:PORT`): a CurveZMQ ROUTER and its ZAP handler.

The handler is pyzmq's `zmq.auth.ThreadAuthenticator`, given one credentials callback: a client key is let in
when its key id is enrolled (`enrolled`, which the broker's loop replaces whenever the enrolments change), and a
refusal is queued for the loop, which records it (throttled: broker/runtime/agent_routes.py). ZeroMQ asks the
handler during the handshake, so an unknown key is refused before any message of its is read. The handler is
started before the socket binds: a Curve server without a ZAP handler would let every key in.

What the loop gets from `receive` is a message already attributed: the route (agent_routes.route) and the key id
the handshake authenticated (ZeroMQ's `User-Id`, which the handler set to the key id); the worker's own frames
are parsed by the same trust-nothing parser as a local worker's.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from broker.runtime.agent_routes import route
from contract.agent_link import ZAP_DOMAIN, configure_console_end, key_id, key_id_of_text

log = logging.getLogger(__name__)

_ZAP_LOG = logging.getLogger("nhi_console.agent_zap")
_ZAP_LOG.setLevel(logging.WARNING)  # pyzmq's debug lines name client keys: never emitted
_ZAP_LOG.propagate = True


@dataclass(frozen=True)
class AgentMessage:
    route: bytes
    """The registry's identity for the sending socket (the heartbeat socket's included)."""
    key_id: str
    frames: list[bytes]


class AgentGate(ThreadAuthenticator):
    """ZAP for the agent endpoint: enrolled key ids in, every other key refused and queued for the log."""

    def __init__(self, context: zmq.Context) -> None:
        super().__init__(context, log=_ZAP_LOG)
        self.enrolled: frozenset[str] = frozenset()
        """Replaced as a whole by the broker's loop (one reference swap: no lock between the two threads)."""
        self.refusals: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._address = ""
        self.configure_curve_callback(ZAP_DOMAIN, self)

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        """The peer's address, for the refusal's record (pyzmq's callback is given the key alone)."""
        self._address = msg[3].decode("utf-8", "replace")[:64] if len(msg) > 3 else ""
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials callback: `key` is the client's public key in Z85."""
        try:
            identifier = key_id_of_text(key)
        except ValueError:
            return False
        if identifier in self.enrolled:
            return True
        self.refusals.put((identifier, self._address))
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The `User-Id` of every message on an admitted connection: the key id, never the key."""
        return key_id(client_public_key)


class AgentEndpoint:
    """The socket, its gate, and the translation of its envelope into routes."""

    def __init__(self, context: zmq.Context, address: str, secret_file: Path, heartbeat_seconds: float) -> None:
        self._address = address
        self.gate = AgentGate(context)
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        configure_console_end(self.socket, secret_file, heartbeat_seconds)

    def start(self) -> None:
        self.gate.start()  # before the bind: no connection is ever admitted without it
        self.socket.bind(self._address)
        log.info("listening for reader agents on %s", self._address)

    def receive(self) -> AgentMessage | None:
        """The next message waiting, or None; a message without an authenticated key is dropped."""
        try:
            parts = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        user = parts[-1].get("User-Id") if parts else None
        if not user or len(parts) < 2:
            log.warning("dropped a message from the agent endpoint without an authenticated key")
            return AgentMessage(b"", "", [])
        identity = parts[0].bytes
        return AgentMessage(route(str(user), identity), str(user), [part.bytes for part in parts[1:]])

    def send(self, identity: bytes, frames: list[bytes]) -> None:
        self.socket.send_multipart([identity, *frames], zmq.NOBLOCK)

    def close(self) -> None:
        self.socket.close(linger=0)
        self.gate.stop()
