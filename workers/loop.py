"""The worker process's loop: report presence, answer the broker, outlive a broker crash.

A watcher thread blocks in `wait_for_change` and forwards changes over an
inproc socket, so the main loop can wait on the broker and the reader at once
and a command is never delayed by a presence poll.  The worker reports its
status on every change and every heartbeat interval; if the broker dies it
keeps its reader (and the card session in it) and re-registers with the next
broker, unless the whole console is gone (it was re-parented to init) or no
broker has been heard from for `orphan_after` seconds.

Liveness is not the main loop's to prove: a heartbeat thread with a socket of
its own (workers/heartbeat.py) tells the broker the worker lives while a slow
card command holds this loop, so only a worker that died or hung is replaced.

What a request is answered and which card an insertion is are decided by the
pure core, `workers/execute.py`; this module is the shell of sockets and threads
around it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from socket import socketpair
from types import FrameType

import zmq

from contract.agent_link import AgentKeys, configure_agent_end
from contract.exit_codes import AGENT_REFUSED
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
from contract.settings import ReaderSettings
from workers.execute import Slots, bench_card_expected, execute
from workers.heartbeat import HUNG_AFTER, HeartbeatThread, new_identity
from workers.seam import CardReader, PresenceChanged, ReaderError, SlotDevice, load_backend

PRESENCE_SETTLE = 1.0
"""How long a bench control waits for its card change to come back from the reader as a presence event."""

log = logging.getLogger(__name__)


@dataclass
class WorkerConfig:
    endpoint: str
    reader: str
    backend: str
    heartbeat_interval: float = ReaderSettings.heartbeat_seconds
    orphan_after: float = 30.0
    hung_after: float = HUNG_AFTER
    device: str | None = None
    """What the back-end opens, when it is not the reader's name: the device of a port named `COM3` (the reader
    and its messages keep the name); given to the back-end's factory as `device=` only then."""
    link: AgentKeys | None = None
    """A reader agent's worker (issue 23): `endpoint` is a console's agent endpoint over TCP, reached with these
    Curve keys; it waits for that console however long it is away (`orphan_after` is then infinite)."""

    def configure_socket(self, socket: zmq.Socket) -> None:
        """Both of the worker's sockets: an agent worker's are Curve clients of the console (contract/agent_link.py)."""
        if self.link is not None:
            configure_agent_end(socket, self.link, self.heartbeat_interval)


class Worker:
    """One reader's worker; or one device's, serving each of its slots as a reader (the NHI reader)."""

    def __init__(self, config: WorkerConfig, reader: CardReader | SlotDevice) -> None:
        self._config = config
        self._reader = reader
        self._slots = Slots.of(config.reader, reader)
        self._running = True
        self._context = zmq.Context()
        self._dealer = self._context.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.LINGER, 0)
        identity = new_identity(os.getpid())
        self._dealer.setsockopt(zmq.ROUTING_ID, identity)  # named, so that the heartbeat socket can say whose
        config.configure_socket(self._dealer)
        self._heartbeat = HeartbeatThread(
            self._context,
            config.endpoint,
            identity,
            config.heartbeat_interval,
            hung_after=config.hung_after,
            configure=config.configure_socket,
        )
        self._presence_in = self._context.socket(zmq.PAIR)
        self._presence_address = f"inproc://presence-{id(self)}"
        self._presence_in.bind(self._presence_address)
        self._long_in = self._context.socket(zmq.PAIR)
        self._long_address = f"inproc://long-{id(self)}"
        self._long_in.bind(self._long_address)
        self._long_command: threading.Thread | None = None
        self._deferred_changes: list[PresenceChanged] = []
        self._watcher_stop = threading.Event()
        self._wake_in, self._wake_out = socketpair()
        """`stop()` writes a byte here so the loop's poll returns at once, not at its next status report."""
        self._wake_out.setblocking(False)
        self.refused = False
        """An agent worker the console refused in the handshake (contract/exit_codes.AGENT_REFUSED)."""
        self._refusals: zmq.Socket | None = None
        if config.link is not None:  # the handshake's outcome is told on a monitor socket only
            self._refusals = self._dealer.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            )

    @property
    def _card(self) -> CardPresence | None:
        """The card of a one-slot reader (the bench's control commands are for those)."""
        return self._slots.cards.get(self._config.reader)

    def stop(self, *_: object) -> None:
        """End the loop now: from SIGTERM's handler or another thread. The broker stops a worker when its reader
        is unplugged, and a worker that kept polling until its next status report (a heartbeat interval)
        would hold its reader from a successor that long (broker/runtime/worker_pool.py)."""
        self._running = False
        try:
            self._wake_out.send(b"\0")
        except OSError:
            pass  # its buffer is full of wake-ups already, or the loop has ended and closed it

    def run(self) -> None:
        self._dealer.connect(self._config.endpoint)
        watcher = threading.Thread(target=self._watch, name="presence-watcher", daemon=True)
        watcher.start()
        self._heartbeat.start()
        poller = zmq.Poller()
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self._presence_in, zmq.POLLIN)
        poller.register(self._long_in, zmq.POLLIN)
        poller.register(self._wake_in, zmq.POLLIN)
        if self._refusals is not None:
            poller.register(self._refusals, zmq.POLLIN)
        interval = self._config.heartbeat_interval
        broker_heard = time.monotonic()
        next_status = 0.0
        try:
            while self._running:
                self._heartbeat.loop_turned()
                ready = dict(poller.poll(timeout=int(max(0.0, next_status - time.monotonic()) * 1000)))
                if self._presence_in in ready:
                    self._take_presence_changes()
                    next_status = 0.0
                if self._long_in in ready:
                    self._take_long_replies()
                if self._dealer in ready:
                    broker_heard = time.monotonic()
                    self._take_broker_messages()
                if self._refusals is not None and self._refusals in ready:
                    log.error(
                        "reader %r: the console refused this agent's key (is it enrolled? `nhi-console agents add`)",
                        self._config.reader,
                    )
                    self.refused = True
                    break
                now = time.monotonic()
                if now >= next_status:
                    self._send_status()
                    next_status = now + interval
                if os.getppid() == 1 or now - broker_heard > self._config.orphan_after:
                    log.warning("reader %r: the console is gone; worker exiting", self._config.reader)
                    break
        finally:
            self._heartbeat.stop()
            self._watcher_stop.set()
            watcher.join(timeout=2)
            self._reader.close()
            if self._refusals is not None:
                self._dealer.disable_monitor()
                self._refusals.close(linger=0)
            self._dealer.close(linger=0)
            self._presence_in.close(linger=0)
            self._long_in.close(linger=0)
            self._context.term()
            self._wake_in.close()
            self._wake_out.close()

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
            if name not in self._slots.readers:
                continue
            if self._long_command is not None:
                # Identifying the card needs the device, which the keypad command holds: after it.
                self._deferred_changes.append(PresenceChanged(atr or None, name))
                continue
            self._apply(PresenceChanged(atr or None, name))
            changed = True

    def _apply(self, change: PresenceChanged) -> None:
        # A wall-clock session number stays unique across worker restarts, so a broker
        # that replays an old session never mistakes a re-inserted card for the same one.
        self._slots.take_change(change, time.time_ns)

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
                self._heartbeat.loop_turned()  # each command gets its own allowance before it counts as hung
                if self._slots.is_long_command(message) and self._long_command is None:
                    self._start_long_command(message)
                else:
                    self._send(self._execute(message))
            elif not isinstance(message, Heartbeat):
                log.warning("dropped an unexpected %s from the broker", type(message).__name__)

    def _execute(self, request: Request, *, aside: bool = False) -> Reply:
        """Run one command through the core; every request gets exactly one reply, whatever the card does.

        While a keypad command runs aside, the device is the holder's: anything else is answered at once."""
        reply = execute(request, self._slots, device_held=self._long_command is not None and not aside)
        expect_card = bench_card_expected(request, reply)
        if expect_card is not None:
            self._settle_bench_change(expect_card)
        return reply

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
            self._send(parse(frames))  # type: ignore[arg-type]  # the keypad thread's own Reply, over inproc
            deferred, self._deferred_changes = self._deferred_changes, []
            for change in deferred:
                self._apply(change)
            if deferred:
                self._send_status()

    def _settle_bench_change(self, expect_card: bool) -> None:
        """A bench command (insert/remove a virtual card) is answered once the broker has seen the change."""
        # The change comes back through the watcher thread like a real reader's; report it before answering,
        # so the caller's next request already sees the card in (or out).
        settle_until = time.monotonic() + PRESENCE_SETTLE
        if not expect_card and self._card is None:
            settle_until = 0.0  # removing from an empty reader changes nothing: no event is coming
        while time.monotonic() < settle_until:
            if self._presence_in.poll(50):
                self._take_presence_changes()
                if (self._card is not None) == expect_card:
                    break
        self._send_status()

    def _send_status(self) -> None:
        fault = self._slots.device.fault() if self._slots.device is not None else None
        for name, card in self._slots.cards.items():
            self._send(WorkerStatus(reader=name, backend=self._config.backend, pid=os.getpid(), card=card, fault=fault))

    def _send(self, message: WorkerStatus | Reply) -> None:
        try:
            self._dealer.send_multipart(build(message), zmq.NOBLOCK)
        except zmq.Again:
            pass  # no broker connected right now; the next status report will say it all again


def run(config: WorkerConfig) -> None:
    factory = load_backend(config.backend)
    reader = factory(config.reader) if config.device is None else factory(config.reader, device=config.device)
    worker = Worker(config, reader)

    def _stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run()
    if worker.refused:
        raise SystemExit(AGENT_REFUSED)
