"""The console bench's way to the virtual NHI reader's controls (`python -m sim.nhi_reader_service`).

SIMULATION ONLY. The reader runs as its own process, so that the console's serial worker meets it as a
separate device on a real pseudo-terminal; the control API (`/api/sim/v1/Keypad`, `/api/sim/v1/NhiReader...`)
reaches it through this client, over ZeroMQ REQ/REP with msgpack maps (the protocol is described in
`sim.nhi_reader_service`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import msgpack
import zmq

from sim.nhi_reader import KEYPAD_MAX_DIGITS

SLOT_NAMES: tuple[str, ...] = ("hc", "hpc")
"""The reader's slots as the controls name them: the health card's (slot 0) and the staff card's (slot 1)."""

TIMEOUT = 5.0
NOT_ANSWERING = "the bench NHI reader is not answering"


def valid_keys(keys: object) -> TypeGuard[str]:
    """One keypad entry as the reader takes it: 1 to 16 ASCII digits. Checked on both sides of the socket, so
    the control API refuses bad input without a round trip and the reader never trusts its caller."""
    return isinstance(keys, str) and 0 < len(keys) <= KEYPAD_MAX_DIGITS and keys.isascii() and keys.isdigit()


class NhiControlError(Exception):
    """The reader refused (`status` 400/404 and its message) or could not be reached (`status` 502)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class NhiReaderControl:
    """A client for one reader's control endpoint; it holds no socket, so it is safe to share across threads."""

    endpoint: str
    timeout: float = TIMEOUT

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Run one control and return the reader's answer (without `ok`); NhiControlError if it refused or is silent.

        A fresh REQ socket per call: a REQ socket whose answer never came is stuck in its send/receive lockstep,
        and a fresh one also reconnects to a reader the supervisor restarted. LINGER 0, so a call to a dead reader
        leaves nothing queued behind it.
        """
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        socket = context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.connect(self.endpoint)
            socket.send(msgpack.packb({"op": op, **args}, use_bin_type=True))
            if not socket.poll(int(self.timeout * 1000), zmq.POLLIN):
                raise NhiControlError(502, NOT_ANSWERING)
            raw = socket.recv()
        except zmq.ZMQError:
            raise NhiControlError(502, NOT_ANSWERING) from None
        finally:
            socket.close(linger=0)
        return _answer(raw)


def _answer(raw: bytes) -> dict[str, Any]:
    """The answer map without `ok`, or the refusal as an NhiControlError (a malformed answer is a 502)."""
    try:
        answer = msgpack.unpackb(raw, raw=False)
    except Exception:  # msgpack raises several unrelated types on garbage
        answer = None
    if not isinstance(answer, dict):
        raise NhiControlError(502, "the bench NHI reader answered something that is not a map")
    if answer.get("ok") is not True:
        status = answer.get("status")
        message = answer.get("error")
        raise NhiControlError(
            status if isinstance(status, int) else 502,
            message if isinstance(message, str) else "the bench NHI reader refused",
        )
    return {key: value for key, value in answer.items() if key != "ok"}
