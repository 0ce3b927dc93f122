"""The NHI dedicated reader (健保讀卡機) as a worker back-end, over our serial protocol (docs/serial-protocol.md).

One worker owns the port and serves the reader's two card slots as two readers (`contract.nhi_reader_slots`):
the health-card slot named by the port, the staff-card slot by the port with `#hpc`. Besides the slots'
APDUs it runs the device's own commands: the physical SAM (its identity, its signature, authenticating a card
inside the reader), the keypad (a PIN typed by the holder goes from the keypad to the card, never to us), and
the reader's clock.

The port is opened by the presence poll, not at start, so a worker whose port is missing or silent still
reports (with a fault: 1201 the port cannot be opened, 1202 the reader does not answer) and recovers by itself
when the reader is back. Cards seen before a fault are reported gone: the reader may have been power-cycled,
and a card reset has lost its authentication, so it comes back as a new insertion.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from contract.nhi_reader_slots import slot_readers
from contract.status_codes import StatusCode
from contract.text import CONTROL_CHARACTERS
from workers.apdu import HC_PIN_P2
from workers.health_card_pin import HealthCardError, set_pin_with, verify_pin_with
from workers.seam import CardAbsent, CardReader, PresenceChanged, ReaderFault
from workers.serial_link import SerialLink, SerialLinkError
from workers.serial_protocol import (
    CMD_CLOCK,
    CMD_KEYPAD_CHANGE,
    CMD_KEYPAD_VERIFY,
    CMD_SAM_AUTH_CARD,
    CMD_SAM_INFO,
    CMD_SAM_SIGN,
    CMD_STATUS,
    CMD_TRANSMIT,
    CONSOLE_CODE_BY_STATUS,
    SLOT_HC,
    SLOT_HPC,
    STATUS_BAD_PARAMETER,
    STATUS_CARD_ERROR,
    STATUS_KEYPAD_TIMEOUT,
    STATUS_NO_CARD,
    STATUS_OK,
    STATUS_SAM_ERROR,
    AnswerMalformed,
    parse_slot_statuses,
)

POLL_INTERVAL = 0.25
"""How often the reader is asked which cards it holds (it has no way to tell us unasked)."""
STATUS_ANSWER_TIMEOUT = 1.0
STATUS_ATTEMPTS = 2
"""A silent reader is noticed within about 2 s; one lost answer alone does not end the cards' sessions."""

KEYPAD_SECONDS_MIN, KEYPAD_SECONDS_MAX = 1, 120

DEVICE_COMMANDS = frozenset(
    {
        "ReadSamInfo",
        "SignWithReaderSam",
        "AuthenticateCardWithSam",
        "ReadReaderClock",
        "VerifyHcPinOnKeypad",
        "SetHcPinOnKeypad",
    }
)
LONG_COMMANDS = frozenset({"VerifyHcPinOnKeypad", "SetHcPinOnKeypad"})
"""They wait for the holder at the keypad, up to two minutes."""

_SLOT_BY_KIND = {"hc": SLOT_HC, "hpc": SLOT_HPC}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""What JSON's `\\ud800` escape decodes to: no reply (msgpack) can carry it."""


def _fit_for_text(value: object) -> bool:
    """Text the console can keep and show (no control character: contract.text) and send."""
    return isinstance(value, str) and not CONTROL_CHARACTERS.search(value) and not _LONE_SURROGATE.search(value)


class _SlotReader:
    """One slot as a `CardReader`; presence comes from the device's poll, not from here."""

    def __init__(self, device: NhiReader, slot: int) -> None:
        self._device = device
        self._slot = slot

    def wait_for_change(self, timeout: float) -> PresenceChanged | None:
        raise NotImplementedError("the device polls presence for all its slots")

    def transmit(self, apdu: bytes) -> bytes:
        return self._device.transmit(self._slot, apdu)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # No other program shares the port (the worker holds it open), and the device runs one command at
        # a time: there is nothing to lock against.
        yield

    def close(self) -> None:
        pass


class NhiReader:
    """The device behind one port; see the module's docstring."""

    long_commands = LONG_COMMANDS

    def __init__(
        self,
        port: str,
        *,
        device: str | None = None,
        link: SerialLink | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._device = device or port
        """What is opened: the port's path, or the device a Windows name (`COM3`) is given to; the slots are
        named by `port` either way."""
        self._link = link or SerialLink()
        self._monotonic = monotonic
        self._names = {_SLOT_BY_KIND[kind]: name for kind, name in slot_readers(port).items()}
        self._slot_by_name = {name: slot for slot, name in self._names.items()}
        self._slots = {name: _SlotReader(self, slot) for slot, name in self._names.items()}
        self._known: dict[int, tuple[int, bytes] | None] = dict.fromkeys(self._names)
        self._pending: collections.deque[PresenceChanged] = collections.deque()
        self._next_poll = 0.0
        self._open_lock = threading.Lock()
        self._presence_lock = threading.Lock()
        """`_known` is changed by the poll (the watcher thread) and by a command that finds the line broken."""
        self._fault: int | None = int(StatusCode.COMPORT_OPEN_FAILED)
        """Until the first poll has opened the port, the reader cannot be used."""

    # The worker's view (SlotDevice) ---------------------------------------------------------------------

    def slot_readers(self) -> dict[str, CardReader]:
        return dict(self._slots)

    def fault(self) -> int | None:
        return self._fault

    def device_commands(self) -> frozenset[str]:
        return DEVICE_COMMANDS

    def close(self) -> None:
        self._link.close()

    def wait_for_change(self, timeout: float) -> PresenceChanged | None:
        if self._pending:
            return self._pending.popleft()
        wait = self._next_poll - self._monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
            if self._next_poll > self._monotonic():
                return None
        self._pending.extend(self._poll())
        self._next_poll = self._monotonic() + POLL_INTERVAL
        return self._pending.popleft() if self._pending else None

    # Presence --------------------------------------------------------------------------------------------

    def _poll(self) -> list[PresenceChanged]:
        changes: list[PresenceChanged] = []
        if not self._link.is_open:
            changes += self._forget_cards()
            try:
                self._ensure_open()
            except ReaderFault:
                return changes
        try:
            status, rest = self._link.call(CMD_STATUS, answer_timeout=STATUS_ANSWER_TIMEOUT, attempts=STATUS_ATTEMPTS)
            if status != STATUS_OK:
                raise AnswerMalformed("STATUS was refused")
            slots = parse_slot_statuses(rest)
        except SerialLinkError as error:
            self._lost(error.code)  # its cards' removals are queued
            return changes
        except AnswerMalformed:
            self._lost(int(StatusCode.NHI_READER_FAILED))
            return changes
        self._fault = None
        with self._presence_lock:
            for slot, name in self._names.items():
                entry = slots.get(slot)
                seen = (entry.insertions, entry.atr) if entry is not None and entry.present else None
                known = self._known[slot]
                if seen == known:
                    continue
                if known is not None and seen is not None:
                    changes.append(PresenceChanged(None, name))  # swapped between two polls: the old one left
                self._known[slot] = seen
                changes.append(PresenceChanged(None if seen is None else seen[1], name))
        return changes

    def _forget_cards(self) -> list[PresenceChanged]:
        with self._presence_lock:
            gone = [
                PresenceChanged(None, self._names[slot]) for slot, known in self._known.items() if known is not None
            ]
            self._known = dict.fromkeys(self._names)
        return gone

    def _ensure_open(self) -> None:
        with self._open_lock:
            if self._link.is_open:
                return
            try:
                self._link.open(self._device)
            except SerialLinkError as error:
                self._fault = error.code
                raise ReaderFault(error.code, error.message) from None

    def _lost(self, code: int) -> None:
        """The line failed: close it, so the next poll opens it afresh (a replugged reader is a new pty), and
        report its cards gone now: a command may reopen the line before the next poll, and the cards of a
        reader that was away must not pass for the insertions they were."""
        self._fault = code
        self._link.close()
        self._pending.extend(self._forget_cards())

    # Commands --------------------------------------------------------------------------------------------

    def _call(self, cmd: int, payload: bytes = b"", *, failures: dict[int, int] | None = None, **options: Any) -> bytes:
        """One command's answer after `00`; a failed status raises with the console's code for it."""
        self._ensure_open()
        try:
            status, rest = self._link.call(cmd, payload, **options)
        except SerialLinkError as error:
            self._lost(error.code)
            raise ReaderFault(error.code, error.message) from None
        if status == STATUS_OK:
            return rest
        if status == STATUS_NO_CARD:
            raise CardAbsent("no card in that slot")
        code = (failures or {}).get(status) or CONSOLE_CODE_BY_STATUS.get(status, int(StatusCode.NHI_READER_FAILED))
        raise ReaderFault(code, _STATUS_MESSAGES.get(status, f"the reader answered status {status:02X}"))

    def transmit(self, slot: int, apdu: bytes) -> bytes:
        answer = self._call(
            CMD_TRANSMIT, bytes([slot]) + apdu, failures={STATUS_CARD_ERROR: int(StatusCode.PCSC_OTHER_ERROR)}
        )
        if len(answer) < 2:
            # The seam promises data + SW1 SW2, and the card modules parse nothing shorter (as pcsc_reader).
            raise ReaderFault(int(StatusCode.NHI_READER_FAILED), "the reader's answer to an APDU has no status word")
        return answer

    def run_device_command(self, reader: str, command: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        slot = self._slot_by_name[reader]
        if command == "ReadSamInfo":
            return self._sam_info()
        if command == "SignWithReaderSam":
            data = args.get("data")
            if not isinstance(data, bytes) or not 1 <= len(data) <= 512:
                return int(StatusCode.BAD_PARAMETER), {"message": "data must be 1 to 512 bytes"}
            return int(StatusCode.OK), {"signature": self._call(CMD_SAM_SIGN, data)}
        if command == "AuthenticateCardWithSam":
            self._call(CMD_SAM_AUTH_CARD, bytes([slot]), failures={STATUS_CARD_ERROR: int(StatusCode.PCSC_OTHER_ERROR)})
            return int(StatusCode.OK), {}
        if command == "ReadReaderClock":
            text = self._call(CMD_CLOCK).decode("ascii", "replace")
            if len(text) != 14 or not text.isdigit():
                return int(StatusCode.NHI_READER_FAILED), {"message": "the reader's clock answer is malformed"}
            return int(StatusCode.OK), {"readerTime": text}
        seconds = args.get("seconds")
        if (
            not isinstance(seconds, int)
            or isinstance(seconds, bool)
            or not KEYPAD_SECONDS_MIN <= seconds <= KEYPAD_SECONDS_MAX
        ):
            return int(StatusCode.BAD_PARAMETER), {"message": "seconds must be 1 to 120"}
        transmit = self._slots[reader].transmit
        try:
            if command == "VerifyHcPinOnKeypad":
                outcome, state = verify_pin_with(transmit, lambda: self._keypad(CMD_KEYPAD_VERIFY, slot, seconds))
                return int(StatusCode.OK), {
                    "outcome": outcome,
                    "hasPin": state.has_pin,
                    "verified": state.verified,
                    "triesLeft": state.tries_left,
                    "blocked": state.blocked,
                }
            if command == "SetHcPinOnKeypad":
                return int(StatusCode.OK), {
                    "outcome": set_pin_with(transmit, lambda: self._keypad(CMD_KEYPAD_CHANGE, slot, seconds))
                }
        except HealthCardError as error:
            return int(StatusCode.PCSC_OTHER_ERROR), {"message": str(error)}
        return int(StatusCode.BAD_PARAMETER), {"message": f"unknown device command {command!r}"}

    def _sam_info(self) -> tuple[int, dict[str, Any]]:
        raw = self._call(CMD_SAM_INFO, failures={STATUS_SAM_ERROR: int(StatusCode.SAM_LEVEL1_FAILED)})
        try:
            document = json.loads(raw.decode("utf-8"))
            info = {key: document[key] for key in ("samId", "hospitalId", "hospitalName", "hospitalShortName")}
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, KeyError, TypeError):
            return int(StatusCode.SAM_LEVEL1_FAILED), {"message": "the reader's SAM answer is malformed"}
        if not all(_fit_for_text(value) for value in info.values()) or not (
            len(info["samId"]) == 12 and info["samId"].isascii() and info["samId"].isdigit()
        ):
            return int(StatusCode.SAM_LEVEL1_FAILED), {"message": "the reader's SAM answer is malformed"}
        return int(StatusCode.OK), info

    def _keypad(self, cmd: int, slot: int, seconds: int) -> int:
        """The status word the card gave to the command the reader built from the keypad digits."""
        rest = self._call(
            cmd,
            bytes([slot, HC_PIN_P2, seconds]),
            failures={
                STATUS_BAD_PARAMETER: int(StatusCode.NHI_READER_FAILED),
                STATUS_CARD_ERROR: int(StatusCode.PCSC_OTHER_ERROR),
            },
        )
        if len(rest) != 2:
            raise ReaderFault(int(StatusCode.NHI_READER_FAILED), "the reader's keypad answer is malformed")
        return int.from_bytes(rest, "big")


_STATUS_MESSAGES = {
    0x02: "the reader does not know the command",
    0x03: "the reader refused the command's parameters (for a new PIN: the two entries differ)",
    0x04: "the holder pressed Cancel on the reader's keypad",
    STATUS_KEYPAD_TIMEOUT: "no PIN was typed on the reader's keypad in time",
    0x06: "the reader's SAM failed",
    0x07: "the reader is busy with another command",
    0x08: "the card in the reader failed",
}


def open_reader(port: str, device: str | None = None) -> NhiReader:
    """The worker's back-end factory (`workers.nhi_reader:open_reader`): never fails, the poll opens the port.
    `device`: the path to open when `port` is a Windows name (`COM3`)."""
    return NhiReader(port, device=device)
