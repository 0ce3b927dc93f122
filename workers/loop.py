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

from broker.protocol import (
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
from broker.status_codes import StatusCode
from workers.apdu import HC_AID, READ_HC_PUBLIC_DATA, parse_response, select_aid
from workers.card_kind import identify, read_card_identity
from workers.health_card import DataBlockError, parse_public_data
from workers.session_commands import SESSION_COMMANDS, run_session_command
from workers.seam import CardAbsent, CardReader, PresenceChanged, ReaderError, ReaderGone, load_backend

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
    def __init__(self, config: WorkerConfig, reader: CardReader) -> None:
        self._config = config
        self._reader = reader
        self._card: CardPresence | None = None
        self._running = True
        self._context = zmq.Context()
        self._dealer = self._context.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.LINGER, 0)
        self._presence_in = self._context.socket(zmq.PAIR)
        self._presence_address = f"inproc://presence-{id(self)}"
        self._presence_in.bind(self._presence_address)
        self._watcher_stop = threading.Event()

    def stop(self, *_: object) -> None:
        self._running = False

    def run(self) -> None:
        self._dealer.connect(self._config.endpoint)
        watcher = threading.Thread(target=self._watch, name="presence-watcher", daemon=True)
        watcher.start()
        poller = zmq.Poller()
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self._presence_in, zmq.POLLIN)
        interval = self._config.heartbeat_interval
        broker_heard = time.monotonic()
        next_status = 0.0
        try:
            while self._running:
                ready = dict(poller.poll(timeout=max(0.0, next_status - time.monotonic()) * 1000))
                if self._presence_in in ready:
                    self._take_presence_changes()
                    next_status = 0.0
                if self._dealer in ready:
                    broker_heard = time.monotonic()
                    self._take_broker_messages()
                now = time.monotonic()
                if now >= next_status:
                    self._send(self._status())
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
                    out.send(b"" if change.atr is None else change.atr)
        finally:
            out.close(linger=0)

    def _take_presence_changes(self) -> bool:
        changed = False
        while True:
            try:
                atr = self._presence_in.recv(zmq.NOBLOCK)
            except zmq.Again:
                return changed
            self._apply(PresenceChanged(atr or None))
            changed = True

    def _apply(self, change: PresenceChanged) -> None:
        if change.atr is None:
            self._card = None
            return
        # A wall-clock session number stays unique across worker restarts, so a broker
        # that replays an old session never mistakes a re-inserted card for the same one.
        kind, number, card_type = self._identify()
        self._card = CardPresence(
            atr=change.atr.hex().upper(), kind=kind, session=time.time_ns(), card_number=number, card_type=card_type
        )

    def _identify(self) -> tuple[str, str | None, int | None]:
        try:
            with self._reader.transaction():
                kind = identify(self._reader.transmit)
                return (kind, *read_card_identity(self._reader.transmit, kind))
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
                self._send(self._execute(message))
            elif not isinstance(message, Heartbeat):
                log.warning("dropped an unexpected %s from the broker", type(message).__name__)

    def _execute(self, request: Request) -> Reply:
        """Run one command; every request gets exactly one reply, whatever the card does."""
        try:
            if request.command == "ReadPublicData":
                code, body = self._read_public_data()
            elif request.command == "ControlBackend":
                code, body = self._control_backend(request.args)
            elif request.command in SESSION_COMMANDS:
                code, body = self._run_on_session_card(request)
            else:
                code, body = int(StatusCode.BAD_PARAMETER), {"message": f"unknown worker command {request.command!r}"}
        except CardAbsent:
            code, body = int(StatusCode.NO_CARD), {"message": "no card in the reader"}
        except ReaderGone:
            code, body = int(StatusCode.READER_IN_USE_GONE), {"message": "the reader is gone"}
        except ReaderError as error:
            code, body = int(StatusCode.PCSC_OTHER_ERROR), {"message": f"PC/SC error: {type(error).__name__}"}
        return Reply(id=request.id, code=code, body=body)

    def _run_on_session_card(self, request: Request) -> tuple[int, dict[str, object]]:
        """Commands for the card of one insertion (`session`): another card in the reader is not that card."""
        if self._card is None:
            return int(StatusCode.NO_CARD), {"message": "no card in the reader"}
        if request.args.get("session") != self._card.session:
            return int(StatusCode.NO_CARD), {"message": "a different card is in the reader"}
        with self._reader.transaction():
            return run_session_command(request.command, request.args, self._reader.transmit)

    def _read_public_data(self) -> tuple[int, dict[str, object]]:
        with self._reader.transaction():
            if not parse_response(self._reader.transmit(select_aid(HC_AID))).ok:
                return int(StatusCode.SELECT_APPLICATION_FAILED), {"message": "not a health card"}
            answer = parse_response(self._reader.transmit(READ_HC_PUBLIC_DATA))
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
        self._send(self._status())
        return int(StatusCode.OK), {}

    def _status(self) -> WorkerStatus:
        return WorkerStatus(
            reader=self._config.reader, backend=self._config.backend, pid=os.getpid(), card=self._card
        )

    def _send(self, message: WorkerStatus | Reply) -> None:
        try:
            self._dealer.send_multipart(build(message), zmq.NOBLOCK)
        except zmq.Again:
            pass  # no broker connected right now; the next status report will say it all again


def run(config: WorkerConfig) -> None:
    reader = load_backend(config.backend)(config.reader)
    worker = Worker(config, reader)

    def _stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run()
