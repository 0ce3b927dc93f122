"""Put a virtual card into a real pcscd reader, through vsmartcard's vpcd driver.

vpcd is a pcscd reader driver that listens on a TCP port; whoever connects to
that port *is* the card in the reader.  So the bridge's socket is the card's
presence: `connect()` inserts the card, `disconnect()` pulls it and
`swap(card)` does both with another card, the way a clerk replaces one card
with the next.  One bridge serves one reader slot; the same bridge object may
be connected and disconnected any number of times.

Why `disconnect()` waits for vpcd's next presence probe (at most ~0.4 s) and
closes the socket right then instead of at once: vpcd notices a closed card
socket only when it next does I/O on it, and if that I/O is a power-off or an
APDU it just drops the socket; its next presence poll then accepts whatever
connection is queued.  A card re-inserted in that window would replace the old
one without pcscd ever seeing the slot empty (no event, same event counter), a
swap no application could detect.  Closing exactly when vpcd asks "still
there?" makes pcscd record the removal in that same poll, so an immediate
`connect()` (accepted at the next poll at the earliest) is a real, counted
insertion.  Called from inside the
card (the serving thread, e.g. a card that pulls itself in the middle of a
command) the close is immediate: that is the "pulled mid-command" case.

Wire protocol (vpcd listens and asks, the card connects and only answers): every
message is a 2-byte big-endian length and the payload.  A 1-byte payload is a
control message (0x00 power off, 0x01 power on, 0x02 reset, 0x04 get ATR); only
"get ATR" is answered.  vpcd also uses "get ATR" as its presence probe, so it
arrives every few hundred milliseconds while a card is connected.  Any other
payload is a command APDU, answered with the card's response APDU.

The card records its own transcript in `respond`; the bridge never touches it,
so tests see exactly the APDUs pcscd delivered, in order.  The bridge counts them
too (`card_commands`), across every card it has carried, as the bench's in-process
readers do (`cardCommands` of GET /api/sim/v1/Readers, sim/card_commands.py): a
test can read one number per reader slot however often its card was swapped.
"""

from __future__ import annotations

import logging
import socket
import threading
from types import TracebackType
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_PORT = 0x9C40
"""Away from vpcd's packaged default (0x8C7B), so a system-wide vpcd reader never collides with the bench."""

POWER_OFF = 0x00
POWER_ON = 0x01
RESET = 0x02
GET_ATR = 0x04


class BridgeableCard(Protocol):
    """The part of `sim.cards.base.VirtualCard` the bridge needs (kept local so the bridge has no bench imports)."""

    @property
    def atr(self) -> bytes: ...

    def respond(self, apdu: bytes) -> bytes: ...

    def reset(self) -> None: ...


class VpcdCardBridge:
    """One virtual card in one vpcd reader slot, served on a background thread.

    `quickack=False` exists only for `bench/vpcd_quickack.py`, to show what the
    re-arming buys; production and tests keep the default.
    """

    def __init__(
        self,
        card: BridgeableCard,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        quickack: bool = True,
        connect_timeout: float = 5.0,
        probe_timeout: float = 2.0,
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.quickack = quickack and hasattr(socket, "TCP_QUICKACK")
        self.connect_timeout = connect_timeout
        self.probe_timeout = probe_timeout
        """How long `disconnect()` waits for vpcd's presence probe (pcscd polls every 0.4 s) before just closing."""
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pull: threading.Event | None = None
        self._card_commands = 0

    @property
    def card_commands(self) -> int:
        """The command APDUs pcscd delivered through this bridge to its cards so far (control messages not)."""
        return self._card_commands

    @property
    def connected(self) -> bool:
        """True while the serving thread runs: the card is (or is about to be seen) in the reader."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def connect(self) -> VpcdCardBridge:
        """Insert the card (pcscd sees it at its next presence poll); ConnectionRefusedError if no vpcd listens.

        Returns self so `VpcdCardBridge(card, port=p).connect()` reads as one step.
        """
        with self._lock:
            if self.connected:
                raise RuntimeError("the card is already in the reader: disconnect() or swap() first")
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.settimeout(None)
            # vpcd writes the length and the payload with separate send()s and does not disable Nagle;
            # our answers go out as one write with Nagle off, and QUICKACK (re-armed after every read,
            # the kernel clears it on its own) stops our delayed ACK from stalling vpcd's second write.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._arm_quickack(sock)
            self._socket = sock
            self._pull = threading.Event()
            self._thread = threading.Thread(
                target=self._serve, args=(sock, self._pull), name=f"vpcd-bridge-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def disconnect(self) -> None:
        """Pull the card at vpcd's next presence probe (see the module docstring); returns once it is out.
        Idempotent."""
        with self._lock:
            sock, thread, pull = self._socket, self._thread, self._pull
            self._thread = None
            self._pull = None
        if thread is None or sock is None or pull is None:
            return
        if thread is not threading.current_thread():
            pull.set()
            thread.join(self.probe_timeout)
            if not thread.is_alive():
                return
            log.warning(
                "vpcd bridge on port %d: no presence probe within %.1fs; closing now", self.port, self.probe_timeout
            )
        self._close(sock)
        if thread is not threading.current_thread():
            thread.join(5.0)

    def swap(self, card: BridgeableCard) -> None:
        """Replace the card in the reader (pull the old, insert the new) with the same bridge."""
        self.disconnect()
        self.card = card
        self.connect()

    def __enter__(self) -> VpcdCardBridge:
        if not self.connected:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.disconnect()

    def _arm_quickack(self, sock: socket.socket) -> None:
        if self.quickack:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    @staticmethod
    def _close(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes our own thread blocked in recv
        except OSError:
            pass  # the peer already closed it
        sock.close()

    def _serve(self, sock: socket.socket, pull: threading.Event) -> None:
        """Answer vpcd until either side closes, or until the presence probe that follows a pull request."""
        previous = b""
        try:
            while True:
                message = self._receive(sock)
                if message is None:
                    return
                # A GET ATR right after power on / reset belongs to the power-up, not to a presence poll.
                probe = message == bytes([GET_ATR]) and previous not in (bytes([POWER_ON]), bytes([RESET]))
                if probe and pull.is_set():
                    return  # closed unanswered: vpcd reports "no card" in this very poll
                previous = message
                answer = self._answer(message)
                if answer is not None:
                    sock.sendall(len(answer).to_bytes(2, "big") + answer)
        except OSError as error:
            if self._socket is sock and not pull.is_set():  # not our own disconnect(): worth a log line
                log.info("vpcd bridge on port %d closed: %s", self.port, error)
        finally:
            with self._lock:
                if self._socket is sock:
                    self._socket = None
            self._close(sock)

    def _answer(self, message: bytes) -> bytes | None:
        if len(message) == 1:
            control = message[0]
            if control == GET_ATR:
                return bytes(self.card.atr)
            if control in (POWER_OFF, POWER_ON, RESET):
                self.card.reset()
                return None
            log.warning("vpcd bridge: unknown control byte 0x%02X ignored", control)
            return None
        self._card_commands += 1  # only the serving thread writes it
        return bytes(self.card.respond(message))

    def _receive(self, sock: socket.socket) -> bytes | None:
        header = self._receive_exactly(sock, 2)
        if header is None:
            return None
        length = int.from_bytes(header, "big")
        if length == 0:
            return b""
        return self._receive_exactly(sock, length)

    def _receive_exactly(self, sock: socket.socket, count: int) -> bytes | None:
        """TCP may split a message anywhere: loop until all of it arrived, None if the peer closed."""
        chunks: list[bytes] = []
        remaining = count
        while remaining:
            chunk = sock.recv(remaining)
            if not chunk:
                return None
            self._arm_quickack(sock)
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
