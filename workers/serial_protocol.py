"""The NHI dedicated reader's serial framing (docs/serial-protocol.md). Pure: no I/O, no threads, no clock.

Kept apart from the link (workers/serial_link.py) and the bench's virtual reader (sim/nhi_reader.py) so both
ends of the line share one encoder and one resynchronising parser, and the parser can be fuzzed on its own.

Frame: `A5 LEN_HI LEN_LO SEQ CMD PAYLOAD... CRC_HI CRC_LO`, CRC-16/CCITT-FALSE over LEN_HI..PAYLOAD.
"""

from __future__ import annotations

from dataclasses import dataclass

SOF = 0xA5
"""Start of frame. There is no byte stuffing: the length delimits the frame, so an `A5` may occur inside one."""

MAX_PAYLOAD = 4096
"""A larger length is a framing error: a receiver never waits for more than one whole frame."""

HEADER_LENGTH = 5
"""SOF, LEN_HI, LEN_LO, SEQ, CMD."""

CRC_LENGTH = 2
MAX_FRAME = HEADER_LENGTH + MAX_PAYLOAD + CRC_LENGTH
"""4103 bytes: the most a receiver ever buffers before deciding."""

ANSWER_BIT = 0x80
"""The device answers command `CMD` with `CMD | 0x80`."""

# Commands (host → device).
CMD_INFO = 0x01
CMD_STATUS = 0x02
CMD_TRANSMIT = 0x10
CMD_SAM_INFO = 0x20
CMD_SAM_SIGN = 0x21
CMD_SAM_AUTH_CARD = 0x22
CMD_KEYPAD_VERIFY = 0x30
CMD_KEYPAD_CHANGE = 0x31
CMD_CLOCK = 0x40

# Statuses: the first byte of every answer's payload.
STATUS_OK = 0x00
STATUS_NO_CARD = 0x01
STATUS_UNKNOWN_COMMAND = 0x02
STATUS_BAD_PARAMETER = 0x03
STATUS_KEYPAD_CANCELLED = 0x04
STATUS_KEYPAD_TIMEOUT = 0x05
STATUS_SAM_ERROR = 0x06
STATUS_BUSY = 0x07
STATUS_CARD_ERROR = 0x08
STATUS_PENDING = 0x09

SLOT_HC = 0x00
SLOT_HPC = 0x01

CONSOLE_CODE_BY_STATUS: dict[int, int] = {
    STATUS_NO_CARD: 1102,
    STATUS_UNKNOWN_COMMAND: 1202,
    STATUS_BAD_PARAMETER: 1202,
    STATUS_KEYPAD_CANCELLED: 1203,
    STATUS_KEYPAD_TIMEOUT: 1202,
    STATUS_SAM_ERROR: 1301,
    STATUS_BUSY: 1202,
}
"""The console code a failed status maps to (the doc's table); `08` depends on the command, so it is absent."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR (`123456789` → 0x29B1).

    Table-driven: the parser recomputes it at every candidate SOF while resynchronising through garbage.
    """
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame's content. Construction checks the ranges so an unencodable frame fails where it is made."""

    seq: int
    cmd: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= 0xFF:
            raise ValueError("SEQ is one byte")
        if not 0 <= self.cmd <= 0xFF:
            raise ValueError("CMD is one byte")
        if len(self.payload) > MAX_PAYLOAD:
            # The message gives the length only: payloads may carry card data.
            raise ValueError(f"a payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")

    @property
    def is_answer(self) -> bool:
        return bool(self.cmd & ANSWER_BIT)

    @property
    def status(self) -> int | None:
        """An answer's status byte (None for an empty payload, which no device should send)."""
        return self.payload[0] if self.payload else None

    def __repr__(self) -> str:
        # Never the payload's bytes: they may be card data, a signature input or an APDU.
        return f"Frame(seq={self.seq}, cmd=0x{self.cmd:02X}, payload=<{len(self.payload)} bytes>)"


def answer(request: Frame, status: int, rest: bytes = b"") -> Frame:
    """The device's answer to `request`: same SEQ, `CMD | 0x80`, status then the rest."""
    return Frame(request.seq, request.cmd | ANSWER_BIT, bytes([status]) + bytes(rest))


def encode(frame: Frame) -> bytes:
    """The frame's bytes on the line."""
    body = len(frame.payload).to_bytes(2, "big") + bytes([frame.seq, frame.cmd]) + bytes(frame.payload)
    return bytes([SOF]) + body + crc16_ccitt_false(body).to_bytes(2, "big")


class FrameReader:
    """Incremental parser: feed it whatever the line delivered, get the whole frames that passed the CRC.

    Resynchronisation follows the doc: a byte that is not SOF where a frame should start, an oversized length
    or a bad CRC drops ONE byte and the search for the next SOF resumes right after it (so a real frame that
    began inside a corrupted one is still found). `dropped` counts every byte thrown away. The internal
    buffer never holds more than one maximum frame (4103 bytes), whatever the size of the chunks fed, so a
    stream of garbage cannot make the host or the device grow without bound. `feed` never raises.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped = 0
        self.frames = 0

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame (≤ MAX_FRAME)."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial frame (e.g. after the port was reopened); the counters are kept."""
        self.dropped += len(self._buffer)
        self._buffer.clear()

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        frames: list[Frame] = []
        view = memoryview(bytes(data))
        position = 0
        while True:
            self._parse(frames)
            if position >= len(view):
                return frames
            # _parse leaves less than one frame behind, so there is always room for at least one more byte.
            room = MAX_FRAME - len(self._buffer)
            chunk = view[position : position + room]
            self._buffer += chunk
            position += len(chunk)

    def _drop(self, count: int) -> None:
        del self._buffer[:count]
        self.dropped += count

    def _parse(self, frames: list[Frame]) -> None:
        """Take every decidable frame off the front of the buffer; stop when more bytes are needed."""
        buffer = self._buffer
        while buffer:
            if buffer[0] != SOF:
                start = buffer.find(SOF)
                self._drop(len(buffer) if start < 0 else start)
                continue
            if len(buffer) < 3:
                return
            length = (buffer[1] << 8) | buffer[2]
            if length > MAX_PAYLOAD:
                self._drop(1)
                continue
            total = HEADER_LENGTH + length + CRC_LENGTH
            if len(buffer) < total:
                return
            end = HEADER_LENGTH + length
            received = (buffer[end] << 8) | buffer[end + 1]
            if crc16_ccitt_false(buffer[1:end]) != received:
                self._drop(1)
                continue
            frames.append(Frame(buffer[3], buffer[4], bytes(buffer[HEADER_LENGTH:end])))
            self.frames += 1
            del buffer[:total]


@dataclass(frozen=True, slots=True)
class SlotStatus:
    """One slot in a STATUS answer: whether a card is in it, how many insertions it has seen, the card's ATR."""

    slot: int
    present: bool
    insertions: int
    atr: bytes


class AnswerMalformed(ValueError):
    """An answer whose payload does not have the layout the doc gives its command."""


def parse_slot_statuses(rest: bytes) -> dict[int, SlotStatus]:
    """STATUS's answer after the status byte: per slot, slot, present, insertions (4, big-endian), ATR length, ATR."""
    slots: dict[int, SlotStatus] = {}
    position = 0
    while position < len(rest):
        if position + 7 > len(rest):
            raise AnswerMalformed("a slot entry is cut short")
        slot, present = rest[position], rest[position + 1]
        insertions = int.from_bytes(rest[position + 2 : position + 6], "big")
        length = rest[position + 6]
        atr = bytes(rest[position + 7 : position + 7 + length])
        if len(atr) != length or present not in (0, 1) or slot in slots or (present == 1) != bool(atr):
            raise AnswerMalformed("a slot entry is inconsistent")
        slots[slot] = SlotStatus(slot, present == 1, insertions, atr)
        position += 7 + length
    return slots
