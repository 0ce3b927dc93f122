"""ISO 7816-4 as the bench's virtual cards hear it: short command APDUs, status words,
PIN retry counters, and the skeleton every bench card shares.

A virtual card must never raise on what a reader sends it: a real card answers
anything, and the console's error handling is only exercised if ours does too.
So the parser is strict (it raises `MalformedApdu`) and `BenchCard.respond`
turns every failure into a status word.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sim.cards.base import Transcript
from sim.cards.card_keys import card_key, external_authenticate_cryptogram, internal_authenticate_response

log = logging.getLogger(__name__)

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282
"""Fewer bytes remained than Le asked for: the data returned is the rest of the file."""
SW_AUTHENTICATION_FAILED = 0x6300
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_STATUS_NOT_SATISFIED = 0x6982
SW_AUTHENTICATION_METHOD_BLOCKED = 0x6983
SW_CONDITIONS_OF_USE_NOT_SATISFIED = 0x6985
SW_NO_CURRENT_EF = 0x6986
SW_WRONG_DATA = 0x6A80
SW_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6A86
SW_REFERENCED_DATA_NOT_FOUND = 0x6A88
SW_OFFSET_OUTSIDE_EF = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_NO_PRECISE_DIAGNOSIS = 0x6F00
"""Only answered if a card's own code fails: a bench bug, logged, never a protocol answer."""


def sw_tries_left(tries: int) -> int:
    """`63Cx`: a wrong PIN, with x the tries that remain (ISO 7816-4 counter encoding)."""
    return 0x63C0 | (tries & 0x0F)


class MalformedApdu(ValueError):
    """The bytes are not a short command APDU. Messages name lengths, never content (it may hold a PIN)."""


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """One short command APDU. `le` is Ne, the decoded count (Le byte 00 means 256), or None when absent."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    @property
    def case(self) -> int:
        """ISO 7816-3 case: 1 nothing, 2 Le only, 3 Lc and data, 4 both."""
        if self.data:
            return 4 if self.le is not None else 3
        return 2 if self.le is not None else 1

    def to_bytes(self) -> bytes:
        """The encoding `parse_command` reads back, so tests and clients can build commands symmetrically."""
        out = bytes([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            if len(self.data) > 255:
                raise ValueError("short APDUs carry at most 255 data bytes")
            out += bytes([len(self.data)]) + self.data
        if self.le is not None:
            if not 1 <= self.le <= 256:
                raise ValueError("Ne is 1 to 256 in a short APDU")
            out += bytes([self.le & 0xFF])
        return out


def parse_command(raw: bytes) -> CommandApdu:
    """Decode a short APDU, refusing anything whose lengths disagree.

    A first length byte of 0 followed by more bytes would announce an extended
    APDU; the bench's cards speak short APDUs only, so that is malformed too.
    """
    raw = bytes(raw)
    n = len(raw)
    if n < 4:
        raise MalformedApdu(f"a command APDU has at least 4 bytes, this one {n}")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    if n == 4:
        return CommandApdu(cla, ins, p1, p2)
    if n == 5:
        return CommandApdu(cla, ins, p1, p2, le=raw[4] or 256)
    lc = raw[4]
    if lc == 0:
        raise MalformedApdu("Lc is 0 with bytes after it (extended APDUs are not supported)")
    if n == 5 + lc:
        return CommandApdu(cla, ins, p1, p2, data=raw[5:])
    if n == 6 + lc:
        return CommandApdu(cla, ins, p1, p2, data=raw[5:-1], le=raw[-1] or 256)
    raise MalformedApdu(f"Lc is {lc} but {n - 5} bytes follow it")


def respond(data: bytes, sw: int) -> bytes:
    """A response APDU: data, then SW1 SW2."""
    return bytes(data) + (sw & 0xFFFF).to_bytes(2, "big")


def is_digits(data: bytes, shortest: int, longest: int) -> bool:
    """PINs on the bench cards are ASCII digits of a bounded length; anything else is refused as data."""
    return shortest <= len(data) <= longest and all(0x30 <= b <= 0x39 for b in data)


class PinReference:
    """A PIN or PUK and its retry counter, as a card keeps them (they survive a reset; `verified` does not).

    `value` None means no PIN is set (the health card's PIN is optional).
    Comparisons are constant-time; nothing here ever prints the value.
    """

    def __init__(self, value: str | None, max_tries: int, tries_left: int | None = None) -> None:
        self._value = value.encode("ascii") if value is not None else None
        self.max_tries = max_tries
        self.tries_left = max_tries if tries_left is None else tries_left
        self.verified = False

    def __repr__(self) -> str:  # never show the value
        return f"PinReference(set={self.is_set}, tries_left={self.tries_left}, verified={self.verified})"

    @property
    def is_set(self) -> bool:
        return self._value is not None

    @property
    def blocked(self) -> bool:
        return self.tries_left <= 0

    def status(self) -> int:
        """VERIFY without data: how a host reads the counter without spending a try."""
        if self._value is None:
            return SW_REFERENCED_DATA_NOT_FOUND
        if self.blocked:
            return SW_AUTHENTICATION_METHOD_BLOCKED
        if self.verified:
            return SW_OK
        return sw_tries_left(self.tries_left)

    def verify(self, candidate: bytes) -> int:
        """A blocked reference refuses even the right value, and its counter does not move any more."""
        if self._value is None:
            return SW_REFERENCED_DATA_NOT_FOUND
        if self.blocked:
            return SW_AUTHENTICATION_METHOD_BLOCKED
        if hmac.compare_digest(candidate, self._value):
            self.tries_left = self.max_tries
            self.verified = True
            return SW_OK
        self.tries_left -= 1
        self.verified = False
        return sw_tries_left(self.tries_left)

    def replace(self, value: str | None, *, verified: bool) -> None:
        """A new value (or none) starts with a full counter."""
        self._value = value.encode("ascii") if value is not None else None
        self.tries_left = self.max_tries
        self.verified = verified and value is not None


Handler = Callable[[CommandApdu], bytes]


class BenchCard:
    """What both bench cards do before their own commands: the lock, the transcript, CLA/INS dispatch,
    SELECT (application and EF), READ BINARY, GET CHALLENGE and the simulated mutual authentication.

    Every command but SELECT and GET CHALLENGE needs the card's application
    selected (`6985` otherwise): a real card's PIN and keys live in its
    application, not at the MF. Security state (selection, authentication,
    PIN verification, the pending challenge) lives in RAM and is lost on reset;
    retry counters are in EEPROM and are not.
    """

    atr: bytes
    aid: bytes
    pin_p2: int
    """The P2 byte naming the card's PIN in VERIFY and CHANGE REFERENCE DATA."""
    _pin: PinReference
    """Set by each card: both bench cards have exactly one PIN, verified the same way."""

    def __init__(self, card_number: str, files: dict[bytes, bytes] | None = None) -> None:
        self.transcript = Transcript()
        self._lock = threading.RLock()
        self._key = card_key(card_number)
        self._files = dict(files or {})
        self._selected = False
        self._current_ef: bytes | None = None
        self._authenticated = False
        self._challenge: bytes | None = None
        self._handlers: dict[int, Handler] = {
            0xA4: self._select,
            0xB0: self._read_binary,
            0x84: self._get_challenge,
            0x88: self._internal_authenticate,
            0x82: self._external_authenticate,
        }

    # The VirtualCard protocol -------------------------------------------------

    def respond(self, apdu: bytes) -> bytes:
        """Never raises: a card that throws would take the reader back-end down with it."""
        with self._lock:
            try:
                raw = bytes(apdu)
            except Exception:  # not even bytes: record it as nothing
                raw = b""
            try:
                answer = self._answer(raw)
            except Exception:
                log.exception("bench card %s failed on INS %s", type(self).__name__, raw[1:2].hex() or "?")
                answer = respond(b"", SW_NO_PRECISE_DIAGNOSIS)
            self.transcript.add(raw, answer)
            return answer

    def reset(self) -> None:
        with self._lock:
            self._selected = False
            self._current_ef = None
            self._authenticated = False
            self._challenge = None
            self._forget_verification()

    # State a test or the bench may look at ------------------------------------

    @property
    def selected(self) -> bool:
        return self._selected

    @property
    def authenticated(self) -> bool:
        """Raised by a successful EXTERNAL AUTHENTICATE: the host (the console's SAM) proved it holds the card key."""
        return self._authenticated

    @property
    def pin_verified(self) -> bool:
        return self._pin.verified

    # For subclasses --------------------------------------------------------------

    def _forget_verification(self) -> None:
        self._pin.verified = False

    def _pin_command_guard(self, command: CommandApdu, p1: int) -> bytes | None:
        if command.p1 != p1 or command.p2 != self.pin_p2:
            return self._sw(SW_WRONG_P1P2)
        if not self._selected:
            return self._sw(SW_CONDITIONS_OF_USE_NOT_SATISFIED)
        if command.le is not None:
            return self._sw(SW_WRONG_LENGTH)
        return None

    def _verify(self, command: CommandApdu) -> bytes:
        """Without data it reads the counter without spending a try; with data, anything but the PIN is
        a wrong try (the card compares, it does not judge the format), and a blocked PIN refuses
        everything without moving the counter."""
        refused = self._pin_command_guard(command, 0x00)
        if refused is not None:
            return refused
        if not command.data:
            return self._sw(self._pin.status())
        return self._sw(self._pin.verify(command.data))

    def _answer(self, raw: bytes) -> bytes:
        try:
            command = parse_command(raw)
        except MalformedApdu:
            return respond(b"", SW_WRONG_LENGTH)
        if command.cla != 0x00:
            return respond(b"", SW_CLA_NOT_SUPPORTED)
        handler = self._handlers.get(command.ins)
        if handler is None:
            return respond(b"", SW_INS_NOT_SUPPORTED)
        return handler(command)

    @staticmethod
    def _sw(sw: int) -> bytes:
        return respond(b"", sw)

    # SELECT ---------------------------------------------------------------------

    def _select(self, command: CommandApdu) -> bytes:
        """A failed SELECT leaves the current selection as it was (ISO 7816-4)."""
        if command.p1 == 0x04 and command.p2 in (0x00, 0x0C):
            if not command.data:
                return self._sw(SW_WRONG_LENGTH)
            if command.data != self.aid:
                return self._sw(SW_NOT_FOUND)
            self._selected = True
            self._current_ef = None
            return self._sw(SW_OK)
        if command.p1 == 0x02 and command.p2 in (0x00, 0x0C):
            if len(command.data) != 2:
                return self._sw(SW_WRONG_LENGTH)
            if not self._selected or command.data not in self._files:
                return self._sw(SW_NOT_FOUND)
            self._current_ef = command.data
            return self._sw(SW_OK)
        return self._sw(SW_WRONG_P1P2)

    def _read_binary(self, command: CommandApdu) -> bytes:
        """Chunked reads of the current EF. Reading exactly at the end answers `6282` with no data,
        so a host that loops until `6282` stops even when the file fills its last chunk."""
        if command.p1 & 0x80:
            return self._sw(SW_WRONG_P1P2)  # short EF identifiers are not supported
        if command.data or command.le is None:
            return self._sw(SW_WRONG_LENGTH)
        if self._current_ef is None:
            return self._sw(SW_NO_CURRENT_EF)
        content = self._files[self._current_ef]
        offset = (command.p1 << 8) | command.p2
        if offset > len(content):
            return self._sw(SW_OFFSET_OUTSIDE_EF)
        chunk = content[offset : offset + command.le]
        return respond(chunk, SW_OK if len(chunk) == command.le else SW_END_OF_FILE)

    # Challenge and the bench's mutual authentication -----------------------------

    def _get_challenge(self, command: CommandApdu) -> bytes:
        if command.p1 or command.p2:
            return self._sw(SW_WRONG_P1P2)
        if command.data or command.le != 8:
            return self._sw(SW_WRONG_LENGTH)
        self._challenge = secrets.token_bytes(8)
        return respond(self._challenge, SW_OK)

    def _internal_authenticate(self, command: CommandApdu) -> bytes:
        """The card proves it holds its key: HMAC over the host's challenge (the bench's scheme, not the NHI's)."""
        if command.p1 or command.p2:
            return self._sw(SW_WRONG_P1P2)
        if not self._selected:
            return self._sw(SW_CONDITIONS_OF_USE_NOT_SATISFIED)
        if len(command.data) != 8:
            return self._sw(SW_WRONG_LENGTH)
        return respond(internal_authenticate_response(self._key, command.data), SW_OK)

    def _external_authenticate(self, command: CommandApdu) -> bytes:
        """The host proves it holds the card's key. Any EXTERNAL AUTHENTICATE consumes the pending
        challenge, whatever its outcome, so a cryptogram can never be replayed."""
        challenge, self._challenge = self._challenge, None
        if command.p1 or command.p2:
            return self._sw(SW_WRONG_P1P2)
        if not self._selected:
            return self._sw(SW_CONDITIONS_OF_USE_NOT_SATISFIED)
        if len(command.data) != 32 or command.le is not None:
            return self._sw(SW_WRONG_LENGTH)
        if challenge is None:
            return self._sw(SW_CONDITIONS_OF_USE_NOT_SATISFIED)
        if hmac.compare_digest(command.data, external_authenticate_cryptogram(self._key, challenge)):
            self._authenticated = True
            return self._sw(SW_OK)
        self._authenticated = False
        return self._sw(SW_AUTHENTICATION_FAILED)

    # For the cards' GET DATA reads ---------------------------------------------------

    def _get_data_block_guard(self, command: CommandApdu) -> bytes | None:
        """The common checks of the `00 CA xx yy 02 00 00` reads; None when the read may proceed."""
        if not self._selected:
            return self._sw(SW_CONDITIONS_OF_USE_NOT_SATISFIED)
        if len(command.data) != 2:
            return self._sw(SW_WRONG_LENGTH)
        if command.data != b"\x00\x00":
            return self._sw(SW_WRONG_DATA)
        return None
