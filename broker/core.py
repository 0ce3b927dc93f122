"""The broker's core: commands in, events and replies out, over an EventStore.

No sockets here: the loop in `broker.runtime.loop` feeds it decoded messages and sends
what it returns.  Appends go into the store's open transaction; the loop calls
`commit()` once per batch and only then sends the replies, so a reply never
acknowledges something a crash could still lose.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from broker.domain import events as domain
from broker.runtime.clock import Clock
from contract.commands import (
    AllowCorsHost,
    AutoDetectReader,
    BadArguments,
    ListCorsHosts,
    RemoveCorsHost,
    ClearDefaultReader,
    ClearRecords,
    Command,
    GetDefaultReader,
    GetStateSnapshot,
    Finalize,
    GetSamBasic,
    GetServerDateTime,
    ChangeHpcPin,
    ExportVirtualHc,
    GetHcPin,
    GetStatus,
    ImportVirtualHc,
    LogoutHc,
    ReadVirtualHcBasic,
    RemoveHcPin,
    SetHcPin,
    SignWithHc,
    SignWithHpcHc,
    UpdateRealHc,
    VerifyHcPin,
    VerifyVirtualHc,
    ImportCloudSam,
    Initialize,
    ListCloudSams,
    ListDevices,
    ListReaders,
    ListRecords,
    LogoutHpc,
    LogoutSam,
    ReadHcBasic,
    ReadHpcBasic,
    ReadPublicData,
    RecordCall,
    RemoveCloudSam,
    ResetHpcPin,
    SetDefaultReader,
    SignWithHpc,
    SignWithSam,
    SimAdvanceClock,
    SimListReaders,
    SimPlugReader,
    SimPutCard,
    SimTakeCard,
    SimUnplugReader,
    VerifyHpcPin,
    VerifyMobileHca,
    VerifySam,
    WaitForEvents,
    is_recorded,
    parse_command,
)
from broker.flows import health_card as health_card_flows
from broker.flows import session as session_flows
from broker.flows import staff as staff_flows
from broker.flows.health_card import VirtualHolder
from broker.credentials.cloud_sam_file import CloudSamFileInvalid, decode_context, parse_cloud_sam_file
from broker.dc.seam import DcError
from broker.flows.runner import DcCall, Flow, Step
from broker.credentials.hca_trust import TrustStore, check_certificate
from broker.credentials.mobile_hca import verify_mobile_login
from contract.commands import MobileHcaLogin
from broker.flows.session import FlowFailed
from broker.flows.staff import StaffHolder
from broker.domain.routing import auto_detected_reader, reader_for
from broker.domain.presence import presence_events
from broker.domain.pseudonyms import Pseudonyms
from contract.protocol import Reply, Request, WorkerStatus
from broker.credentials.sam_session import CloudSamStore, SamSession
from broker.domain.state import SAM_CLOUD, SAM_PHYSICAL, ConsoleState, apply, render_status, snapshot
from contract.deadlines import CARD_STEP_SECONDS
from contract.status_codes import StatusCode
from broker.domain.stream import REPLAYED_EVENTS, Position, StreamFeed, public_view, snapshot as stream_snapshot
from eventlog import EventStore, format_record_timestamp

log = logging.getLogger(__name__)

HPC_AUTHENTICATION_SECONDS = 8 * 3600.0
"""How long a verified staff card PIN (or a mobile HCA login) lasts: the 5.x HPCFASTAUTH's 8 hours."""
MOBILE_HCA_WINDOW_SECONDS = 300.0
"""How old a mobile HCA login may be (its loginDateTime); a login more than a minute ahead is refused too."""
MOBILE_HCA_FUTURE_SKEW_SECONDS = 60.0
CRL_CACHE_SECONDS = 3600.0
"""The HCA CRL is fetched from the DC again after this, or sooner if it says its next update has passed."""



@dataclass(frozen=True)
class Forward:
    """A command the reader's worker must run; `finish` turns its reply into the API's answer."""

    reader: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    finish: Callable[[Reply], tuple[int, dict[str, Any]]] = lambda reply: (reply.code, reply.body)
    timeout: float = CARD_STEP_SECONDS


@dataclass(frozen=True)
class Park:
    """A long poll with nothing to say yet: the loop holds it until `ConsoleCore.stream_news` has something,
    or its wait is over."""

    command: WaitForEvents


STREAM_CALLS_PER_ANSWER = 50
"""Calls one stream answer carries at most (a burst beyond that shows its newest): the Record API is the record."""


@dataclass(frozen=True)
class StartFlow:
    """A command that takes several steps (cards, the DC): the loop runs `flow` and answers with its outcome."""

    flow: Flow


SESSION_COMMANDS = (
    Finalize, GetServerDateTime, GetSamBasic, VerifySam, LogoutSam, SignWithSam, ReadHcBasic, VerifyHpcPin,
    ChangeHpcPin, ResetHpcPin, ReadHpcBasic, LogoutHpc, SignWithHpc, VerifyMobileHca, LogoutHc, GetHcPin,
    VerifyHcPin, SetHcPin, RemoveHcPin, SignWithHc, SignWithHpcHc, VerifyVirtualHc, ReadVirtualHcBasic,
    ExportVirtualHc, ImportVirtualHc, UpdateRealHc,
)
"""The commands that need an initialized session (1000 otherwise)."""


def _not_found(message: str) -> tuple[int, dict[str, Any]]:
    """A bench answer for an unknown reader: the bench's HTTP layer turns `notFound` into 404."""
    return int(StatusCode.BAD_PARAMETER), {"message": message, "notFound": True}


class ConsoleCore:
    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        *,
        sim: bool = False,
        pseudonyms: Pseudonyms | None = None,
        cloud_sams: CloudSamStore | None = None,
        serial_ports: Callable[[], list[str]] = lambda: [],
        hca_trust: TrustStore | None = None,
        hpc_authentication_seconds: float = HPC_AUTHENTICATION_SECONDS,
        mobile_hca_window_seconds: float = MOBILE_HCA_WINDOW_SECONDS,
        vhc_issuers: list[rsa.RSAPublicKey] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.sim = sim
        # Without the installation's key (unit tests), a throwaway one: pseudonyms still never leak numbers.
        self._pseudonyms = pseudonyms or Pseudonyms(secrets.token_bytes(32))
        self._cloud_sams = cloud_sams or CloudSamStore(None)
        self._serial_ports = serial_ports
        self.sam = SamSession()
        self._hca_trust = hca_trust
        self._hpc_seconds = hpc_authentication_seconds
        self._mobile_window = mobile_hca_window_seconds
        self._crls: tuple[list[x509.CertificateRevocationList], datetime.datetime] | None = None
        self.hpc_holder: StaffHolder | None = None
        self._vhc_issuers = list(vhc_issuers or [])
        self.virtual_holder: VirtualHolder | None = None
        self.virtual_expired = False
        self._auto_verifying = False
        self._serial_probing: set[str] = set()
        """Ports an `Initial` is trying right now: their workers run before any session uses them."""
        self._reader_faults: dict[str, int] = {}
        """What each reader's worker last reported as its fault (the NHI reader's port); not in the log."""
        self.last_event_seq = 0
        self.state = ConsoleState()
        self.feed = StreamFeed()
        streamed_after = max(0, store.last_event_seq() - REPLAYED_EVENTS)
        if streamed_after:
            self.feed.begin_after(streamed_after)
        self._view = public_view(self.state)
        for stored in store.events():
            event = domain.decode(stored.type, stored.version, stored.payload)
            if stored.seq > streamed_after:
                self._advance(stored.seq, event)
                continue
            self.state, self.last_event_seq = apply(self.state, event), stored.seq
            if stored.seq == streamed_after:
                self._view = public_view(self.state)
        if self.state.initialized and self.state.sam.type == SAM_CLOUD and self.state.device_name is not None:
            # A restart mid-session: the state is replayed; the SAM's file is opened again (its DC token is not kept).
            self.sam.open(self._cloud_sams.load(self.state.device_name))
        elif self.state.initialized and self.state.sam.physical is not None:
            # The physical SAM stays in its reader: its identity is all the broker holds (its DC token is not
            # kept, so `due_flows` takes it back to level 1 and it waits to be verified again when asked).
            self.sam.open(self.state.sam.physical)

    # --- requests from the API -------------------------------------------------

    def handle(self, request: Request) -> Reply | Forward | StartFlow | Park:
        """Run one command, or say which worker must; a finished call is recorded with its outcome."""
        try:
            command = parse_command(request.command, request.args)
        except BadArguments as error:
            return self.answer(request, int(StatusCode.BAD_PARAMETER), {"message": str(error)})
        if isinstance(command, WaitForEvents):
            news = self.stream_news(command, waited_out=command.wait_seconds == 0)
            return Park(command) if news is None else Reply(id=request.id, code=int(StatusCode.OK), body=news)
        outcome = self._run(command)
        if isinstance(outcome, (Forward, StartFlow)):
            return outcome
        code, body = outcome
        return self.answer(request, code, body, recorded=is_recorded(command))

    def answer(self, request: Request, code: int, body: dict[str, Any], *, recorded: bool = True) -> Reply:
        if recorded and request.call is not None:
            self._store.append_call(request.call.url, request.call.uuid, self._timestamp(), code)
        return Reply(id=request.id, code=code, body=body)

    def _run(self, command: Command) -> tuple[int, dict[str, Any]] | Forward | StartFlow:
        session = self._run_session(command)
        if session is not None:
            return session
        if isinstance(command, GetStatus):
            return StatusCode.OK, {"status": render_status(self.state)}
        if isinstance(command, GetStateSnapshot):
            return StatusCode.OK, {"throughSeq": self.last_event_seq, "state": snapshot(self.state)}
        if isinstance(command, ListRecords):
            return StatusCode.OK, {"records": self._records(command)}
        if isinstance(command, ClearRecords):
            self.emit(domain.CallRecordCleared(through_seq=self._store.last_call_seq()))
            return StatusCode.OK, {}
        if isinstance(command, RecordCall):
            return command.status_code, {}
        if isinstance(command, ListReaders):
            return StatusCode.OK, {"readers": sorted(self.state.readers)}
        if isinstance(command, GetDefaultReader):
            if self.state.default_reader is None:
                return StatusCode.NO_DEFAULT_READER, {}
            return StatusCode.OK, {"readerName": self.state.default_reader}
        if isinstance(command, SetDefaultReader):
            if command.reader not in self.state.readers:
                return StatusCode.READER_NAME_UNKNOWN, {}
            if self.state.default_reader != command.reader:
                self.emit(domain.DefaultReaderSet(reader=command.reader))
            return StatusCode.OK, {}
        if isinstance(command, ClearDefaultReader):
            if self.state.default_reader is not None:
                self.emit(domain.DefaultReaderCleared())
            return StatusCode.OK, {}
        if isinstance(command, AutoDetectReader):
            found = auto_detected_reader(self.state)
            if found is None:
                return StatusCode.AUTO_DETECT_FAILED, {}
            if self.state.default_reader != found:
                self.emit(domain.DefaultReaderSet(reader=found))
            return StatusCode.OK, {"readerName": found}
        if isinstance(command, ReadPublicData):
            return self._read_public_data(command)
        if isinstance(command, (ListCorsHosts, AllowCorsHost, RemoveCorsHost)):
            return self._cors_setting(command)
        return self._run_bench(command)

    def stream_news(self, command: WaitForEvents, *, waited_out: bool) -> dict[str, Any] | None:
        """The live stream's next answer: a snapshot (first, or for a watcher too far behind), or what happened
        after the watcher's position; None while nothing did, unless its wait is over (`waited_out`)."""
        position = self.feed.position
        body: dict[str, Any] = {"position": [position.seq, position.index], "lastCall": self._store.last_call_seq(),
                                "events": [], "calls": []}
        events = None if command.after is None else self.feed.after(Position(*command.after))
        if events is None:
            body["snapshot"] = stream_snapshot(self._view)
            return body
        if command.after_call is not None and body["lastCall"] > command.after_call:
            rows = self._store.calls_newest_first(0, STREAM_CALLS_PER_ANSWER, command.after_call)
            body["calls"] = [{"url": row.url, "uuid": row.uuid, "timestamp": row.timestamp,
                              "statusCode": row.status_code} for row in reversed(rows)]
        body["events"] = [event.wire() for event in events]
        if not body["events"] and not body["calls"] and not waited_out:
            return None
        return body

    def _cors_setting(self, command: ListCorsHosts | AllowCorsHost | RemoveCorsHost) -> tuple[int, dict[str, Any]]:
        """The CORS allow-list: a change is an event, so it is in effect for the very next request."""
        if isinstance(command, AllowCorsHost):
            if command.host not in self.state.cors_hosts:
                self.emit(domain.CorsHostAllowed(host=command.host))
        elif isinstance(command, RemoveCorsHost):
            if command.host not in self.state.cors_hosts:
                return StatusCode.BAD_PARAMETER, {"message": "that host is not on the allow-list"}
            self.emit(domain.CorsHostRemoved(host=command.host))
        else:
            return StatusCode.OK, {"cors": list(self.state.cors_hosts)}
        return StatusCode.OK, {}

    # --- the session: devices, the SAM, card levels -----------------------------------

    def _run_session(self, command: Command) -> tuple[int, dict[str, Any]] | StartFlow | None:
        """The session's commands (None for any other); the ones that take steps are flows."""
        if isinstance(command, ListDevices):
            return StatusCode.OK, {"names": self.device_names()}
        if isinstance(command, Initialize):
            return StartFlow(session_flows.initial(self, command.name))
        if isinstance(command, ListCloudSams):
            return StatusCode.OK, {"sams": sorted(self.state.cloud_sams)}
        if isinstance(command, ImportCloudSam):
            return self._import_cloud_sam(command)
        if isinstance(command, RemoveCloudSam):
            if command.sam_id not in self.state.cloud_sams:
                return StatusCode.CLOUD_SAM_UNKNOWN, {"message": "no imported cloud SAM has that id"}
            if self.state.initialized and self.state.device_name == command.sam_id:
                self._end_session("its cloud SAM was removed")
            self._cloud_sams.remove(command.sam_id)
            self.emit(domain.CloudSamRemoved(sam_id=command.sam_id))
            return StatusCode.OK, {}
        if not isinstance(command, SESSION_COMMANDS):
            return None
        if not self.state.initialized:
            return StatusCode.NOT_INITIALIZED, {"message": "not initialized: POST /api/common/v1/Initial first"}
        if isinstance(command, Finalize):
            self._end_session("finalize")
            return StatusCode.OK, {}
        if isinstance(command, GetSamBasic):
            return self._sam_basic()
        if isinstance(command, LogoutSam):
            self.sam.drop_token()
            self.hpc_holder = None
            self.virtual_holder = None
            self.emit(domain.SamLoggedOut())
            return StatusCode.OK, {}
        if isinstance(command, VerifySam):
            return StartFlow(session_flows.sam_verification(self))
        if isinstance(command, SignWithSam):
            return StartFlow(session_flows.sam_signature(self, command.service_type))
        if isinstance(command, GetServerDateTime):
            return StartFlow(session_flows.server_date_time(self))
        staff = self._run_staff(command)
        if staff is not None:
            return staff
        return self._run_health_card(command)

    def _run_staff(self, command: Command) -> tuple[int, dict[str, Any]] | StartFlow | None:
        if isinstance(command, VerifyHpcPin):
            return StartFlow(staff_flows.verify_hpc_pin(self, command.pin))
        if isinstance(command, ChangeHpcPin):
            return StartFlow(staff_flows.change_hpc_pin(self, command.new_pin))
        if isinstance(command, ResetHpcPin):
            return StartFlow(staff_flows.reset_hpc_pin(self, command.puk, command.new_pin))
        if isinstance(command, ReadHpcBasic):
            return StartFlow(staff_flows.read_hpc_basic(self))
        if isinstance(command, LogoutHpc):
            return staff_flows.logout_hpc(self)
        if isinstance(command, SignWithHpc):
            return StartFlow(staff_flows.sign_with_hpc(self, command.service_type))
        if isinstance(command, VerifyMobileHca):
            return StartFlow(staff_flows.login_mobile_hca(self, command.login))
        return None

    def _run_health_card(self, command: Command) -> tuple[int, dict[str, Any]] | StartFlow:
        if isinstance(command, LogoutHc):
            return health_card_flows.logout_hc(self)
        flows: dict[type, Callable[[Any], Flow]] = {
            ReadHcBasic: lambda c: health_card_flows.read_hc_basic(self),
            GetHcPin: lambda c: health_card_flows.hc_has_pin(self),
            VerifyHcPin: lambda c: health_card_flows.verify_hc_pin(self, c.pin),
            SetHcPin: lambda c: health_card_flows.set_hc_pin(self, c.new_pin),
            RemoveHcPin: lambda c: health_card_flows.remove_hc_pin(self),
            SignWithHc: lambda c: health_card_flows.sign_with_hc(self, c.service_type),
            SignWithHpcHc: lambda c: health_card_flows.sign_with_hpc_and_hc(self, c.service_type),
            VerifyVirtualHc: lambda c: health_card_flows.verify_virtual_hc(self, c.token),
            ReadVirtualHcBasic: lambda c: health_card_flows.read_virtual_hc_basic(self, c.token),
            ExportVirtualHc: lambda c: health_card_flows.export_virtual_hc(self),
            ImportVirtualHc: lambda c: health_card_flows.import_virtual_hc(self, c.transfer_token),
            UpdateRealHc: lambda c: health_card_flows.update_real_hc(self),
        }
        make = flows.get(type(command))
        if make is None:
            raise TypeError(f"no handler for {command!r}")
        return StartFlow(make(command))

    # HealthCardContext, for the health card's flows
    @property
    def vhc_issuers(self) -> list[rsa.RSAPublicKey]:
        return self._vhc_issuers

    def now_seconds(self) -> int:
        return self._wall_ns() // 1_000_000_000

    def card_ref(self, card_number: str) -> str:
        return self._pseudonyms.card(card_number)

    def iso_time(self, epoch_seconds: int) -> str:
        return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC).astimezone().isoformat(timespec="seconds")

    # StaffContext, for the staff card's flows
    def authentication_expiry(self) -> str:
        return (self.now() + datetime.timedelta(seconds=self._hpc_seconds)).astimezone().isoformat(timespec="seconds")

    def person_ref(self, id_no: str) -> str:
        return self._pseudonyms.person(id_no)

    def _current_crls(self) -> Generator[Step, Any, list[x509.CertificateRevocationList]]:
        """The HCA CRLs from the DC, cached for an hour (or until one says its next update has passed)."""
        now = self.now()
        if self._crls is not None:
            crls, fetched = self._crls
            fresh = (now - fetched).total_seconds() < CRL_CACHE_SECONDS
            if fresh and all(crl.next_update_utc is not None and crl.next_update_utc >= now for crl in crls):
                return crls
        try:
            ders: list[bytes] = yield DcCall(lambda dc: dc.hca_crls(), "Crl")
        except DcError as error:
            raise FlowFailed(error.code, f"the HCA revocation list could not be fetched: {error.reason}") from None
        crls = [x509.load_der_x509_crl(der) for der in ders]
        self._crls = (crls, now)
        return crls

    def staff_certificate_problem(self, certificate_der: bytes) -> Generator[Step, Any, int | None]:
        if self._hca_trust is None:
            return int(StatusCode.CERTIFICATE_ISSUER_UNTRUSTED)  # no trust store configured: nothing is trusted
        try:
            certificate = x509.load_der_x509_certificate(certificate_der)
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
            return int(StatusCode.CERTIFICATE_ISSUER_UNTRUSTED)
        crls = yield from self._current_crls()
        problem = check_certificate(certificate, now=self.now(), trust=self._hca_trust, crls=crls)
        return None if problem is None else int(problem)

    def mobile_login_problem(self, login: MobileHcaLogin) -> Generator[Step, Any, int | None]:
        sam_file = self.sam.file
        if sam_file is None:
            return int(StatusCode.SAM_LEVEL1_FAILED)
        if self._hca_trust is None:
            return int(StatusCode.CERTIFICATE_ISSUER_UNTRUSTED)
        crls = yield from self._current_crls()
        problem = verify_mobile_login(
            login, now=self.now(), trust=self._hca_trust, crls=crls, sam_hospital_id=sam_file.hospital_id,
            window_seconds=self._mobile_window, future_skew_seconds=MOBILE_HCA_FUTURE_SKEW_SECONDS,
        )
        return None if problem is None else int(problem)

    def _sam_basic(self) -> tuple[int, dict[str, Any]]:
        sam_file = self.sam.file
        if self.state.sam.status < 1 or sam_file is None:
            return StatusCode.SAM_LEVEL1_FAILED, {"message": "the SAM cannot be read"}
        return StatusCode.OK, {
            "samId": sam_file.sam_id,
            "hospitalId": sam_file.hospital_id,
            "hospitalName": sam_file.hospital_name,
            "hospitalShortName": sam_file.hospital_short_name,
        }

    def _import_cloud_sam(self, command: ImportCloudSam) -> tuple[int, dict[str, Any]]:
        try:
            raw = decode_context(command.context)
            sam_file = parse_cloud_sam_file(raw)
        except CloudSamFileInvalid as error:
            return StatusCode.CLOUD_SAM_FILE_INVALID, {"message": str(error)}
        if command.sam_id is not None and command.sam_id != sam_file.sam_id:
            return StatusCode.CLOUD_SAM_FILE_INVALID, {"message": "samId is not the file's"}
        if command.hospital_id is not None and command.hospital_id != sam_file.hospital_id:
            return StatusCode.CLOUD_SAM_FILE_INVALID, {"message": "hospitalId is not the file's"}
        self._cloud_sams.save(sam_file.sam_id, raw)
        if self.state.cloud_sams.get(sam_file.sam_id) != sam_file.hospital_id:
            self.emit(domain.CloudSamImported(sam_id=sam_file.sam_id, hospital_id=sam_file.hospital_id))
        return StatusCode.OK, {"sam": {
            "samId": sam_file.sam_id,
            "hospitalId": sam_file.hospital_id,
            "hospitalName": sam_file.hospital_name,
            "hospitalShortName": sam_file.hospital_short_name,
            "comport": f"COMX{sorted(self.state.cloud_sams).index(sam_file.sam_id) + 1}",
        }}

    def _end_session(self, reason: str) -> None:
        self.sam.close()
        self.hpc_holder = None
        self.virtual_holder = None
        self.emit(domain.SessionFinalized(reason=reason))

    def import_bench_sam(self, raw: bytes) -> None:
        """The bench's start state holds one imported cloud SAM (sim-control.md); imported like any other."""
        sam_file = parse_cloud_sam_file(raw)
        if sam_file.sam_id not in self.state.cloud_sams:
            self._cloud_sams.save(sam_file.sam_id, raw)
            self.emit(domain.CloudSamImported(sam_id=sam_file.sam_id, hospital_id=sam_file.hospital_id))

    def end_stale_session(self) -> None:
        """A fresh start of the console begins uninitialized, as the official console does."""
        if self.state.initialized:
            self._end_session("console started")

    # SessionContext, for the flows
    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self._wall_ns() / 1e9, datetime.UTC)

    def open_device(self, device: str) -> int | None:
        if device in self.state.cloud_sams:
            sam_file = self._cloud_sams.load(device)
            if sam_file is None:
                log.warning("cloud SAM %s: its file is missing or unreadable", device)
                return None
            self.sam.open(sam_file)
            return SAM_CLOUD
        return None  # a serial port is opened by its worker: `session_flows.initial` does that

    def device_names(self) -> list[str]:
        """`GET /api/common/v1/Name`: the imported cloud SAMs, then the machine's serial ports."""
        return list(dict.fromkeys([*sorted(self.state.cloud_sams), *self._serial_ports()]))

    def device_candidates(self) -> list[str]:
        ordered = [self.state.last_device] if self.state.last_device else []
        ordered += self.device_names()
        return list(dict.fromkeys(name for name in ordered if name))

    def is_serial_port(self, device: str) -> bool:
        # A device file under /dev/ counts even if the listing missed it (a udev symlink, an adapter just
        # plugged in); a name that is neither listed nor there is no device at all (1002), not a port (1201).
        if device in self.state.cloud_sams:
            return False
        return device in self._serial_ports() or (device.startswith("/dev/") and os.path.exists(device))

    def want_serial_device(self, port: str) -> None:
        self._serial_probing.add(port)

    def drop_serial_device(self, port: str) -> None:
        self._serial_probing.discard(port)

    def serial_devices(self) -> set[str]:
        """The ports whose NHI reader workers should run: the session's, and those an `Initial` is trying."""
        ports = set(self._serial_probing)
        if self.state.initialized and self.state.sam.type == SAM_PHYSICAL and self.state.device_name:
            ports.add(self.state.device_name)
        return ports

    def device_fault(self) -> int | None:
        if self.state.sam.type != SAM_PHYSICAL or self.state.device_name is None:
            return None
        return self._reader_faults.get(self.state.device_name)

    def due_flows(self) -> list[Flow]:
        """Flows no one asked for: a cloud SAM whose DC session has run out is verified again.

        Also ends a staff authentication whose 8 hours have passed (no flow needed for that).
        """
        hc = self.state.hc
        hc_expiry = _parse_time(hc.expire_time)
        if hc.type == 2 and hc.status >= 2 and hc_expiry is not None and self.now() >= hc_expiry:
            health_card_flows.expire_virtual_card(self)
        hpc_expiry = _parse_time(self.state.hpc.expire_time)
        if self.state.hpc.status == 3 and hpc_expiry is not None and self.now() >= hpc_expiry:
            self.hpc_holder = None
            self.emit(domain.HpcAuthenticationExpired())
        sam = self.state.sam
        if self.state.initialized and sam.type == SAM_PHYSICAL and sam.status == 2 \
                and not self.sam.token_valid(self.now()):
            # A physical SAM is verified only when asked: its DC session ran out (or the broker restarted
            # without its token), so it is back at level 1 until the next `sam/v1/Verification`.
            self.sam.drop_token()
            self.emit(domain.SamSessionExpired())
            return []
        if self._auto_verifying or not self.state.initialized or sam.type != SAM_CLOUD or sam.status != 2:
            return []
        expires = _parse_time(sam.expire_time)
        if expires is None or self.now() < expires:
            return []
        self.sam.drop_token()
        self.emit(domain.SamSessionExpired())
        self._auto_verifying = True
        return [session_flows.automatic_verification(self)]

    def automatic_verification_done(self, outcome: tuple[int, dict[str, Any]]) -> None:
        self._auto_verifying = False
        if outcome[0] != 0:
            log.warning("automatic SAM verification failed with %d", outcome[0])

    def _read_public_data(self, command: ReadPublicData) -> tuple[int, dict[str, Any]] | Forward:
        if command.reader is not None:
            reader = self.state.readers.get(command.reader)
            if reader is None:
                return StatusCode.READER_NAME_UNKNOWN, {}
            if reader.card is None:
                return StatusCode.NO_CARD, {}
            return Forward(command.reader, "ReadPublicData")
        routed = reader_for(self.state, "hc")
        if isinstance(routed, StatusCode):
            return routed, {}
        return Forward(routed, "ReadPublicData")

    def _run_bench(self, command: Command) -> tuple[int, dict[str, Any]] | Forward:
        if not self.sim:
            return _not_found("the simulation bench is not running")
        sim_readers = self.state.sim_readers
        if isinstance(command, SimListReaders):
            readers = [
                {"name": name, "card": None if profile is None else {"profile": profile}}
                for name, profile in sorted(sim_readers.items())
            ]
            return StatusCode.OK, {"readers": readers}
        if isinstance(command, SimAdvanceClock):
            if command.seconds:
                self.emit(domain.SimClockAdvanced(seconds=command.seconds))
            return StatusCode.OK, {"consoleTime": self.now().isoformat()}
        if isinstance(command, SimPlugReader):
            if command.reader in sim_readers or command.reader in self.state.readers:
                return int(StatusCode.BAD_PARAMETER), {"message": "a reader of that name is already plugged in"}
            self.emit(domain.SimReaderPlugged(reader=command.reader))
            return StatusCode.OK, {}
        if not isinstance(command, (SimUnplugReader, SimPutCard, SimTakeCard)):  # the session's are above
            raise TypeError(f"no handler for {command!r}")
        if command.reader not in sim_readers:
            return _not_found("no bench reader of that name")
        if isinstance(command, SimUnplugReader):
            self.emit(domain.SimReaderUnplugged(reader=command.reader))
            return StatusCode.OK, {}
        if isinstance(command, SimPutCard):
            return Forward(command.reader, "ControlBackend", {"action": "insert", "profile": command.profile},
                           finish=self._finish_card_change(command.reader, command.profile))
        return Forward(command.reader, "ControlBackend", {"action": "remove"},
                       finish=self._finish_card_change(command.reader, None))

    def _finish_card_change(self, reader: str, profile: str | None) -> Callable[[Reply], tuple[int, dict[str, Any]]]:
        def finish(reply: Reply) -> tuple[int, dict[str, Any]]:
            if reply.code == StatusCode.OK and reader in self.state.sim_readers:
                self.emit(domain.SimCardPut(reader, profile) if profile else domain.SimCardTaken(reader))
            return reply.code, reply.body

        return finish

    def reset_bench(self, readers: list[str], cards: dict[str, str], default_reader: str | None) -> None:
        """Bring the bench to its start state (sim-control.md) from whatever the log says it was."""
        for name in sorted(set(self.state.sim_readers) - set(readers)):
            self.emit(domain.SimReaderUnplugged(reader=name))
        for name in readers:
            if name not in self.state.sim_readers:
                self.emit(domain.SimReaderPlugged(reader=name))
            if self.state.sim_readers.get(name) != cards.get(name):
                profile = cards.get(name)
                self.emit(domain.SimCardPut(name, profile) if profile else domain.SimCardTaken(name))
        if default_reader is not None and self.state.default_reader is None:
            # Only when none is set: a default the user chose is a setting, and settings persist.
            self.emit(domain.DefaultReaderSet(reader=default_reader))

    def _records(self, command: ListRecords) -> list[dict[str, Any]]:
        rows = self._store.calls_newest_first(command.skip, command.take, self.state.record_cleared_through)
        return [
            {"url": row.url, "uuid": row.uuid, "timestamp": row.timestamp, "statusCode": row.status_code}
            for row in rows
        ]

    # --- what the workers see --------------------------------------------------

    def worker_reported(self, report: WorkerStatus) -> None:
        if report.fault is None:
            self._reader_faults.pop(report.reader, None)
        elif self._reader_faults.get(report.reader) != report.fault:
            log.warning("reader %r cannot be used: %d", report.reader, report.fault)
            self._reader_faults[report.reader] = report.fault
        for event in presence_events(self.state, report, self._pseudonyms.card):
            if isinstance(event, domain.CardInserted) and self._ends_staff_authentication(event):
                self.hpc_holder = None
                self.emit(domain.HpcAuthenticationEnded(reason="another staff card was inserted"))
            self.emit(event)
            if isinstance(event, domain.CardInserted):
                self._detect_inserted(event)

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
            self.emit(domain.CardDetected(kind=event.kind, reader=event.reader, session=event.session))

    def worker_lost(self, reader: str, reason: str) -> None:
        if reader in self.state.readers:
            self.emit(domain.WorkerLost(reader=reader, reason=reason))

    def reader_detached(self, reader: str, reason: str) -> None:
        if reader in self.state.readers:
            self.emit(domain.ReaderDetached(reader=reader, reason=reason))

    # --- storage ---------------------------------------------------------------

    def emit(self, event: domain.Event) -> None:
        type_name, version, payload = domain.encode(event)
        self._advance(self._store.append_event(type_name, version, payload, self._timestamp()), event)
        log.info("event %s", type_name)

    def _advance(self, seq: int, event: domain.Event) -> None:
        """Fold one logged event into the state, and what it changed into the live stream."""
        self.last_event_seq = seq
        self.state = apply(self.state, event)
        before, self._view = self._view, public_view(self.state)
        self.feed.observe(seq, before, self._view)

    def commit(self) -> None:
        self._store.commit()

    def _wall_ns(self) -> int:
        return self._clock.wall_ns() + self.state.clock_offset_seconds * 1_000_000_000

    def _timestamp(self) -> str:
        return format_record_timestamp(self._wall_ns())


def _parse_time(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
