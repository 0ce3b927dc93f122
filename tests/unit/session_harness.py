"""A synchronous stand-in for the broker's loop, to run the session's flows in milliseconds.

The core is the real `ConsoleCore` over the in-memory store; card steps run the
workers' real session commands against the bench's virtual cards; DC calls go
to `FakeDataCenter`, which computes the SAM's side with the bench's published
card keys. Only the sockets and threads are missing.
"""

from __future__ import annotations

import datetime
import itertools
import json
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from broker.core import ConsoleCore
from broker.credentials.cloud_sam_file import FORMAT, MAGIC
from broker.credentials.hca_trust import TrustStore
from broker.credentials.sam_session import CloudSamStore
from broker.dc.seam import CardCryptogram, DcError, DcSession, ImportedVirtualHc
from broker.flows.runner import CardStep, DcCall, Flow, FlowRunner, Outcome
from broker.handlers import StartFlow
from broker.runtime.clock import ManualClock
from contract.nhi_reader_slots import port_of
from contract.protocol import CardPresence, Reply, Request, WorkerStatus
from contract.status_codes import StatusCode
from eventlog.memory_store import MemoryEventStore
from sim.bench import import_bench_sam
from sim.cards.base import VirtualCard
from sim.cards.card_keys import card_key, external_authenticate_cryptogram, internal_authenticate_response
from sim.nhi_reader import VirtualNhiReader
from sim.pki import bench_pki
from sim.profiles import PROFILES, make_card
from sim.virtual_hc import card_of_profile, issue_token, make_issuer, new_token_id
from sim.virtual_reader import VirtualReader
from tests.unit.virtual_nhi_link import LinkToVirtualReader
from workers.execute import Slots, execute
from workers.nhi_reader import NhiReader

TAIPEI = datetime.timezone(datetime.timedelta(hours=8))
BENCH_TIME_NS = 1_790_000_000 * 1_000_000_000
"""2026-09-21: inside the bench staff certificates' validity (2024-2044)."""
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUER = make_issuer("harness virtual card issuer")
"""The virtual health card token issuer the harness's console trusts: (key, certificate)."""


def virtual_token(
    profile: str, now: int, *, expires_in: int = 600, max_uses: int = 3, hospital_id: str = "777777777"
) -> str:
    return issue_token(
        ISSUER[0],
        token_id=new_token_id(),
        card=card_of_profile(profile),
        hospital_id=hospital_id,
        issued_at=now,
        expires_at=now + expires_in,
        max_uses=max_uses,
    )


def sam_file_bytes(
    sam_id: str = "901000000047", hospital_id: str = "777777777", key: rsa.RSAPrivateKey = _KEY
) -> bytes:
    """A cloud SAM file in our format, self-signed (the console checks the key and the CN, not the issuer)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sam_id)])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    document = {
        "format": FORMAT,
        "samId": sam_id,
        "hospitalId": hospital_id,
        "hospitalName": "測試機構",
        "hospitalShortName": "測試",
        "privateKey": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
    }
    return MAGIC + json.dumps(document, ensure_ascii=False).encode("utf-8")


@dataclass
class FakeDataCenter:
    """The DC's answers, computed in memory; `fail[name]` lists errors the next calls of `name` raise.

    Its CRL is the bench PKI's, as the DC simulator serves it.
    """

    clock: ManualClock
    session_seconds: int = 3600
    fail: dict[str, list[DcError]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _pending: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    _sessions: set[str] = field(default_factory=set)
    uses: dict[str, int] = field(default_factory=dict)
    void: set[str] = field(default_factory=set)
    transfers: dict[str, tuple[dict[str, str], int, int, bool]] = field(default_factory=dict)
    """transfer token -> (card, expires_at, max_uses, imported)"""

    def _call(self, name: str) -> None:
        self.calls.append(name)
        errors = self.fail.get(name)
        if errors:
            raise errors.pop(0)

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.wall_ns() / 1e9, TAIPEI)

    def _session(self, token: str) -> None:
        if token not in self._sessions:
            raise DcError(StatusCode.DC_SESSION_EXPIRED, "sessionExpired")

    def sam_challenge(self, sam_id: str) -> bytes:
        self._call("Sam/Challenge")
        return secrets.token_bytes(16)

    def sam_login(self, sam_id: str, nonce: bytes, signature: bytes) -> DcSession:
        self._call("Sam/Login")
        token = secrets.token_urlsafe(16)
        self._sessions.add(token)
        expires = self._now() + datetime.timedelta(seconds=self.session_seconds)
        return DcSession(token, expires.replace(microsecond=0), "777777777", "測試機構", "測試")

    def server_time(self, session: str) -> datetime.datetime:
        self._call("Time")
        self._session(session)
        return self._now()

    def hca_crls(self) -> list[bytes]:
        self._call("Crl")
        return [bench_pki().crl.public_bytes(serialization.Encoding.DER)]

    def card_challenge(self, session: str, card_number: str, card_challenge: bytes) -> CardCryptogram:
        self._call("Cards/Challenge")
        self._session(session)
        auth_id, host_challenge = secrets.token_hex(8), secrets.token_bytes(8)
        self._pending[auth_id] = (card_number, host_challenge)
        cryptogram = external_authenticate_cryptogram(card_key(card_number), card_challenge)
        return CardCryptogram(auth_id, cryptogram, host_challenge)

    def card_verify(self, session: str, auth_id: str, card_response: bytes) -> None:
        self._call("Cards/Verify")
        self._session(session)
        number, host_challenge = self._pending.pop(auth_id)
        if card_response != internal_authenticate_response(card_key(number), host_challenge):
            raise DcError(StatusCode.DC_UNDEFINED_ERROR, "authenticationFailed")

    def virtual_hc_verify(self, session: str, token_id: str, max_uses: int, expires_at: int) -> int:
        self._call("VirtualHc/Verify")
        self._session(session)
        if token_id in self.void:
            raise DcError(StatusCode.TRANSFER_DONE_OR_VOID, "virtualCardVoid")
        self.uses[token_id] = self.uses.get(token_id, 0) + 1
        if self.uses[token_id] > max_uses:
            raise DcError(StatusCode.VIRTUAL_HC_TOKEN_OVERUSED, "verificationCountExceeded")
        return self.uses[token_id]

    def virtual_hc_export(
        self, session: str, token_id: str, card: dict[str, str], expires_at: int, max_uses: int
    ) -> str:
        self._call("VirtualHc/Export")
        self._session(session)
        if token_id in self.void:
            raise DcError(StatusCode.TRANSFER_DONE_OR_VOID, "virtualCardVoid")
        self.void.add(token_id)
        transfer = f"{secrets.token_urlsafe(8)}.{secrets.token_urlsafe(16)}"
        self.transfers[transfer] = (dict(card), expires_at, max_uses, False)
        return transfer

    def virtual_hc_import(self, session: str, transfer_token: str) -> ImportedVirtualHc:
        self._call("VirtualHc/Import")
        self._session(session)
        if transfer_token not in self.transfers:
            raise DcError(StatusCode.TRANSFER_NOT_FOUND, "unknownTransfer")
        card, expires_at, max_uses, imported = self.transfers[transfer_token]
        if imported:
            raise DcError(StatusCode.TRANSFER_USED_ELSEWHERE, "transferUsed")
        self.transfers[transfer_token] = (card, expires_at, max_uses, True)
        return ImportedVirtualHc(secrets.token_urlsafe(16), card, expires_at, max_uses)

    def card_notes(self, session: str, card_number: str) -> bytes:
        self._call("RealHc/Notes")
        self._session(session)
        return f"NOTES {card_number}".encode()

    def expire_sessions(self) -> None:
        self._sessions.clear()


NHI_PORT = "/dev/ttyNHI0"
NHI_SAM_ID = "000100000047"


class Harness:
    def __init__(
        self,
        *cards: tuple[str, str],
        serial_ports: tuple[str, ...] = (),
        port_names: dict[str, str] | None = None,
    ) -> None:
        self.clock = ManualClock(wall_ns=BENCH_TIME_NS)
        self.store = MemoryEventStore()
        self.sams = CloudSamStore(None)
        trust = TrustStore.from_pem_bundle(bench_pki().trust_store_pem() + bench_pki().issuing_ca_pem())
        self.core = ConsoleCore(
            self.store,
            self.clock,
            cloud_sams=self.sams,
            hca_trust=trust,
            vhc_issuers=[ISSUER[0].public_key()],
            serial_ports=lambda: list(serial_ports),
            port_names=port_names,
        )
        self.nhi: NhiReader | None = None
        self.nhi_cards: dict[str, CardPresence | None] = {}
        self.dc = FakeDataCenter(self.clock)
        self.cards: dict[str, VirtualCard] = {}
        self.card_commands: list[tuple[str, str]] = []
        self._actions: deque[tuple[str, int, Any]] = deque()
        self.released: list[int] = []
        self.runner = FlowRunner(
            lambda flow_id, step: self._actions.append(("card", flow_id, step)),
            lambda flow_id, call: self._actions.append(("dc", flow_id, call)),
            self.released.append,
        )
        self._sessions = itertools.count(1000)
        import_bench_sam(self.core.context, sam_file_bytes())
        for session, (reader, profile) in enumerate(cards, start=1):
            self.insert(reader, profile, session)

    def insert(self, reader: str, profile: str, session: int, card: VirtualCard | None = None) -> None:
        """Put a card in a reader (a fresh one of `profile`, or `card` itself, e.g. the same card again)."""
        self.cards[reader] = card if card is not None else make_card(profile)
        data = PROFILES[profile].data
        card_type = getattr(data, "card_type", 1)
        presence = CardPresence(
            atr="3B", kind=PROFILES[profile].kind, session=session, card_number=data.card_id, card_type=card_type
        )
        self.core.worker_reported(WorkerStatus(reader=reader, backend="sim", pid=1, card=presence))

    def remove(self, reader: str) -> None:
        self.cards.pop(reader, None)
        self.core.worker_reported(WorkerStatus(reader=reader, backend="sim", pid=1, card=None))

    def start(self, flow: Flow) -> list[Outcome]:
        """Start a flow without running its steps yet (to interleave several)."""
        outcomes: list[Outcome] = []
        self.runner.start(flow, outcomes.append)
        return outcomes

    def step_once(self) -> None:
        """Carry out the oldest pending step (a card command or a DC call) and feed its result back."""
        kind, flow_id, step = self._actions.popleft()
        if kind == "card":
            self.runner.card_done(flow_id, self._run_card(step))
        else:
            self.runner.dc_done(flow_id, self._run_dc(step))

    def pump(self) -> None:
        while self._actions:
            self.step_once()

    def run(self, flow: Flow) -> Outcome:
        outcomes = self.start(flow)
        self.pump()
        assert len(outcomes) == 1, "the flow did not finish"
        return outcomes[0]

    def command(self, name: str, args: dict[str, Any] | None = None) -> Outcome:
        """One API command through the core, its flow (if any) run to the end."""
        outcome = self.core.handle(Request(id="r", command=name, args=args or {}))
        if isinstance(outcome, StartFlow):
            return self.run(outcome.flow)
        assert isinstance(outcome, Reply)
        return outcome.code, outcome.body

    def attach_nhi_reader(self, device: VirtualNhiReader, port: str = NHI_PORT) -> LinkToVirtualReader:
        """An NHI dedicated reader on `port`, its worker's back-end the real one over an in-memory line."""
        link = LinkToVirtualReader(device)
        self.nhi = NhiReader(port, link=link, monotonic=itertools.count().__next__)  # type: ignore[arg-type]  # an in-memory stand-in SerialLink
        self.nhi_cards = dict.fromkeys(self.nhi.slot_readers())
        return link

    def report_nhi(self) -> None:
        """What the NHI reader's worker does on its presence poll: identify new cards, report every slot."""
        assert self.nhi is not None
        slots = self._nhi_slots()
        while (change := self.nhi.wait_for_change(0)) is not None:
            slots.take_change(change, lambda: next(self._sessions))
        for name, presence in self.nhi_cards.items():
            self.core.worker_reported(
                WorkerStatus(reader=name, backend="nhi", pid=2, card=presence, fault=self.nhi.fault())
            )

    def _nhi_slots(self) -> Slots:
        """The NHI reader's worker's view: the device's slots and the insertions reported in them."""
        assert self.nhi is not None
        return Slots.of(port_of(next(iter(self.nhi_cards))), self.nhi, cards=self.nhi_cards)

    def _bench_slots(self, reader: str) -> Slots:
        """A bench reader's worker's view: its virtual card (if any) and the insertion the core was told of."""
        virtual = VirtualReader(reader)
        card = self.cards.get(reader)
        state = self.core.state.readers.get(reader)
        seen = state.card if state is not None and card is not None else None
        if card is not None:
            virtual.insert(card)
        presence = (
            None
            if seen is None
            else CardPresence(atr=seen.atr, kind=seen.kind, session=seen.session, card_type=seen.card_type)
        )
        return Slots.of(reader, virtual, cards={reader: presence})

    def _run_card(self, step: CardStep) -> Reply:
        """A card step through the workers' real core, as the worker serving that reader runs it."""
        self.card_commands.append((step.reader, step.command))
        nhi = self.nhi is not None and step.reader in self.nhi_cards
        slots = self._nhi_slots() if nhi else self._bench_slots(step.reader)
        return execute(Request(id="w", command=step.command, args=step.args, reader=step.reader), slots)

    def _run_dc(self, call: DcCall) -> Any:
        try:
            return call.call(self.dc)
        except DcError as error:
            return error

    def now_seconds(self) -> int:
        return self.clock.wall_ns() // 1_000_000_000

    def event_types(self) -> list[str]:
        return [stored.type for stored in self.store.events()]
