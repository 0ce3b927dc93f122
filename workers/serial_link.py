"""The host side of the NHI dedicated reader's serial link (docs/serial-protocol.md), over pyserial.

One command at a time: number it, send it, wait for the answer with the same SEQ, resend the very same frame
when no valid answer comes (the device answers a repeated SEQ from its cache, so nothing runs twice), and let
`09` pending frames stretch the wait while a keypad command is in the holder's hands.

Errors carry the console's codes: 1201 (the port cannot be opened), 1202 (the reader is not answering).
Messages never hold payload bytes: a payload may be an APDU with card data or a SAM signature's input.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

import serial

from workers.serial_protocol import ANSWER_BIT, STATUS_PENDING, Frame, FrameReader, encode

BAUD_RATE = 115200
READ_TIMEOUT = 0.05
"""pyserial's per-read timeout: short, so the wait loop checks its deadlines often."""

ANSWER_TIMEOUT = 2.0
ATTEMPTS = 3
OVERALL_CAP = 130.0
"""A keypad command may wait 120 s with pendings; past this the reader is stuck sending `09` forever."""

CODE_PORT_UNAVAILABLE = 1201
CODE_NOT_ANSWERING = 1202


class SerialLinkError(Exception):
    """The link failed; `code` is the console's code (1201 or 1202). The message names no payload bytes."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SerialLink:
    """The host end of the line to one NHI dedicated reader.

    `call` is serialised by a lock: the protocol has one command in flight, and a second caller's frames
    would be mistaken for retransmissions. SEQ starts at a random value so that a freshly opened link does not
    meet the device's cached answer to an earlier host's command with the same SEQ.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, overall_cap: float = OVERALL_CAP) -> None:
        self._port: serial.SerialBase | None = None
        self._lock = threading.Lock()
        self._seq = secrets.randbelow(256)
        self._reader = FrameReader()
        self._clock = clock
        self._overall_cap = overall_cap
        self.path: str | None = None
        self.retransmissions = 0
        """Frames resent after a timeout, for tests and diagnostics."""

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self, path: str) -> None:
        """Open the port (a device path or a pyserial URL); 1201 if it cannot be opened."""
        with self._lock:
            self._close_port()
            try:
                port = serial.serial_for_url(
                    path, baudrate=BAUD_RATE, timeout=READ_TIMEOUT, write_timeout=ANSWER_TIMEOUT
                )
            except (serial.SerialException, OSError, ValueError) as error:
                # The OS's reason (no such file, permission) without anything the port might have sent.
                reason = type(error).__name__
                errno = getattr(error, "errno", None)
                raise SerialLinkError(
                    CODE_PORT_UNAVAILABLE,
                    f"the reader's port {path} cannot be opened ({reason}{f', errno {errno}' if errno else ''})",
                ) from None
            self._port = port
            self.path = path
            self._reader.reset()

    def close(self) -> None:
        with self._lock:
            self._close_port()

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass  # the device is gone already; there is nothing left to release

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self, cmd: int, payload: bytes = b"", *, answer_timeout: float = ANSWER_TIMEOUT, attempts: int = ATTEMPTS
    ) -> tuple[int, bytes]:
        """Send one command and return (status, rest of the answer's payload); 1202 if no valid answer came.

        Waits `answer_timeout` for each answer frame; a `09` pending frame with our SEQ restarts that wait
        (up to the overall cap). Answers with another SEQ or CMD are stale or foreign and are ignored.
        """
        if not 0 <= cmd <= 0x7F:
            raise ValueError("a command code is 0x00-0x7F (the top bit marks answers)")
        with self._lock:
            port = self._port
            if port is None:
                raise SerialLinkError(CODE_NOT_ANSWERING, "the reader's port is not open")
            self._seq = (self._seq + 1) & 0xFF
            frame = Frame(self._seq, cmd, bytes(payload))
            raw = encode(frame)
            started = self._clock()
            for attempt in range(max(1, attempts)):
                if attempt:
                    self.retransmissions += 1
                self._write(port, raw, cmd)
                result = self._await_answer(port, frame, answer_timeout, started)
                if result is not None:
                    return result
                if self._clock() - started >= self._overall_cap:
                    break
            raise SerialLinkError(
                CODE_NOT_ANSWERING, f"the reader is not answering (command 0x{cmd:02X}, {max(1, attempts)} attempts)"
            )

    def _write(self, port: serial.SerialBase, raw: bytes, cmd: int) -> None:
        try:
            port.write(raw)
            port.flush()
        except (serial.SerialException, OSError) as error:
            raise SerialLinkError(
                CODE_NOT_ANSWERING,
                f"the reader's port failed while sending command 0x{cmd:02X} ({type(error).__name__})",
            ) from None

    def _await_answer(
        self, port: serial.SerialBase, frame: Frame, answer_timeout: float, started: float
    ) -> tuple[int, bytes] | None:
        """The answer's (status, rest), or None when the wait for a frame ran out (then the caller resends)."""
        wanted = frame.cmd | ANSWER_BIT
        deadline = self._clock() + answer_timeout
        while True:
            now = self._clock()
            if now >= deadline or now - started >= self._overall_cap:
                return None
            try:
                chunk = port.read(max(1, port.in_waiting))  # type: ignore[attr-defined]  # every concrete port class has it; the stubs' SerialBase does not
            except (serial.SerialException, OSError) as error:
                # A pseudo-terminal whose master closed (the reader unplugged) reads EIO: it will not answer.
                raise SerialLinkError(
                    CODE_NOT_ANSWERING,
                    f"the reader's port failed while waiting for command 0x{frame.cmd:02X} ({type(error).__name__})",
                ) from None
            if not chunk:
                continue
            for received in self._reader.feed(chunk):
                if received.seq != frame.seq or received.cmd != wanted or not received.payload:
                    continue
                status = received.payload[0]
                if status == STATUS_PENDING:
                    deadline = self._clock() + answer_timeout
                    continue
                return status, received.payload[1:]
