"""The bench's virtual NHI dedicated reader (健保讀卡機): two card slots, a physical SAM and a PIN keypad,
speaking the console's own serial protocol (docs/serial-protocol.md) on a real pseudo-terminal.

SIMULATION ONLY. Two layers, so the device logic is tested without a terminal:

- `VirtualNhiReader`: the device. `submit(frame)` answers at once, except the keypad commands, which run
  in a thread (the holder takes seconds); `poll()` then gives the `09` pending answers, one per second,
  and finally the command's answer. `handle(frame)` does both synchronously for tests.
- `PtyNhiReader`: a thread that carries frames between a pseudo-terminal and the device, with a stable
  symlink for the host to open, and `unplug()`/`replug()` to pull the cable.

The PIN typed on the keypad goes to the card inside the reader; it is never on the line and never logged.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import queue
import select
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from broker.credentials.cloud_sam_file import CloudSamFile, parse_cloud_sam_file
from sim.cards.base import VirtualCard
from sim.reader_card_authentication import AuthenticationFailed, authenticate_card
from sim.sam import BenchSam
from workers.apdu import change_reference_data, verify
from workers.card_kind import HEALTH_CARD, STAFF_CARD, read_card_number
from workers.serial_protocol import (
    CMD_CLOCK,
    CMD_INFO,
    CMD_KEYPAD_CHANGE,
    CMD_KEYPAD_VERIFY,
    CMD_SAM_AUTH_CARD,
    CMD_SAM_INFO,
    CMD_SAM_SIGN,
    CMD_STATUS,
    CMD_TRANSMIT,
    MAX_PAYLOAD,
    SLOT_HC,
    SLOT_HPC,
    STATUS_BAD_PARAMETER,
    STATUS_BUSY,
    STATUS_CARD_ERROR,
    STATUS_KEYPAD_CANCELLED,
    STATUS_KEYPAD_TIMEOUT,
    STATUS_NO_CARD,
    STATUS_OK,
    STATUS_PENDING,
    STATUS_SAM_ERROR,
    STATUS_UNKNOWN_COMMAND,
    Frame,
    FrameReader,
    answer,
    encode,
)

MODEL = "nhi-console bench NHI reader"
FIRMWARE = "sim-1"
SLOT_NAMES = {SLOT_HC: HEALTH_CARD, SLOT_HPC: STAFF_CARD}
"""Slot 0 takes the health card, slot 1 the staff card (what `read_card_number` reads in each)."""

PENDING_INTERVAL = 1.0
TAIPEI = datetime.timezone(datetime.timedelta(hours=8))
SIGN_MIN, SIGN_MAX = 1, 512
KEYPAD_TIMEOUT_MIN, KEYPAD_TIMEOUT_MAX = 1, 120
KEYPAD_MAX_DIGITS = 16

_CANCEL = object()
_SHUTDOWN = object()


@dataclass
class Slot:
    card: VirtualCard | None = None
    insertions: int = 0
    """Counts insertions, so the host notices a card swapped between two STATUS polls."""


class _KeypadJob:
    """A keypad command in the holder's hands: its request, when the next pending is due, its answer."""

    def __init__(self, request: Frame, next_pending: float) -> None:
        self.request = request
        self.next_pending = next_pending
        self.result: Frame | None = None
        self.done = threading.Event()


class VirtualNhiReader:
    """The device's logic. Thread-safe: the pty thread, the keypad thread and the test (inserting cards,
    pressing keys) all touch it.

    Same-SEQ dedup: the device keeps its last answer; a frame with the same SEQ and CMD gets that answer
    again without the command running again (or a pending, if it is still running), so a retransmitted
    TRANSMIT, SAM or keypad command never reaches the card or the SAM twice.
    """

    def __init__(
        self,
        sam_file: bytes | None = None,
        *,
        offset_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        pending_interval: float = PENDING_INTERVAL,
    ) -> None:
        self._sam: CloudSamFile | None = parse_cloud_sam_file(sam_file) if sam_file is not None else None
        self._bench_sam = BenchSam()
        self.offset_seconds = offset_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._pending_interval = pending_interval
        self._slots = {SLOT_HC: Slot(), SLOT_HPC: Slot()}
        self._keys: queue.Queue[object] = queue.Queue()
        self._lock = threading.RLock()
        self._last_key: tuple[int, int] | None = None
        self._last_answer: Frame | None = None
        self._job: _KeypadJob | None = None
        self.runs: collections.Counter[int] = collections.Counter()
        """How often each command actually ran (not answered from the cache): for tests, and the bench's count."""

    # Bench controls ----------------------------------------------------------------------------------

    @property
    def has_sam(self) -> bool:
        return self._sam is not None

    def insert(self, slot: int, card: VirtualCard) -> None:
        """Put a card in a slot (replacing any); the card is powered up afresh."""
        self._check_slot(slot)
        card.reset()
        with self._lock:
            self._slots[slot].card = card
            self._slots[slot].insertions += 1

    def remove(self, slot: int) -> None:
        self._check_slot(slot)
        with self._lock:
            self._slots[slot].card = None

    def card(self, slot: int) -> VirtualCard | None:
        with self._lock:
            return self._slots[slot].card

    def press(self, keys: str) -> None:
        """The holder types `keys` (digits) and presses Enter: one keypad entry, queued for the next keypad
        command if none is waiting."""
        if not keys or len(keys) > KEYPAD_MAX_DIGITS or not (keys.isascii() and keys.isdigit()):
            raise ValueError(f"a keypad entry is 1 to {KEYPAD_MAX_DIGITS} digits")
        self._keys.put(keys)

    def cancel(self) -> None:
        """The holder presses Cancel: the waiting (or next) keypad command answers `04`."""
        self._keys.put(_CANCEL)

    def clear_keypad(self) -> None:
        """Forget entries typed ahead that no keypad command consumed."""
        while True:
            try:
                self._keys.get_nowait()
            except queue.Empty:
                return

    def power_cycle(self) -> None:
        """The reader restarts (replugged): the answer cache and typed-ahead keys are forgotten, and the cards in
        its slots lose power, so they wake up reset (no authentication, no PIN verified)."""
        with self._lock:
            self._last_key = None
            self._last_answer = None
            for slot in self._slots.values():
                if slot.card is not None:
                    slot.card.reset()
        self.clear_keypad()

    def shutdown(self) -> None:
        """End a keypad wait now (answering `05`), so no thread outlives the bench."""
        with self._lock:
            waiting = self._job is not None and not self._job.done.is_set()
        if waiting:
            self._keys.put(_SHUTDOWN)

    # The line ----------------------------------------------------------------------------------------

    def submit(self, frame: Frame) -> list[Frame]:
        """Answer a received frame now. A keypad command starts in a thread and answers nothing yet:
        `poll()` gives its pendings and its answer. Frames that are themselves answers are ignored."""
        if frame.is_answer:
            return []
        with self._lock:
            key = (frame.seq, frame.cmd)
            job = self._job
            if key == self._last_key:
                if job is not None and job.request == frame:
                    return [answer(frame, STATUS_PENDING)]
                if self._last_answer is not None:
                    return [self._last_answer]
            if job is not None:
                return [answer(frame, STATUS_BUSY)]  # not cached: the running command keeps the cache
            self._last_key = key
            self._last_answer = None
            self.runs[frame.cmd] += 1
            if frame.cmd in (CMD_KEYPAD_VERIFY, CMD_KEYPAD_CHANGE):
                immediate = self._start_keypad(frame)
                if immediate is None:
                    return []
                reply = immediate
            else:
                reply = self._run(frame)
            self._last_answer = reply
            return [reply]

    def poll(self) -> list[Frame]:
        """What the running keypad command has to say now: its answer when done, else a pending each second."""
        with self._lock:
            job = self._job
            if job is None:
                return []
            if job.done.is_set():
                assert job.result is not None
                self._job = None
                if self._last_key == (job.request.seq, job.request.cmd):
                    self._last_answer = job.result
                return [job.result]
            now = self._monotonic()
            if now >= job.next_pending:
                job.next_pending = now + self._pending_interval
                return [answer(job.request, STATUS_PENDING)]
            return []

    def wait_keypad(self, timeout: float | None = None) -> bool:
        """Block until the running keypad command (if any) has its answer; for the pty loop and tests."""
        with self._lock:
            job = self._job
        return True if job is None else job.done.wait(timeout)

    def handle(self, frame: Frame) -> list[Frame]:
        """`submit` then `poll` until the command is answered: every frame the device sends, in order."""
        frames = self.submit(frame)
        while True:
            with self._lock:
                job = self._job
            if job is None or job.request != frame:
                return frames
            job.done.wait(self._pending_interval / 10)
            frames += self.poll()

    # Commands ----------------------------------------------------------------------------------------

    def _run(self, frame: Frame) -> Frame:
        handler = {
            CMD_INFO: self._info,
            CMD_STATUS: self._status,
            CMD_TRANSMIT: self._transmit,
            CMD_SAM_INFO: self._sam_info,
            CMD_SAM_SIGN: self._sam_sign,
            CMD_SAM_AUTH_CARD: self._sam_auth_card,
            CMD_CLOCK: self._clock_answer,
        }.get(frame.cmd)
        if handler is None:
            return answer(frame, STATUS_UNKNOWN_COMMAND)
        status, rest = handler(frame.payload)
        if len(rest) + 1 > MAX_PAYLOAD:
            # Nothing the device can frame (e.g. a SAM certificate too large for SAM_INFO: see the report).
            return answer(frame, STATUS_SAM_ERROR if frame.cmd == CMD_SAM_INFO else STATUS_CARD_ERROR)
        return answer(frame, status, rest)

    def _info(self, payload: bytes) -> tuple[int, bytes]:
        if payload:
            return STATUS_BAD_PARAMETER, b""
        document = {"model": MODEL, "firmware": FIRMWARE, "slots": [HEALTH_CARD, STAFF_CARD], "sam": self.has_sam}
        return STATUS_OK, json.dumps(document).encode("utf-8")

    def _status(self, payload: bytes) -> tuple[int, bytes]:
        if payload:
            return STATUS_BAD_PARAMETER, b""
        out = bytearray()
        with self._lock:
            for number, slot in sorted(self._slots.items()):
                atr = slot.card.atr if slot.card is not None else b""
                out += bytes([number, 1 if slot.card is not None else 0])
                out += (slot.insertions & 0xFFFFFFFF).to_bytes(4, "big") + bytes([len(atr)]) + atr
        return STATUS_OK, bytes(out)

    def _slot_card(self, payload: bytes) -> tuple[int, VirtualCard | None]:
        """(status, card) for a payload that starts with a slot: 03 for a bad slot, 01 for an empty one."""
        if not payload or payload[0] not in self._slots:
            return STATUS_BAD_PARAMETER, None
        card = self.card(payload[0])
        return (STATUS_OK, card) if card is not None else (STATUS_NO_CARD, None)

    def _transmit(self, payload: bytes) -> tuple[int, bytes]:
        if len(payload) < 1 + 4:
            return STATUS_BAD_PARAMETER, b""
        status, card = self._slot_card(payload)
        if card is None:
            return status, b""
        try:
            response = card.respond(payload[1:])
        except Exception:  # a card that throws did not answer
            return STATUS_CARD_ERROR, b""
        if len(response) < 2:
            return STATUS_CARD_ERROR, b""
        return STATUS_OK, response

    def _sam_info(self, payload: bytes) -> tuple[int, bytes]:
        if payload:
            return STATUS_BAD_PARAMETER, b""
        if self._sam is None:
            return STATUS_SAM_ERROR, b""
        document = {
            "samId": self._sam.sam_id,
            "hospitalId": self._sam.hospital_id,
            "hospitalName": self._sam.hospital_name,
            "hospitalShortName": self._sam.hospital_short_name,
            "certificate": self._sam.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        }
        return STATUS_OK, json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _sam_sign(self, payload: bytes) -> tuple[int, bytes]:
        if not SIGN_MIN <= len(payload) <= SIGN_MAX:
            return STATUS_BAD_PARAMETER, b""
        if self._sam is None:
            return STATUS_SAM_ERROR, b""
        try:
            return STATUS_OK, self._sam.sign(payload)
        except Exception:
            return STATUS_SAM_ERROR, b""

    def _sam_auth_card(self, payload: bytes) -> tuple[int, bytes]:
        if len(payload) != 1:
            return STATUS_BAD_PARAMETER, b""
        status, card = self._slot_card(payload)
        if card is None:
            return status, b""
        if self._sam is None:
            return STATUS_SAM_ERROR, b""
        number = read_card_number(card.respond, SLOT_NAMES[payload[0]])
        if number is None:
            return STATUS_CARD_ERROR, b""
        try:
            authenticate_card(card.respond, self._bench_sam, number)
        except (AuthenticationFailed, ValueError):
            return STATUS_CARD_ERROR, b""
        return STATUS_OK, b""

    def _clock_answer(self, payload: bytes) -> tuple[int, bytes]:
        if payload:
            return STATUS_BAD_PARAMETER, b""
        moment = datetime.datetime.fromtimestamp(self._clock() + self.offset_seconds, TAIPEI)
        return STATUS_OK, moment.strftime("%Y%m%d%H%M%S").encode("ascii")

    # The keypad --------------------------------------------------------------------------------------

    def _start_keypad(self, frame: Frame) -> Frame | None:
        """Check the parameters and start waiting for the holder; an immediate answer if they are wrong."""
        payload = frame.payload
        if len(payload) != 3 or not KEYPAD_TIMEOUT_MIN <= payload[2] <= KEYPAD_TIMEOUT_MAX:
            return answer(frame, STATUS_BAD_PARAMETER)
        status, card = self._slot_card(payload)
        if card is None:
            return answer(frame, status)
        job = _KeypadJob(frame, self._monotonic() + self._pending_interval)
        self._job = job
        worker = threading.Thread(target=self._keypad_worker, args=(job,), name="nhi-reader-keypad", daemon=True)
        worker.start()
        return None

    def _keypad_worker(self, job: _KeypadJob) -> None:
        try:
            status, rest = self._keypad(job.request)
            job.result = answer(job.request, status, rest)
        except Exception:  # never leave the host waiting on a job that died
            job.result = answer(job.request, STATUS_CARD_ERROR)
        job.done.set()

    def _keypad(self, request: Frame) -> tuple[int, bytes]:
        slot, p2, seconds = request.payload
        deadline = self._monotonic() + seconds
        entries: list[str] = []
        wanted = 1 if request.cmd == CMD_KEYPAD_VERIFY else 2
        while len(entries) < wanted:
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return STATUS_KEYPAD_TIMEOUT, b""
            try:
                entry = self._keys.get(timeout=remaining)
            except queue.Empty:
                return STATUS_KEYPAD_TIMEOUT, b""
            if entry is _CANCEL:
                return STATUS_KEYPAD_CANCELLED, b""
            if entry is _SHUTDOWN:
                return STATUS_KEYPAD_TIMEOUT, b""
            assert isinstance(entry, str)
            entries.append(entry)
        card = self.card(slot)
        if card is None:  # pulled out while the holder typed
            return STATUS_NO_CARD, b""
        if request.cmd == CMD_KEYPAD_VERIFY:
            command = verify(p2, entries[0].encode("ascii"))
        else:
            if entries[0] != entries[1]:
                # The doc does not say; the reader refuses the entry as a bad parameter (see the report).
                return STATUS_BAD_PARAMETER, b""
            command = change_reference_data(p2, entries[0].encode("ascii"))
        response = card.respond(command)
        if len(response) < 2:
            return STATUS_CARD_ERROR, b""
        return STATUS_OK, response[-2:]

    @staticmethod
    def _check_slot(slot: int) -> None:
        if slot not in SLOT_NAMES:
            raise ValueError("the reader has slots 0 (health card) and 1 (staff card)")


class PtyNhiReader:
    """The virtual reader on a real pseudo-terminal, reachable at a stable symlink (`link_path`).

    One thread owns the master fd: it reads, feeds a FrameReader, hands frames to the device, writes the
    answers and the keypad's pendings. `unplug`/`replug` are carried out by that thread too (the caller waits
    for it), so an fd is never closed under a `select` in progress.
    """

    def __init__(
        self, link_path: str | os.PathLike[str], device: VirtualNhiReader | None = None, *, tick: float = 0.05
    ) -> None:
        self.link_path = Path(link_path)
        self.device = device if device is not None else VirtualNhiReader()
        self._tick = tick
        self._master: int | None = None
        self._slave: int | None = None
        self._reader = FrameReader()
        self._requests: queue.Queue[tuple[str, threading.Event]] = queue.Queue()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.slave_name: str | None = None
        self.received: list[Frame] = []
        """Every frame the device received, for tests (retransmissions included)."""
        self.answers_to_lose = 0
        """The next this-many answers are lost on the line (not written), to make the host retransmit."""

    # Bench controls -----------------------------------------------------------------------------------

    def insert(self, slot: int, card: VirtualCard) -> None:
        self.device.insert(slot, card)

    def remove(self, slot: int) -> None:
        self.device.remove(slot)

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def start(self) -> PtyNhiReader:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._open_pty()
        self._thread = threading.Thread(target=self._loop, name="nhi-reader-pty", daemon=True)
        self._thread.start()
        return self

    def unplug(self, timeout: float = 5.0) -> None:
        """Pull the cable: the pty goes away (the host's reads fail) and the symlink is removed."""
        self._request("unplug", timeout)

    def replug(self, timeout: float = 5.0) -> None:
        """Plug it back: a new pty, the symlink pointing at it; the device restarts (cache forgotten)."""
        self._request("replug", timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self.device.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close_pty()

    def __enter__(self) -> PtyNhiReader:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _request(self, what: str, timeout: float) -> None:
        if self._thread is None:
            raise RuntimeError("not started")
        done = threading.Event()
        self._requests.put((what, done))
        if not done.wait(timeout):
            raise TimeoutError(f"the pty thread did not {what} in time")

    # The pseudo-terminal ------------------------------------------------------------------------------

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        self._reader = FrameReader()
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        # Point the link at the new slave atomically: a host opening it meets the old or the new, never none.
        temporary = Path(tempfile.mktemp(prefix=".nhi-reader-", dir=self.link_path.parent))
        os.symlink(self.slave_name, temporary)
        os.replace(temporary, self.link_path)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        try:
            if self.link_path.is_symlink():
                self.link_path.unlink()
        except OSError:
            pass

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._serve_requests()
            master = self._master
            if master is None:
                self._stopped.wait(self._tick)
                continue
            readable, _, _ = select.select([master], [], [], self._tick)
            if readable:
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError:  # EIO: no one holds the slave open; nothing to read
                    data = b""
                    self._stopped.wait(self._tick)
                for frame in self._reader.feed(data):
                    self.received.append(frame)
                    self._send(self.device.submit(frame))
            self._send(self.device.poll())

    def _serve_requests(self) -> None:
        while True:
            try:
                what, done = self._requests.get_nowait()
            except queue.Empty:
                return
            if what == "unplug":
                self._close_pty()
            elif what == "replug":
                self._close_pty()
                self.device.power_cycle()
                self._open_pty()
            done.set()

    def _send(self, frames: list[Frame]) -> None:
        master = self._master
        if master is None:
            return
        for frame in frames:
            if self.answers_to_lose > 0:
                self.answers_to_lose -= 1
                continue
            raw = encode(frame)
            try:
                while raw:
                    written = os.write(master, raw)
                    raw = raw[written:]
            except OSError:
                return  # the line is full or gone: the answer is lost, as on a real cable; the host resends
