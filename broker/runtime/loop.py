"""The broker process: two ROUTER sockets, one loop, group commit.

Each turn of the loop takes every message already waiting (up to a batch
limit), runs them through the core, commits the store once, and only then sends
the replies.  One fsync thus covers a whole batch, and no reply acknowledges a
call record that a crash could still lose.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType

import zmq

from broker.core import ConsoleCore, Park
from broker.credentials.hca_trust import TrustStore
from broker.credentials.sam_session import CloudSamStore
from broker.credentials.virtual_hc_token import load_issuers
from broker.dc.seam import DataCenter, DcError, NoDataCenter
from broker.domain.pseudonyms import Pseudonyms, load_or_create_key
from broker.flows.runner import CardStep, DcCall, Flow, FlowRunner, Outcome
from broker.handlers import StartFlow
from broker.runtime.clock import Clock, SystemClock
from broker.runtime.config import BrokerConfig, load_by_name
from broker.runtime.dispatch import PendingCommand, ReaderQueues
from broker.runtime.liveness import WorkerRegistry
from broker.runtime.worker_pool import ReaderSpec, WorkerPool, wanted_names
from contract.deadlines import CARD_STEP_SECONDS
from contract.nhi_reader_slots import staff_slot_reader
from contract.protocol import (
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
from eventlog.sqlite_store import SqliteEventStore

log = logging.getLogger(__name__)


BATCH_LIMIT = 512
"""Messages taken from one socket per turn: bounds the latency one busy client can add to others."""

MAX_PARKED = 256
"""Live-stream long polls held at once (the API holds a few per process); beyond it they are answered at once."""


@dataclass
class _Parked:
    """A live-stream long poll waiting for news (`ConsoleCore.stream_news`)."""

    identity: bytes
    request: Request
    park: Park
    deadline: float


DC_THREADS = 4
"""DC calls in parallel: each may wait seconds on the network, and the loop must never wait with them."""


def _data_center(config: BrokerConfig) -> DataCenter:
    if config.dc_url is None:
        return NoDataCenter()
    from broker.dc.client import HttpsDataCenter

    return HttpsDataCenter(config.dc_url, config.dc_ca)


def _serial_ports() -> list[str]:
    """The machine's serial ports, for `GET /api/common/v1/Name` (pyserial's listing; paths, sorted)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    return sorted(port.device for port in list_ports.comports())


def _with_extra_ports(listing: Callable[[], list[str]], extra: list[str]) -> Callable[[], list[str]]:
    def ports() -> list[str]:
        return list(dict.fromkeys([*listing(), *extra]))

    return ports


class PcscDiscovery:
    """Lists pcscd's readers every `interval` in a thread, so a hung pcscd never stalls the broker loop."""

    def __init__(self, list_readers: Callable[[], list[str]], interval: float = 0.5) -> None:
        self._list_readers = list_readers
        self._interval = interval
        self._readers: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pcsc-discovery", daemon=True)

    def start(self) -> None:
        # The first listing before the broker serves anyone: a worker adopted after a broker restart
        # must not report before its reader is known, or it would be told it is not wanted.
        self._list_once()
        self._thread.start()

    def _list_once(self) -> None:
        try:
            found = frozenset(self._list_readers())
        except Exception:  # a broken PC/SC stack must not kill discovery; readers vanish instead
            log.exception("listing PC/SC readers failed")
            found = frozenset()
        with self._lock:
            self._readers = found

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._list_once()

    def readers(self) -> frozenset[str]:
        with self._lock:
            return self._readers

    def stop(self) -> None:
        self._stop.set()


class Broker:
    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self._config = config
        self._clock = clock or SystemClock()
        self._store = SqliteEventStore(config.database, durability=config.durability)
        pseudonyms = Pseudonyms(load_or_create_key(config.pseudonym_key)) if config.pseudonym_key else None
        self.core = ConsoleCore(
            self._store,
            self._clock,
            pseudonyms=pseudonyms,
            cloud_sams=CloudSamStore(config.cloud_sam_dir),
            serial_ports=_with_extra_ports(config.serial_ports or _serial_ports, config.extra_serial_ports),
            hca_trust=TrustStore.from_pem_bundle(config.hca_trust.read_bytes()) if config.hca_trust else None,
            hpc_authentication_seconds=config.hpc_authentication_seconds,
            mobile_hca_window_seconds=config.mobile_hca_window_seconds,
            vhc_issuers=load_issuers(config.vhc_issuer.read_bytes()) if config.vhc_issuer else None,
        )
        if config.adopt_grace == 0:
            self.core.end_stale_session()
        if config.sim_backend is not None:
            load_by_name(config.bench)(self.core, config)  # the bench, wired by name: the broker imports no sim/
        self.core.commit()
        self._queues = ReaderQueues()
        self._dc = _data_center(config)
        self._dc_pool = ThreadPoolExecutor(max_workers=DC_THREADS, thread_name_prefix="dc")
        self._dc_results: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._runner = FlowRunner(self._send_flow_card_step, self._submit_dc_call, self._queues.release)
        self._replies: list[tuple[bytes, Reply]] = []
        self._parked: list[_Parked] = []
        self._discovery: PcscDiscovery | None = None
        if config.pcsc_backend is not None:
            self._discovery = PcscDiscovery(load_by_name(config.pcsc_listing))
        self._registry = WorkerRegistry(config.heartbeat_interval)
        now = self._clock.monotonic()
        self._pool = WorkerPool(config.worker_endpoint, self._registry, adopt_until=now + config.adopt_grace)
        self._static_readers = {spec.name: spec for spec in config.readers}
        self._running = True
        self._context = zmq.Context()
        self._frontend = self._context.socket(zmq.ROUTER)
        self._frontend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._frontend.setsockopt(zmq.LINGER, 0)
        self._backend = self._context.socket(zmq.ROUTER)
        self._backend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._backend.setsockopt(zmq.LINGER, 0)

    def stop(self, *_: object) -> None:
        self._running = False

    def _desired(self) -> dict[str, ReaderSpec]:
        """The readers that should have a worker now: configured, bench, and what pcscd lists."""
        desired = dict(self._static_readers)
        for name, backend in self.core.wired_readers().items():
            desired[name] = ReaderSpec(name, backend)
        if self._discovery is not None and self._config.pcsc_backend is not None:
            for name in self._discovery.readers():
                desired.setdefault(name, ReaderSpec(name, self._config.pcsc_backend))
        for port in self.core.serial_devices():
            desired[port] = ReaderSpec(port, self._config.serial_backend, companions=(staff_slot_reader(port),))
        return desired

    def run(self) -> None:
        if self._discovery is not None:
            self._discovery.start()
        self._frontend.bind(self._config.api_endpoint)
        self._backend.bind(self._config.worker_endpoint)
        log.info("broker listening on %s and %s", self._config.api_endpoint, self._config.worker_endpoint)
        poller = zmq.Poller()
        poller.register(self._frontend, zmq.POLLIN)
        poller.register(self._backend, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        interval = self._config.heartbeat_interval
        next_heartbeat = 0.0
        next_reconcile = 0.0
        next_seal_check = self._clock.monotonic() + self._config.seal_check_interval
        try:
            while self._running:
                now = self._clock.monotonic()
                wait = max(0.0, min(next_heartbeat, next_reconcile) - now)
                ready = dict(poller.poll(timeout=int(wait * 1000)))  # whole milliseconds, as pyzmq takes them
                if self._frontend in ready:
                    self._take_requests()
                if self._backend in ready:
                    self._take_worker_messages()
                if self._wake_read in ready:
                    self._take_dc_results()
                now = self._clock.monotonic()
                if now >= next_reconcile:
                    self._reconcile(now)
                    self._expire(now)
                    for flow in self.core.due_flows():
                        self._runner.start(flow, self.core.automatic_verification_done)
                    next_reconcile = now + min(0.1, interval / 4)
                if now >= next_heartbeat:
                    self._send_heartbeats()
                    next_heartbeat = now + interval
                self._pump()
                self.core.commit()
                self._answer_parked(now)  # after the commit: a stream shows only what is on disk
                if now >= next_seal_check:
                    self._seal_if_due()
                    next_seal_check = now + self._config.seal_check_interval
                replies, self._replies = self._replies, []
                for identity, reply in replies:
                    self._send(self._frontend, identity, build(reply))
        finally:
            self._shutdown()

    def _take_requests(self) -> None:
        for _ in range(BATCH_LIMIT):
            try:
                identity, *frames = self._frontend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                message = parse(frames)
            except ProtocolError as error:
                log.warning("dropped a bad frame from an API client: %s", error)
                continue
            if not isinstance(message, Request):
                log.warning("dropped a %s from an API client", type(message).__name__)
                continue
            outcome = self.core.handle(message)
            if isinstance(outcome, StartFlow):
                self._start_flow(identity, message, outcome.flow)
            elif isinstance(outcome, Park):
                self._park(identity, message, outcome)
            else:
                self._replies.append((identity, outcome))

    def _park(self, identity: bytes, request: Request, park: Park) -> None:
        if len(self._parked) >= MAX_PARKED:
            news = self.core.stream_news(park.command, waited_out=True) or {}
            self._replies.append((identity, Reply(id=request.id, code=int(StatusCode.OK), body=news)))
            return
        deadline = self._clock.monotonic() + park.command.wait_seconds
        self._parked.append(_Parked(identity, request, park, deadline))

    def _answer_parked(self, now: float) -> None:
        waiting: list[_Parked] = []
        for parked in self._parked:
            news = self.core.stream_news(parked.park.command, waited_out=now >= parked.deadline)
            if news is None:
                waiting.append(parked)
            else:
                self._replies.append((parked.identity, Reply(id=parked.request.id, code=int(StatusCode.OK), body=news)))
        self._parked = waiting

    def _start_flow(self, identity: bytes, request: Request, flow: Flow) -> None:
        def done(outcome: Outcome) -> None:
            code, body = outcome
            self._replies.append((identity, self.core.answer(request, code, body)))

        self._runner.start(flow, done)

    def _send_flow_card_step(self, flow_id: int, step: CardStep) -> None:
        pending = PendingCommand(
            flow_id=flow_id,
            reader=step.reader,
            command=step.command,
            args=step.args,
            deadline=self._clock.monotonic() + (step.timeout or CARD_STEP_SECONDS),
        )
        if not self._queues.submit(pending):
            self._fail(pending, StatusCode.PCSC_OTHER_ERROR, "the reader is busy: too many commands waiting")

    def _submit_dc_call(self, flow_id: int, call: DcCall) -> None:
        def run() -> None:
            try:
                result: object = call.call(self._dc)
            except DcError as error:
                result = error
            except Exception:  # the seam promises DcError only; anything else is a bug, answered as 1799
                log.exception("DC call %s failed unexpectedly", call.name)
                result = DcError(StatusCode.DC_UNDEFINED_ERROR, "internalError")
            self._dc_results.put((flow_id, result))
            try:
                os.write(self._wake_write, b"!")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already: the loop is coming

        self._dc_pool.submit(run)

    def _take_dc_results(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                flow_id, result = self._dc_results.get_nowait()
            except queue.Empty:
                return
            self._runner.dc_done(flow_id, result)

    def _pump(self) -> None:
        """Send each idle reader its next command, if its worker is there to take it."""
        for reader in self._queues.readers_with_work():
            connection = self._registry.get(reader)
            if connection is None:
                continue  # its worker is (re)starting; the command waits until its deadline
            pending = self._queues.next_to_send(reader, lambda: uuid.uuid4().hex)
            if pending is not None:
                request = Request(
                    id=pending.worker_request_id, command=pending.command, args=pending.args, reader=pending.reader
                )
                self._send(self._backend, connection.identity, build(request))

    def _fail(self, pending: PendingCommand, code: StatusCode, message: str) -> None:
        """A card step that got no answer from its worker: its flow goes on with this one."""
        log.warning("reader %r: %s failed: %s", pending.reader, pending.command, message)
        failure = Reply(id=pending.worker_request_id, code=int(code), body={"message": message})
        self._runner.card_done(pending.flow_id, failure)

    def _expire(self, now: float) -> None:
        for pending in self._queues.expired(now):
            self._fail(pending, StatusCode.PCSC_OTHER_ERROR, "the reader did not answer in time")

    def _take_worker_messages(self) -> None:
        for _ in range(BATCH_LIMIT):
            try:
                identity, *frames = self._backend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                message = parse(frames)
            except ProtocolError as error:
                log.warning("dropped a bad frame from a worker: %s", error)
                continue
            now = self._clock.monotonic()
            if isinstance(message, WorkerStatus):
                if message.reader not in wanted_names(self._desired()):
                    self._send(self._backend, identity, build(Disconnect(reason="reader not wanted")))
                    continue
                replaced = self._registry.seen(identity, message.reader, message.pid, now)
                if replaced is not None:
                    log.warning(
                        "reader %r: worker pid %d replaced by pid %d", message.reader, replaced.pid, message.pid
                    )
                    self._send(self._backend, replaced.identity, build(Disconnect(reason="replaced")))
                for flow in self.core.worker_reported(message):
                    self._runner.start(flow, _nobody_waits)
                continue
            readers = self._registry.touch(identity, now)
            if not readers:
                log.warning("dropped a %s from an unregistered worker", type(message).__name__)
            elif isinstance(message, Reply):
                for reader in readers:
                    pending = self._queues.complete(reader, message.id)
                    if pending is not None:
                        self._runner.card_done(pending.flow_id, message)
                        break

    def _reconcile(self, now: float) -> None:
        lost, unwanted = self._pool.reconcile(self._desired(), now)
        for reader, reason in lost:
            log.warning("reader %r: %s", reader, reason)
            in_flight = self._queues.fail_in_flight(reader)
            if in_flight is not None:
                # Its outcome is unknown (the card may have run it): answer an error, never resend.
                self._fail(in_flight, StatusCode.PCSC_OTHER_ERROR, "the reader's worker stopped during the command")
            self.core.worker_lost(reader, reason)
        for reader in unwanted:
            for pending in self._queues.drop_reader(reader):
                self._fail(pending, StatusCode.READER_IN_USE_GONE, "the reader was unplugged")
            self.core.reader_detached(reader, "reader no longer present")

    def _seal_if_due(self) -> None:
        """Move old rows to an archive segment past the size or age limit; nothing is ever dropped."""
        config = self._config
        if config.archive_dir is None:
            return
        due = self._store.seal_due(config.seal_max_live_rows, config.seal_max_age_seconds, self._clock.wall_ns())
        if due is not None:
            segment = self._store.seal(due[0], due[1], config.archive_dir)
            if segment is not None:
                log.info("sealed segment %s (events through %s, calls through %s)", segment.id, due[0], due[1])

    def _send_heartbeats(self) -> None:
        frames = build(Heartbeat())
        for connection in self._registry.connections():
            self._send(self._backend, connection.identity, frames)

    def _send(self, socket: zmq.Socket, identity: bytes, frames: list[bytes]) -> None:
        try:
            socket.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            # The peer is gone (EHOSTUNREACH under ROUTER_MANDATORY) or its queue is full:
            # its request timed out on its side already, so there is no one left to tell.
            log.warning("could not deliver to a peer: %s", error)

    def _shutdown(self) -> None:
        log.info("broker stopping")
        if self._discovery is not None:
            self._discovery.stop()
        for connection in self._registry.connections():
            self._send(self._backend, connection.identity, build(Disconnect(reason="console stopping")))
        self._pool.stop_all()
        self._dc_pool.shutdown(wait=False, cancel_futures=True)
        self.core.commit()
        self._store.close()
        self._frontend.close(linger=0)
        self._backend.close(linger=0)
        self._context.term()


def _nobody_waits(outcome: Outcome) -> None:
    """The end of a flow wiring started on its own (the bench's card offer): no caller waits for it."""
    if outcome[0] != StatusCode.OK:
        log.warning("a flow no caller waits for ended with %d", outcome[0])


def install_signal_handlers(broker: Broker) -> None:
    def _stop(signum: int, frame: FrameType | None) -> None:
        broker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
