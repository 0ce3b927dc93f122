"""The broker process: two ROUTER sockets, one loop, group commit.

Each turn of the loop takes every message already waiting (up to a batch
limit), runs them through the core, commits the store once, and only then sends
the replies.  One fsync thus covers a whole batch, and no reply acknowledges a
call record that a crash could still lose.

The loop is guarded (docs/decisions.md, "Faults: a full disk"): a command whose
handling raises is undone and answered 1799, and the loop goes on; a turn whose
commit fails (disk full, read-only, I/O error) is rolled back, state included,
and its callers are answered 1098 ("not recorded") instead of what they would
have got. Until a write succeeds again no new card or DC work starts; each later
turn, and a probe every second, tries again, so the console recovers by itself.
Sealing runs in a thread of its own (eventlog/sealing.py).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import signal
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import zmq

from broker.core import ConsoleCore, Park
from broker.credentials.hca_trust import TrustStore
from broker.credentials.sam_session import CloudSamStore
from broker.credentials.virtual_hc_token import load_issuers
from broker.dc.seam import DataCenter, DcError, NoDataCenter
from broker.domain.pseudonyms import Pseudonyms, load_or_create_key
from broker.flows.runner import CardStep, DcCall, Flow, FlowRunner, Outcome
from broker.handlers import StartFlow
from broker.ledger import LedgerMark
from broker.runtime.agent_endpoint import AgentEndpoint
from broker.runtime.agent_routes import RefusalThrottle, agent_reader, remote_status, split_route
from broker.runtime.checkpointing import Checkpoints
from broker.runtime.clock import Clock, SystemClock
from broker.runtime.config import BrokerConfig, load_by_name
from broker.runtime.dispatch import PendingCommand, ReaderQueues
from broker.runtime.liveness import WorkerRegistry, heartbeat_owner
from broker.runtime.pcsc_discovery import PcscDiscovery
from broker.runtime.worker_pool import ReaderSpec, WorkerPool, wanted_names
from contract.agent_link import shown
from contract.deadlines import CARD_STEP_SECONDS
from contract.exit_codes import DATA_DIR_UNWRITABLE
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
from eventlog import StoreWriteError
from eventlog.sealing import BackgroundSeal, SealRange
from eventlog.sqlite_store import SqliteEventStore
from eventlog.writable import is_permanent, write_probe

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


PROBE_INTERVAL = 1.0
"""Seconds between two write probes while the log cannot be written and no call tries it."""

SEAL_STOP_WAIT = 5.0
"""Seconds the broker's stop waits for a seal to finish its chunk (what it did not delete, the next seal does)."""

NOT_RECORDED_MESSAGE = (
    "the console could not write its log (is its disk full or read-only?): nothing was recorded"
    " and the console's state is unchanged; retry when the disk can be written"
)
MAY_HAVE_RUN_MESSAGE = (
    "the console could not write its log (is its disk full or read-only?): the call may have run at the card"
    " or the data center, but its outcome was not recorded; check Status before retrying"
)
NOT_RUN_MESSAGE = (
    "the console cannot write its log (is its disk full or read-only?): the command was not run and nothing"
    " was recorded; retry when the disk can be written"
)


@dataclass
class PendingAnswer:
    """A reply waiting for the turn's commit; `ran`: card or DC steps ran for it (a flow's answer)."""

    identity: bytes
    reply: Reply
    ran: bool = False


class _FlowCall:
    """A caller waiting for a flow's end; `tainted` once a turn it lived through failed to commit."""

    __slots__ = ("tainted",)

    def __init__(self) -> None:
        self.tainted = False


def not_recorded(request_id: str, *, ran: bool, message: str | None = None) -> Reply:
    """The 1098 answer: `mayHaveRun` tells the API whether to invite a retry (contract/status_codes.py)."""
    text = message or (MAY_HAVE_RUN_MESSAGE if ran else NOT_RECORDED_MESSAGE)
    return Reply(id=request_id, code=int(StatusCode.NOT_RECORDED), body={"message": text, "mayHaveRun": ran})


class DataDirUnwritable(SystemExit):
    """The data dir cannot be written for good (read-only, no permission): the broker exits, not restarted.

    A SystemExit, so that `python -m broker` ends with DATA_DIR_UNWRITABLE, which the supervisor reads as
    "do not restart" (deploy/supervisor.py), instead of a traceback and a crash loop."""

    def __init__(self, data_dir: Path, reason: str) -> None:
        super().__init__(DATA_DIR_UNWRITABLE)
        self.reason = f"the data dir {data_dir} cannot be written: {reason}"


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


class Broker:
    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self._config = config
        self._clock = clock or SystemClock()
        _refuse_unwritable(Path(config.database).parent)
        self._store = SqliteEventStore(config.database, durability=config.durability)
        pseudonyms = Pseudonyms(load_or_create_key(config.pseudonym_key)) if config.pseudonym_key else None
        self.core = ConsoleCore(
            self._store,
            self._clock,
            pseudonyms=pseudonyms,
            cloud_sams=CloudSamStore(config.cloud_sam_dir),
            serial_ports=_with_extra_ports(config.serial_ports or _serial_ports, config.extra_serial_ports),
            port_names=config.port_names,
            hca_trust=TrustStore.from_pem_bundle(config.hca_trust.read_bytes()) if config.hca_trust else None,
            hpc_authentication_seconds=config.hpc_authentication_seconds,
            mobile_hca_window_seconds=config.mobile_hca_window_seconds,
            vhc_issuers=load_issuers(config.vhc_issuer.read_bytes()) if config.vhc_issuer else None,
        )
        self._degraded = False
        """The last write failed: no new card or DC work starts until a commit or a probe succeeds."""
        self._next_probe = 0.0
        self._failed_turns = 0
        self._live_calls: set[_FlowCall] = set()
        self._seal: BackgroundSeal | None = None
        self._checkpoints = (
            Checkpoints(config.database, config.checkpoint_key, self._clock) if config.checkpoint_key else None
        )
        """Signed chain heads to the system log: at the first turn, hourly, after each seal, at a stop."""
        start = self.core.ledger.mark()
        if config.adopt_grace == 0:
            self.core.end_stale_session()
        if config.sim_backend is not None:
            load_by_name(config.bench)(self.core, config)  # the bench, wired by name: the broker imports no sim/
        try:
            self.core.commit()
        except StoreWriteError as error:  # a full disk at start: serve what can be, recover when it clears
            self.core.ledger.rollback_turn(start)
            self._enter_degraded(error)
        self._queues = ReaderQueues()
        self._dc = _data_center(config)
        self._dc_pool = ThreadPoolExecutor(max_workers=DC_THREADS, thread_name_prefix="dc")
        self._dc_results: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._runner = FlowRunner(
            self._send_flow_card_step, self._submit_dc_call, self._queues.release, self.core.ledger.caused_by
        )
        self._replies: list[PendingAnswer] = []
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
        self._agents: AgentEndpoint | None = None
        """Reader agents' endpoint (`serve --agents`; issue 23): None unless configured."""
        if config.agent_endpoint is not None and config.agent_link_key is not None:
            self._agents = AgentEndpoint(
                self._context, config.agent_endpoint, config.agent_link_key, config.heartbeat_interval
            )
        self._refusals = RefusalThrottle()

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
            desired[port] = ReaderSpec(
                port,
                self._config.serial_backend,
                companions=(staff_slot_reader(port),),
                device=self.core.serial_device_path(port),
            )
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
        if self._agents is not None:
            self._agents.gate.enrolled = self.core.enrolled_key_ids()
            self._agents.start()
            poller.register(self._agents.socket, zmq.POLLIN)
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
                turn = self.core.ledger.mark()  # nothing is pending here: undoing the turn is a ROLLBACK
                if self._frontend in ready:
                    self._take_requests()
                if self._backend in ready or (self._agents is not None and self._agents.socket in ready):
                    self._guarded("a worker's message", self._take_worker_messages)
                if self._wake_read in ready:
                    self._guarded("a DC result", self._take_dc_results)
                now = self._clock.monotonic()
                if now >= next_reconcile:
                    self._guarded("reconciling workers", functools.partial(self._reconcile, now))
                    self._guarded("expiring card steps", functools.partial(self._expire, now))
                    if not self._degraded:  # what the clock brings waits until it can be recorded
                        self._guarded("flows due by the clock", self._start_due_flows)
                    next_reconcile = now + min(0.1, interval / 4)
                if now >= next_heartbeat:
                    self._send_heartbeats()
                    next_heartbeat = now + interval
                self._pump()
                self.commit_turn(turn, now)
                self._answer_parked(now)  # after the commit: a stream shows only what is on disk
                if now >= next_seal_check:
                    self._seal_if_due()
                    next_seal_check = now + self._config.seal_check_interval
                if self._checkpoints is not None:
                    self._checkpoints.tick(now, self._seal)
                for answer in self.take_answers():
                    self._send(self._frontend, answer.identity, build(answer.reply))
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
            self.handle_request(identity, message)

    def handle_request(self, identity: bytes, request: Request) -> None:
        """One command, guarded: whatever it raises is undone and answered, and the loop goes on.

        A storage failure (StoreWriteError) loses the whole turn, which `commit_turn` answers; any other
        exception is a bug in one command: its appends are undone (a savepoint) and it is answered 1799,
        "internal error", as the flow runner answers a flow that raises. While the log cannot be written, a
        command that would start card or DC work is not started: it would spend a PIN try, say, whose outcome
        could not be recorded.
        """
        ledger = self.core.ledger
        try:
            mark = ledger.mark()
        except StoreWriteError:
            self._replies.append(PendingAnswer(identity, not_recorded(request.id, ran=False)))
            return
        try:
            with ledger.caused_by(_cause_of(request)):
                outcome = self.core.handle(request)
            if isinstance(outcome, StartFlow) and (self._degraded or self._store.write_failed):
                outcome.flow.close()
                self._undo(mark)
                self._replies.append(
                    PendingAnswer(identity, not_recorded(request.id, ran=False, message=NOT_RUN_MESSAGE))
                )
                return
            ledger.release(mark)
        except StoreWriteError:
            self._replies.append(PendingAnswer(identity, not_recorded(request.id, ran=False)))
            return
        except Exception:
            # The command's name only: its arguments may hold a PIN.
            log.exception("command %s failed; undone and answered 1799", request.command)
            self._undo(mark)
            self._replies.append(PendingAnswer(identity, self._internal_error(request)))
            return
        try:
            if isinstance(outcome, StartFlow):
                self._start_flow(identity, request, outcome.flow)
            elif isinstance(outcome, Park):
                self._park(identity, request, outcome)
            else:
                self._replies.append(PendingAnswer(identity, outcome))
        except StoreWriteError:
            self._replies.append(PendingAnswer(identity, not_recorded(request.id, ran=True), ran=True))
        except Exception:  # a bug once work has started: answered, never undone (a card step may be out)
            log.exception("command %s failed after it started", request.command)
            self._replies.append(PendingAnswer(identity, self._internal_error(request), ran=True))

    def take_answers(self) -> list[PendingAnswer]:
        """The answers of this turn, to send now that it is committed (or answered 1098)."""
        answers, self._replies = self._replies, []
        return answers

    @property
    def degraded(self) -> bool:
        """Whether the last write failed (no card or DC work starts until one succeeds)."""
        return self._degraded

    @property
    def store(self) -> SqliteEventStore:
        return self._store

    def _undo(self, mark: LedgerMark) -> None:
        try:
            self.core.ledger.rollback_to(mark)
        except StoreWriteError:
            pass  # the store lost the whole transaction: the turn's commit fails and rolls back the turn

    def _internal_error(self, request: Request) -> Reply:
        body: dict[str, Any] = {"message": "internal error in the console"}
        try:
            return self.core.answer(request, int(StatusCode.DC_UNDEFINED_ERROR), body)
        except StoreWriteError:
            return Reply(id=request.id, code=int(StatusCode.DC_UNDEFINED_ERROR), body=body)

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        """Run one of the turn's steps; a bug in it is logged and the loop goes on (no crash loop).

        A storage failure needs nothing here: the store refuses appends until the turn's commit, which fails
        and rolls the turn back.
        """
        try:
            step()
        except StoreWriteError:
            pass
        except Exception:
            log.exception("%s failed; the broker goes on", what)

    def _start_due_flows(self) -> None:
        for flow in self.core.due_flows():
            self._runner.start(flow, self.core.automatic_verification_done)

    def commit_turn(self, turn: LedgerMark, now: float) -> None:
        """Commit the turn; if that fails, undo it and answer its callers 1098 instead.

        Nothing is acknowledged without its record: the answers built this turn are withheld, replaced by
        1098 (which is not recorded either). The state goes back to the fold of what is committed. A flow
        still running has lost what it appended this turn, so its caller gets 1098 too when it ends.
        """
        ledger = self.core.ledger
        wrote = (ledger.last_event_seq, self._store.last_call_seq()) != (
            turn.store.last_event_seq,
            turn.store.last_call_seq,
        )
        try:
            self.core.commit()
            if self._degraded and not wrote and now >= self._next_probe:
                self._next_probe = now + PROBE_INTERVAL
                self._store.probe_write()
                wrote = True
        except StoreWriteError as error:
            self._failed_turns += 1
            ledger.rollback_turn(turn)
            self._replies = [
                PendingAnswer(answer.identity, not_recorded(answer.reply.id, ran=answer.ran), answer.ran)
                for answer in self._replies
            ]
            for call in self._live_calls:
                call.tainted = True
            self._enter_degraded(error)
            return
        if self._degraded and wrote:
            self._degraded = False
            log.warning("the event log can be written again (after %d failed turns)", self._failed_turns)
            self._failed_turns = 0

    def _enter_degraded(self, error: Exception) -> None:
        if not self._degraded:
            log.error("cannot write the event log (%s): calls are answered 1098 until it can", error)
        self._degraded = True

    def _park(self, identity: bytes, request: Request, park: Park) -> None:
        if len(self._parked) >= MAX_PARKED:
            news = self.core.stream_news(park.command, waited_out=True) or {}
            self._replies.append(PendingAnswer(identity, Reply(id=request.id, code=int(StatusCode.OK), body=news)))
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
                reply = Reply(id=parked.request.id, code=int(StatusCode.OK), body=news)
                self._replies.append(PendingAnswer(parked.identity, reply))
        self._parked = waiting

    def _start_flow(self, identity: bytes, request: Request, flow: Flow) -> None:
        call = _FlowCall()
        self._live_calls.add(call)

        def done(outcome: Outcome) -> None:
            """Never raises: the runner releases the flow's readers and resources only after this returns."""
            self._live_calls.discard(call)
            if call.tainted:  # a turn it lived through was rolled back: its outcome is not wholly recorded
                self._replies.append(PendingAnswer(identity, not_recorded(request.id, ran=True), ran=True))
                return
            code, body = outcome
            try:
                reply = self.core.answer(request, code, body)
            except StoreWriteError:  # this turn's commit fails too, and answers it 1098
                reply = Reply(id=request.id, code=code, body=body)
            self._replies.append(PendingAnswer(identity, reply, ran=True))

        self._runner.start(flow, done, cause=_cause_of(request))

    def _send_flow_card_step(self, flow_id: int, step: CardStep) -> None:
        pending = PendingCommand(
            flow_id=flow_id,
            reader=step.reader,
            command=step.command,
            args=step.args,
            deadline=self._clock.monotonic() + (step.timeout or CARD_STEP_SECONDS),
        )
        if not self._queues.submit(pending, ahead=step.ahead):
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
            if connection is None or self._registry.busy(reader, self._clock.monotonic()):
                # Its worker is (re)starting, or still runs a command answered at its deadline: the command
                # waits here until its own deadline, never in the worker's queue after its caller was answered.
                continue
            pending = self._queues.next_to_send(reader, lambda: uuid.uuid4().hex)
            if pending is not None:
                request = Request(
                    id=pending.worker_request_id, command=pending.command, args=pending.args, reader=pending.reader
                )
                if connection.agent is not None:  # an agent's worker knows its reader by its own name
                    request = replace(request, reader=agent_reader(reader))
                self._registry.sent(reader, request.id, self._clock.monotonic())
                self._send_to_worker(connection.identity, build(request))

    def _fail(self, pending: PendingCommand, code: StatusCode, message: str) -> None:
        """A card step that got no answer from its worker: its flow goes on with this one."""
        log.warning("reader %r: %s failed: %s", pending.reader, pending.command, message)
        failure = Reply(id=pending.worker_request_id, code=int(code), body={"message": message})
        self._runner.card_done(pending.flow_id, failure)

    def _expire(self, now: float) -> None:
        for pending in self._queues.expired(now):
            self._fail(pending, StatusCode.PCSC_OTHER_ERROR, "the reader did not answer in time")

    def _take_worker_messages(self, limit: int | None = BATCH_LIMIT) -> None:
        """Take the workers' messages waiting, the console's and the agents' (all of them with `limit` None:
        before liveness is judged)."""
        taken = 0
        while limit is None or taken < limit:
            taken += 1
            try:
                identity, *frames = self._backend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._take_worker_message(identity, frames, None)
        taken = 0
        while self._agents is not None and (limit is None or taken < limit):
            taken += 1
            received = self._agents.receive()
            if received is None:
                break
            agent = self.core.agent_named(received.key_id) if received.key_id else None
            if agent is None:  # its enrolment was removed (or rotated) since it connected: it is told to stop
                if received.route:
                    self._send_to_worker(received.route, build(Disconnect(reason="agent not enrolled")))
                continue
            self._take_worker_message(received.route, received.frames, agent)

    def _take_worker_message(self, identity: bytes, frames: list[bytes], agent: str | None) -> None:
        """One worker's message; `agent`: the enrolled agent it came from (issue 23), None from the console's own."""
        try:
            message = parse(frames)
        except ProtocolError as error:
            log.warning("dropped a bad frame from a worker: %s", error)
            return
        now = self._clock.monotonic()
        owner = heartbeat_owner(identity)
        if owner is not None:  # a worker's heartbeat thread: a sign of life, and nothing else
            if isinstance(message, Heartbeat):
                self._registry.touch(owner, now)  # an unregistered owner (not reported yet, replaced): none
            return
        if isinstance(message, WorkerStatus):
            if agent is not None:
                named = remote_status(agent, message)
                if named is None:
                    log.warning("agent %s: dropped a report of a reader whose name is too long", agent)
                    return
                message = named
            elif message.reader not in wanted_names(self._desired()):
                self._send_to_worker(identity, build(Disconnect(reason="reader not wanted")))
                return
            elif self._pool.is_stopping(message.pid):  # sent before it was told to stop; its reader waits for it
                return
            replaced = self._registry.seen(identity, message.reader, message.pid, now, agent=agent)
            if replaced is not None:
                log.warning("reader %r: worker pid %d replaced by pid %d", message.reader, replaced.pid, message.pid)
                self._send_to_worker(replaced.identity, build(Disconnect(reason="replaced")))
            for flow in self.core.worker_reported(message):
                self._runner.start(flow, _nobody_waits)
            return
        readers = self._registry.touch(identity, now)
        if not readers:
            log.warning("dropped a %s from an unregistered worker", type(message).__name__)
        elif isinstance(message, Reply):
            self._registry.answered(identity, message.id)  # in time or too late: its reader is free again
            for reader in readers:
                pending = self._queues.complete(reader, message.id)
                if pending is not None:
                    self._runner.card_done(pending.flow_id, message)
                    break

    def _reconcile(self, now: float) -> None:
        """Judge the workers on what they sent: every message waiting is taken first, and a stall of the
        broker's own loop is forgiven them (liveness.py), so that a broker that stood still kills no one."""
        self._take_worker_messages(limit=None)
        self._judge_agents(now)
        forgiven = self._registry.turned(now)
        if forgiven:
            log.warning("the broker's loop stood still for %.1f s: not held against the workers", forgiven)
            self._pool.forgive(forgiven, now)
        desired = self._desired()
        remote = self._registry.remote_readers()
        lost, unwanted = self._pool.reconcile(desired, now)
        for reader, reason in lost:
            log.warning("reader %r: %s", reader, reason)
            in_flight = self._queues.fail_in_flight(reader)
            if in_flight is not None:
                # Its outcome is unknown (the card may have run it): answer an error, never resend.
                self._fail(in_flight, StatusCode.PCSC_OTHER_ERROR, "the reader's worker stopped during the command")
        # The flows those failures ended may have let a port go (a failed `Initial`): what is wanted is read again.
        wanted = (wanted_names(self._desired()) if lost else wanted_names(desired)) | self._registry.remote_readers()
        leaving: dict[str, str] = {}
        for reader, reason in lost:
            if reader in wanted:  # it is restarted; a reader no one wants any more leaves below instead
                self.core.worker_lost(reader, reason)
            elif reader in remote:  # an agent's: it leaves the list, and comes back when its agent does
                leaving[reader] = reason
        # A reader leaves the state when no one wants it, however its worker went: stopped by the pool just now,
        # or gone by itself before (told "not wanted" on a report, or dead), when the pool no longer knows it.
        for reader in unwanted:
            leaving.setdefault(reader, "reader no longer present")
        for reader in self.core.readers_not_in(wanted):
            leaving.setdefault(reader, "reader no longer wanted")
        for reader, reason in leaving.items():
            for pending in self._queues.drop_reader(reader):
                self._fail(pending, StatusCode.READER_IN_USE_GONE, "the reader was unplugged")
            self.core.reader_detached(reader, reason)

    def _seal_if_due(self) -> None:
        """Move old rows to an archive segment past the size or age limit; nothing is ever dropped.

        The seal itself runs in a thread on its own connection (eventlog/sealing.py): 500,000 rows take
        seconds, and calls got 503 meanwhile when the loop ran it. One at a time; a degraded log waits.
        """
        config = self._config
        if config.archive_dir is None or self._degraded or (self._seal is not None and self._seal.running()):
            return
        due = self._store.seal_due(config.seal_max_live_rows, config.seal_max_age_seconds, self._clock.wall_ns())
        if due is not None:
            if not self.core.ledger.snapshot_before_seal():  # sealed rows stay covered: no archive needed to start
                return
            what = SealRange(due[0], due[1], Path(config.archive_dir))
            self._seal = BackgroundSeal(Path(config.database), config.durability, what)
            self._seal.start()

    def _judge_agents(self, now: float) -> None:
        """The agent endpoint's turn: refusals to the log (throttled), the gate told the enrolled keys, and the
        workers of an agent no longer enrolled (removed, or its key rotated) disconnected and forgotten."""
        if self._agents is None:
            return
        while True:
            try:
                key, address = self._agents.gate.refusals.get_nowait()
            except queue.Empty:
                break
            refusal = self._refusals.note(key, address, now)
            if refusal is not None:
                log.warning(
                    "refused a reader agent's connection from %s: key id %s is not enrolled (%d attempt(s))",
                    address or "an unknown address",
                    shown(key),
                    refusal.attempts,
                )
                self.core.agent_refused(refusal.key_id, refusal.address, refusal.attempts)
        enrolled = self.core.enrolled_key_ids()
        self._agents.gate.enrolled = enrolled
        for connection in self._registry.connections():
            routed = split_route(connection.identity)
            if connection.agent is None or routed is None:
                continue
            if routed[0] not in enrolled or self.core.agent_named(routed[0]) != connection.agent:
                self._registry.forget(connection.reader)
                self._send_to_worker(connection.identity, build(Disconnect(reason="agent not enrolled")))
                in_flight = self._queues.fail_in_flight(connection.reader)  # its outcome unknown: never resent
                if in_flight is not None:
                    self._fail(in_flight, StatusCode.PCSC_OTHER_ERROR, "the reader's agent was removed")
                for pending in self._queues.drop_reader(connection.reader):
                    self._fail(pending, StatusCode.READER_IN_USE_GONE, "the reader's agent was removed")
                self.core.reader_detached(connection.reader, f"agent {connection.agent} removed")

    def _send_heartbeats(self) -> None:
        frames = build(Heartbeat())
        for connection in self._registry.connections():
            self._send_to_worker(connection.identity, frames)

    def _send_to_worker(self, identity: bytes, frames: list[bytes]) -> None:
        """To a console worker on the worker socket, or to an agent's on the agent endpoint (by its route)."""
        routed = split_route(identity)
        if routed is None:
            self._send(self._backend, identity, frames)
        elif self._agents is not None:
            try:
                self._agents.send(routed[1], frames)
            except zmq.ZMQError as error:
                log.warning("could not deliver to a reader agent: %s", error)

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
        for connection in self._registry.local_connections():  # an agent's workers wait for the next console
            self._send(self._backend, connection.identity, build(Disconnect(reason="console stopping")))
        self._pool.stop_all()
        self._dc_pool.shutdown(wait=False, cancel_futures=True)
        if self._seal is not None:
            self._seal.stop(SEAL_STOP_WAIT)
        try:
            self.core.commit()
        except StoreWriteError as error:  # nothing pending was answered: losing it is what a crash would do
            log.error("could not commit at stop: %s", error)
        if self._checkpoints is not None:
            self._checkpoints.write(self._clock.monotonic())  # the heads the next start will find
            self._checkpoints.close()
        self._store.close()
        self._frontend.close(linger=0)
        self._backend.close(linger=0)
        if self._agents is not None:
            self._agents.close()
        self._context.term()


def _refuse_unwritable(data_dir: Path) -> None:
    """Exit (not crash) if the data dir is read-only or not ours: a restart would fail the same way.

    A full disk is not refused: the broker starts, answers 1098 while it cannot write, and recovers by itself
    when space returns."""
    error = write_probe(data_dir)
    if error is not None and is_permanent(error):
        refused = DataDirUnwritable(data_dir, error.strerror or str(error))
        log.error("%s; not restarting", refused.reason)
        raise refused


def _cause_of(request: Request) -> str | None:
    """The call a request's events are caused by: its record uuid (`X-Request-Id`), if the API sent one."""
    return None if request.call is None else request.call.uuid


def _nobody_waits(outcome: Outcome) -> None:
    """The end of a flow wiring started on its own (the bench's card offer): no caller waits for it."""
    if outcome[0] != StatusCode.OK:
        log.warning("a flow no caller waits for ended with %d", outcome[0])


def install_signal_handlers(broker: Broker) -> None:
    def _stop(signum: int, frame: FrameType | None) -> None:
        broker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
