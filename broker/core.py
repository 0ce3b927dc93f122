"""The broker's application service: a request in, its answer out, over the event log.

Each command goes the same way: it is parsed by its declaration (`contract.commands`), its preconditions are
checked (a session, if it says so), its handler (`broker.handlers`, looked up by the command's type) decides
and appends its events through the ledger (`broker.ledger`), and the call is recorded with its outcome when it
is answered. A handler that needs cards or the DC answers with a flow, which the loop runs; the answer then
comes back through `answer()`. No sockets here: the loop in `broker.runtime.loop` feeds it decoded messages and
sends what it returns, after committing.

What else the core does is what the loop asks of it by name: the live stream's news, the flows due by the
clock, what workers report, which readers should have workers.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from broker.context import ConsoleContext
from broker.credentials.hca_trust import TrustStore
from broker.credentials.sam_session import CloudSamStore, SamSession
from broker.devices import Devices
from broker.domain import events as domain
from broker.domain.presence import presence_events
from broker.domain.pseudonyms import Pseudonyms
from broker.domain.routing import reader_for
from broker.domain.state import SAM_CLOUD, SAM_PHYSICAL, ConsoleState, inserted_again
from broker.domain.stream import Position
from broker.domain.stream import snapshot as stream_snapshot
from broker.flows import health_card as health_card_flows
from broker.flows import session as session_flows
from broker.flows.runner import Flow
from broker.handlers import HANDLERS, Answer, Handler, StartFlow
from broker.handlers.records import record_rows
from broker.ledger import Ledger
from broker.runtime.clock import Clock
from contract.commands import BadArguments, WaitForEvents, is_recorded, parse_command, spec_of
from contract.protocol import Reply, Request, WorkerStatus
from contract.settings import StaffSettings
from contract.status_codes import StatusCode
from eventlog import EventStore

log = logging.getLogger(__name__)

HPC_AUTHENTICATION_SECONDS = StaffSettings().authentication_seconds
"""How long a verified staff card PIN (or a mobile HCA login) lasts: the 5.x HPCFASTAUTH's 8 hours."""
MOBILE_HCA_WINDOW_SECONDS = StaffSettings.mobile_hca_window_seconds
"""How old a mobile HCA login may be (its loginDateTime); a login more than a minute ahead is refused too."""

STREAM_CALLS_PER_ANSWER = 50
"""Calls one stream answer carries at most (a burst beyond that shows its newest): the Record API is the record."""


@dataclass(frozen=True)
class Park:
    """A long poll with nothing to say yet: the loop holds it until `ConsoleCore.stream_news` has something,
    or its wait is over."""

    command: WaitForEvents


@dataclass
class Extension:
    """What wiring adds to a core (the bench, under `serve --sim`): nothing in the production core knows it.

    `handlers`: handlers of commands declared elsewhere; `readers`: reader name -> back-end (`module:factory`)
    of readers that should have workers; `on_report`: a flow to run when a worker reports (or None)."""

    handlers: Mapping[type, Handler] = field(default_factory=dict)
    readers: Callable[[ConsoleState], dict[str, str]] = lambda state: {}
    on_report: Callable[[ConsoleContext, WorkerStatus], Flow | None] = lambda ctx, report: None


class ConsoleCore:
    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        pseudonyms: Pseudonyms | None = None,
        cloud_sams: CloudSamStore | None = None,
        serial_ports: Callable[[], list[str]] = list,
        port_names: Mapping[str, str] | None = None,
        hca_trust: TrustStore | None = None,
        hpc_authentication_seconds: float = HPC_AUTHENTICATION_SECONDS,
        mobile_hca_window_seconds: float = MOBILE_HCA_WINDOW_SECONDS,
        vhc_issuers: list[rsa.RSAPublicKey] | None = None,
    ) -> None:
        self.ledger = Ledger(store, clock)
        self.devices = Devices(cloud_sams or CloudSamStore(None), serial_ports, port_names)
        self.context = ConsoleContext(
            self.ledger,
            self.devices,
            pseudonyms=pseudonyms,
            hca_trust=hca_trust,
            hpc_authentication_seconds=hpc_authentication_seconds,
            mobile_hca_window_seconds=mobile_hca_window_seconds,
            vhc_issuers=vhc_issuers or [],
        )
        self._handlers: dict[type, Handler] = dict(HANDLERS)
        self._extensions: list[Extension] = []
        self._auto_verifying = False
        self._reopen_session()

    def _reopen_session(self) -> None:
        """A restart mid-session: the state is replayed; the SAM is opened again (its DC token is not kept)."""
        state, sam = self.state, self.context.secrets.sam
        if state.initialized and state.sam.type == SAM_CLOUD and state.device_name is not None:
            sam.open(self.devices.cloud_sams.load(state.device_name))
        elif state.initialized and state.sam.physical is not None:
            # The physical SAM stays in its reader: its identity is all the broker holds (its DC token is not
            # kept, so `due_flows` takes it back to level 1 and it waits to be verified again when asked).
            sam.open(state.sam.physical)

    def install(self, extension: Extension) -> None:
        """Add what wiring brings (the bench's commands and readers), for this core only."""
        for command_class in extension.handlers:
            if command_class in self._handlers:
                raise ValueError(f"{command_class.__name__} has a handler already")
        self._handlers.update(extension.handlers)
        self._extensions.append(extension)

    @property
    def state(self) -> ConsoleState:
        return self.ledger.state

    @property
    def sam(self) -> SamSession:
        return self.context.secrets.sam

    @property
    def last_event_seq(self) -> int:
        return self.ledger.last_event_seq

    # --- requests from the API -------------------------------------------------

    def handle(self, request: Request) -> Reply | StartFlow | Park:
        """Run one command, or say which flow must; an answered call is recorded with its outcome."""
        try:
            command = parse_command(request.command, request.args)
        except BadArguments as error:
            return self.answer(request, int(StatusCode.BAD_PARAMETER), {"message": str(error)})
        if isinstance(command, WaitForEvents):
            news = self.stream_news(command, waited_out=command.wait_seconds == 0)
            return Park(command) if news is None else Reply(id=request.id, code=int(StatusCode.OK), body=news)
        handler = self._handlers.get(type(command))
        if handler is None:  # declared, but not wired into this console (the bench's, without --sim)
            return self.answer(
                request, int(StatusCode.BAD_PARAMETER), {"message": f"unknown command {request.command!r}"}
            )
        if spec_of(command).needs_session and not self.state.initialized:
            outcome: Answer | StartFlow = (
                StatusCode.NOT_INITIALIZED,
                {"message": "not initialized: POST /api/common/v1/Initial first"},
            )
        else:
            outcome = handler(self.context, command)
        if isinstance(outcome, StartFlow):
            return outcome
        code, body = outcome
        return self.answer(request, int(code), body, recorded=is_recorded(command))

    def answer(self, request: Request, code: int, body: dict[str, Any], *, recorded: bool = True) -> Reply:
        if recorded and request.call is not None:
            self.ledger.record_call(request.call.url, request.call.uuid, code, request.call.caller)
        return Reply(id=request.id, code=code, body=body)

    def stream_news(self, command: WaitForEvents, *, waited_out: bool) -> dict[str, Any] | None:
        """The live stream's next answer: a snapshot (first, or for a watcher too far behind), or what happened
        after the watcher's position; None while nothing did, unless its wait is over (`waited_out`)."""
        feed, store = self.ledger.feed, self.ledger.store
        position = feed.position
        body: dict[str, Any] = {
            "position": [position.seq, position.index],
            "lastCall": store.last_call_seq(),
            "events": [],
            "calls": [],
        }
        events = None if command.after is None else feed.after(Position(*command.after))
        if events is None:
            body["snapshot"] = stream_snapshot(self.ledger.view)
            return body
        if command.after_call is not None and body["lastCall"] > command.after_call:
            rows = store.calls_newest_first(0, STREAM_CALLS_PER_ANSWER, command.after_call)
            body["calls"] = record_rows(list(reversed(rows)))
        body["events"] = [event.wire() for event in events]
        if not body["events"] and not body["calls"] and not waited_out:
            return None
        return body

    # --- what the clock brings ---------------------------------------------------

    def due_flows(self) -> list[Flow]:
        """Flows no one asked for: a cloud SAM whose DC session has run out is verified again.

        Also ends a staff authentication whose 8 hours have passed, and a virtual card's (no flow needed).
        """
        ctx, state, now = self.context, self.state, self.context.now()
        hc_expiry = _parse_time(state.hc.expire_time)
        if state.hc.type == 2 and state.hc.status >= 2 and hc_expiry is not None and now >= hc_expiry:
            health_card_flows.expire_virtual_card(ctx)
        hpc_expiry = _parse_time(self.state.hpc.expire_time)
        if self.state.hpc.status == 3 and hpc_expiry is not None and now >= hpc_expiry:
            ctx.secrets.hpc_holder = None
            ctx.emit(domain.HpcAuthenticationExpired())
        sam, secrets = self.state.sam, ctx.secrets
        if self.state.initialized and sam.type == SAM_PHYSICAL and sam.status == 2 and not secrets.sam.token_valid(now):
            # A physical SAM is verified only when asked: its DC session ran out (or the broker restarted
            # without its token), so it is back at level 1 until the next `sam/v1/Verification`.
            secrets.sam.drop_token()
            ctx.emit(domain.SamSessionExpired())
            return []
        if self._auto_verifying or not self.state.initialized or sam.type != SAM_CLOUD or sam.status != 2:
            return []
        expires = _parse_time(sam.expire_time)
        if expires is None or now < expires:
            return []
        secrets.sam.drop_token()
        ctx.emit(domain.SamSessionExpired())
        self._auto_verifying = True
        return [session_flows.automatic_verification(ctx)]

    def automatic_verification_done(self, outcome: Answer) -> None:
        self._auto_verifying = False
        if outcome[0] != 0:
            log.warning("automatic SAM verification failed with %d", outcome[0])

    def end_stale_session(self) -> None:
        """A fresh start of the console begins uninitialized, as the official console does."""
        if self.state.initialized:
            self.context.end_session("console started")

    # --- what the workers see --------------------------------------------------

    def worker_reported(self, report: WorkerStatus) -> list[Flow]:
        """Fold a worker's report into the state; the flows wiring wants run for it (the bench's card)."""
        self.devices.reported(report)
        for event in presence_events(self.state, report, self.context.card_ref):
            if isinstance(event, domain.CardInserted) and self._ends_staff_authentication(event):
                self.context.secrets.hpc_holder = None
                self.context.emit(domain.HpcAuthenticationEnded(reason="another staff card was inserted"))
            self.context.emit(event)
            if isinstance(event, domain.CardInserted):
                self._detect_inserted(event)
            elif isinstance(event, domain.CardSessionResumed):
                resumed = self.state.readers[event.reader].card
                if resumed is not None:
                    self._detect_inserted(inserted_again(event.reader, resumed))
        flows = [extension.on_report(self.context, report) for extension in self._extensions]
        return [flow for flow in flows if flow is not None]

    def _ends_staff_authentication(self, event: domain.CardInserted) -> bool:
        """A different staff card ends the previous one's authentication (or a mobile HCA's)."""
        hpc = self.state.hpc
        return event.kind == "hpc" and hpc.status >= 1 and hpc.card_ref != event.card_ref

    def _detect_inserted(self, event: domain.CardInserted) -> None:
        """A card inserted during a session is detected at once (level 1) if it is the one to use."""
        if not self.state.initialized or event.kind not in ("hc", "hpc"):
            return
        level = self.state.hc.status if event.kind == "hc" else self.state.hpc.status
        if level == 0 and reader_for(self.state, event.kind) == event.reader:
            self.context.emit(domain.CardDetected(kind=event.kind, reader=event.reader, session=event.session))

    def worker_lost(self, reader: str, reason: str) -> None:
        if reader in self.state.readers:
            self.context.emit(domain.WorkerLost(reader=reader, reason=reason))

    def agent_named(self, key_id: str) -> str | None:
        """The enrolled agent whose key has this id (issue 23), if any."""
        return next((name for name, key in self.state.agents.items() if key == key_id), None)

    def enrolled_key_ids(self) -> frozenset[str]:
        return frozenset(self.state.agents.values())

    def agent_refused(self, key_id: str, address: str, attempts: int) -> None:
        """A key not enrolled was refused at the agent endpoint (throttled by the caller)."""
        self.context.emit(domain.AgentRefused(key_id=key_id, address=address, attempts=attempts))

    def reader_detached(self, reader: str, reason: str) -> None:
        if reader in self.state.readers:
            self.context.emit(domain.ReaderDetached(reader=reader, reason=reason))

    def readers_not_in(self, wanted: set[str]) -> list[str]:
        """The state's readers that no worker is wanted for any more (they leave it: `reader_detached`)."""
        return sorted(reader for reader in self.state.readers if reader not in wanted)

    def serial_devices(self) -> set[str]:
        """The ports whose NHI reader workers should run: the session's, and those an `Initial` is trying."""
        return self.devices.serial_devices(self.state)

    def serial_device_path(self, port: str) -> str | None:
        """What the worker of the port keyed `port` opens, if not `port` itself (a Windows name's device)."""
        return self.devices.device_path(port)

    def wired_readers(self) -> dict[str, str]:
        """Readers that wiring wants workers for (the bench's), by name, with their back-ends."""
        readers: dict[str, str] = {}
        for extension in self._extensions:
            readers.update(extension.readers(self.state))
        return readers

    def commit(self) -> None:
        self.ledger.commit()


def _parse_time(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
