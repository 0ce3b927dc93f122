"""The worker process's loop: report presence, answer the broker, outlive a broker crash.

A watcher thread blocks in `wait_for_change` and forwards changes over an
inproc socket, so the main loop can wait on the broker and the reader at once
and a command is never delayed by a presence poll.  The worker reports its
status on every change and every heartbeat interval; if the broker dies it
keeps its reader (and the card session in it) and re-registers with the next
broker, unless the whole console is gone (it was re-parented to init) or no
broker has been heard from for `orphan_after` seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

import zmq

from contract.protocol import (
    CardPresence,
    Disconnect,
    Heartbeat,
    ProtocolError,
    Reply,
    Request,
    WorkerStatus,
    build,
    parse,
)
from contract.status_codes import StatusCode
from workers.apdu import HC_AID, READ_HC_PUBLIC_DATA, parse_response, select_aid
from workers.card_kind import identify, read_card_identity
from workers.health_card import DataBlockError, parse_public_data
from workers.session_commands import SESSION_COMMANDS, run_session_command
from workers.seam import (
    CardAbsent,
    CardReader,
    PresenceChanged,
    ReaderError,
    ReaderFault,
    ReaderGone,
    SlotDevice,
    load_backend,
)

PRESENCE_SETTLE = 1.0
"""How long a bench control waits for its card change to come back from the reader as a presence event."""

log = logging.getLogger(__name__)


@dataclass
class WorkerConfig:
    endpoint: str
    reader: str
    backend: str
    heartbeat_interval: float = 1.0
    orphan_after: float = 30.0


class Worker:
    """One reader's worker; or one device's, serving each of its slots as a reader (the NHI reader)."""

    def __init__(self, config: WorkerConfig, reader: CardReader | SlotDevice) -> None:
        self._config = config
        self._reader = reader
        self._device: SlotDevice | None = reader if _is_slot_device(reader) else None  # type: ignore[assignment]
        self._slots: dict[str, CardReader] = (
            self._device.slot_readers() if self._device is not None else {config.reader: reader}  # type: ignore[dict-item]
        )
        self._cards: dict[str, CardPresence | None] = {name: None for name in self._slots}
        self._running = True
        self._context = zmq.Context()
        self._dealer = self._context.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.LINGER, 0)
        self._presence_in = self._context.socket(zmq.PAIR)
        self._presence_address = f"inproc://presence-{id(self)}"
        self._presence_in.bind(self._presence_address)
        self._long_in = self._context.socket(zmq.PAIR)
        self._long_address = f"inproc://long-{id(self)}"
        self._long_in.bind(self._long_address)
        self._long_command: threading.Thread | None = None
        self._deferred_changes: list[PresenceChanged] = []
        self._watcher_stop = threading.Event()

    @property
    def _card(self) -> CardPresence | None:
        """The card of a one-slot reader (the bench's control commands are for those)."""
        return self._cards.get(self._config.reader)

    def stop(self, *_: object) -> None:
        self._running = False

    def run(self) -> None:
        self._dealer.connect(self._config.endpoint)
        watcher = threading.Thread(target=self._watch, name="presence-watcher", daemon=True)
        watcher.start()
        poller = zmq.Poller()
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self._presence_in, zmq.POLLIN)
        poller.register(self._long_in, zmq.POLLIN)
        interval = self._config.heartbeat_interval
        broker_heard = time.monotonic()
        next_status = 0.0
        try:
            while self._running:
                ready = dict(poller.poll(timeout=max(0.0, next_status - time.monotonic()) * 1000))
                if self._presence_in in ready:
                    self._take_presence_changes()
                    next_status = 0.0
                if self._long_in in ready:
                    self._take_long_replies()
                if self._dealer in ready:
                    broker_heard = time.monotonic()
                    self._take_broker_messages()
                now = time.monotonic()
                if now >= next_status:
                    self._send_status()
                    next_status = now + interval
                if os.getppid() == 1 or now - broker_heard > self._config.orphan_after:
                    log.warning("reader %r: the console is gone; worker exiting", self._config.reader)
                    break
        finally:
            self._watcher_stop.set()
            watcher.join(timeout=2)
            self._reader.close()
            self._dealer.close(linger=0)
            self._presence_in.close(linger=0)
            self._long_in.close(linger=0)
            self._context.term()

    def _watch(self) -> None:
        out = self._context.socket(zmq.PAIR)
        out.connect(self._presence_address)
        try:
            while not self._watcher_stop.is_set():
                try:
                    change = self._reader.wait_for_change(0.2)
                except ReaderError as error:
                    log.warning("reader %r: %s", self._config.reader, error)
                    time.sleep(0.2)
                    continue
                if change is not None:
                    slot = change.reader or self._config.reader
                    out.send_multipart([slot.encode("utf-8"), b"" if change.atr is None else change.atr])
        finally:
            out.close(linger=0)

    def _take_presence_changes(self) -> bool:
        changed = False
        while True:
            try:
                slot, atr = self._presence_in.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return changed
            name = slot.decode("utf-8")
            if name not in self._slots:
                continue
            if self._long_command is not None:
                # Identifying the card needs the device, which the keypad command holds: after it.
                self._deferred_changes.append(PresenceChanged(atr or None, name))
                continue
            self._apply(name, PresenceChanged(atr or None, name))
            changed = True

    def _apply(self, name: str, change: PresenceChanged) -> None:
        if change.atr is None:
            self._cards[name] = None
            return
        # A wall-clock session number stays unique across worker restarts, so a broker
        # that replays an old session never mistakes a re-inserted card for the same one.
        kind, number, card_type = self._identify(self._slots[name])
        self._cards[name] = CardPresence(
            atr=change.atr.hex().upper(), kind=kind, session=time.time_ns(), card_number=number, card_type=card_type
        )

    def _identify(self, reader: CardReader) -> tuple[str, str | None, int | None]:
        try:
            with reader.transaction():
                kind = identify(reader.transmit)
                return (kind, *read_card_identity(reader.transmit, kind))
        except ReaderError as error:
            log.warning("reader %r: could not identify the card: %s", self._config.reader, type(error).__name__)
            return "unknown", None, None

    def _take_broker_messages(self) -> None:
        while True:
            try:
                frames = self._dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = parse(frames)
            except ProtocolError as error:
                log.warning("dropped a bad frame from the broker: %s", error)
                continue
            if isinstance(message, Disconnect):
                log.info("reader %r: broker says %s", self._config.reader, message.reason)
                self._running = False
            elif isinstance(message, Request):
                if self._device is not None and message.command in self._device.long_commands \
                        and self._long_command is None:
                    self._start_long_command(message)
                else:
                    self._send(self._execute(message))
            elif not isinstance(message, Heartbeat):
                log.warning("dropped an unexpected %s from the broker", type(message).__name__)

    def _execute(self, request: Request, *, aside: bool = False) -> Reply:
        """Run one command; every request gets exactly one reply, whatever the card does.

        While a keypad command runs aside, the device is the holder's: anything else is answered at once."""
        name = request.reader or self._config.reader
        try:
            if name not in self._slots:
                code, body = int(StatusCode.BAD_PARAMETER), {"message": "this worker does not serve that reader"}
            elif self._long_command is not None and not aside:
                code, body = int(StatusCode.NHI_READER_FAILED), {"message": "the reader is waiting for its keypad"}
            elif request.command == "ReadPublicData":
                code, body = self._read_public_data(self._slots[name])
            elif request.command == "ControlBackend":
                code, body = self._control_backend(request.args)
            elif request.command in SESSION_COMMANDS:
                code, body = self._run_on_session_card(name, request)
            elif self._device is not None and request.command in self._device.device_commands():
                code, body = self._run_device_command(name, request)
            else:
                code, body = int(StatusCode.BAD_PARAMETER), {"message": f"unknown worker command {request.command!r}"}
        except CardAbsent:
            code, body = int(StatusCode.NO_CARD), {"message": "no card in the reader"}
        except ReaderGone:
            code, body = int(StatusCode.READER_IN_USE_GONE), {"message": "the reader is gone"}
        except ReaderFault as fault:
            code, body = fault.code, {"message": fault.message}
        except ReaderError as error:
            code, body = int(StatusCode.PCSC_OTHER_ERROR), {"message": f"PC/SC error: {type(error).__name__}"}
        return Reply(id=request.id, code=code, body=body)

    def _session_card_problem(self, name: str, request: Request) -> tuple[int, dict[str, object]] | None:
        card = self._cards.get(name)
        if card is None:
            return int(StatusCode.NO_CARD), {"message": "no card in the reader"}
        if request.args.get("session") != card.session:
            return int(StatusCode.NO_CARD), {"message": "a different card is in the reader"}
        return None

    def _run_on_session_card(self, name: str, request: Request) -> tuple[int, dict[str, object]]:
        """Commands for the card of one insertion (`session`): another card in the reader is not that card."""
        problem = self._session_card_problem(name, request)
        if problem is not None:
            return problem
        reader = self._slots[name]
        with reader.transaction():
            return run_session_command(request.command, request.args, reader.transmit)

    def _run_device_command(self, name: str, request: Request) -> tuple[int, dict[str, object]]:
        """The device's own commands; those that carry a `session` are for that card in that slot."""
        assert self._device is not None
        if "session" in request.args:
            problem = self._session_card_problem(name, request)
            if problem is not None:
                return problem
        return self._device.run_device_command(name, request.command, request.args)

    def _start_long_command(self, request: Request) -> None:
        """A keypad command may wait a minute for the holder: run it aside, keep reporting, answer when done."""

        def run() -> None:
            reply = self._execute(request, aside=True)
            out = self._context.socket(zmq.PAIR)
            out.connect(self._long_address)
            try:
                out.send_multipart(build(reply))
            finally:
                out.close(linger=1000)

        self._long_command = threading.Thread(target=run, name="long-command", daemon=True)
        self._long_command.start()

    def _take_long_replies(self) -> None:
        while True:
            try:
                frames = self._long_in.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if self._long_command is not None:
                self._long_command.join(timeout=1)
                self._long_command = None
            self._send(parse(frames))  # type: ignore[arg-type]
            deferred, self._deferred_changes = self._deferred_changes, []
            for change in deferred:
                assert change.reader is not None
                self._apply(change.reader, change)
            if deferred:
                self._send_status()

    def _read_public_data(self, reader: CardReader) -> tuple[int, dict[str, object]]:
        with reader.transaction():
            if not parse_response(reader.transmit(select_aid(HC_AID))).ok:
                return int(StatusCode.SELECT_APPLICATION_FAILED), {"message": "not a health card"}
            answer = parse_response(reader.transmit(READ_HC_PUBLIC_DATA))
        try:
            data = parse_public_data(answer)
        except DataBlockError as error:
            return int(StatusCode.PCSC_OTHER_ERROR), {"message": f"unreadable data block: {error}"}
        return int(StatusCode.OK), {
            "cardId": data.card_id, "name": data.name, "idNo": data.id_no,
            "birthday": data.birthday, "sex": data.sex, "dateIssue": data.date_issue,
        }

    def _control_backend(self, args: dict[str, object]) -> tuple[int, dict[str, object]]:
        """A bench command (insert/remove a virtual card); answered once the broker has seen the change."""
        control = getattr(self._reader, "control", None)
        if control is None:
            return int(StatusCode.BAD_PARAMETER), {"message": "this reader is not a bench reader"}
        action = args.get("action")
        try:
            control(action, {key: value for key, value in args.items() if key != "action"})
        except ValueError as error:
            return int(StatusCode.BAD_PARAMETER), {"message": str(error)}
        # The change comes back through the watcher thread like a real reader's; report it before answering,
        # so the caller's next request already sees the card in (or out).
        settle_until = time.monotonic() + PRESENCE_SETTLE
        expect_card = action == "insert"
        if not expect_card and self._card is None:
            settle_until = 0.0  # removing from an empty reader changes nothing: no event is coming
        while time.monotonic() < settle_until:
            if self._presence_in.poll(50):
                self._take_presence_changes()
                if (self._card is not None) == expect_card:
                    break
        self._send_status()
        return int(StatusCode.OK), {}

    def _send_status(self) -> None:
        fault = self._device.fault() if self._device is not None else None
        for name, card in self._cards.items():
            self._send(WorkerStatus(reader=name, backend=self._config.backend, pid=os.getpid(), card=card,
                                    fault=fault))

    def _send(self, message: WorkerStatus | Reply) -> None:
        try:
            self._dealer.send_multipart(build(message), zmq.NOBLOCK)
        except zmq.Again:
            pass  # no broker connected right now; the next status report will say it all again


def _is_slot_device(reader: object) -> bool:
    return callable(getattr(reader, "slot_readers", None))


def run(config: WorkerConfig) -> None:
    reader = load_backend(config.backend)(config.reader)
    worker = Worker(config, reader)

    def _stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run()
