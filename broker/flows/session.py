"""The session's flows: Initial, SAM verification, elevation of cards on demand, and the calls built on them.

contract.md's rules, as code: an API needs a level; below it, the console
elevates on demand (detect the card, authenticate it with the SAM), and a
failed step answers the code of the level it could not reach, unless the DC
or the card reported something more specific. A PIN is never part of this.

Flows are generators (see `broker.flows.runner`); sub-flows are `yield from`-ed and
raise `FlowFailed` with the code to answer.
"""

from __future__ import annotations

import datetime
import functools
import secrets
from collections.abc import Callable, Generator
from typing import Any, Protocol

from broker.credentials.cloud_sam_file import login_signed_bytes
from broker.credentials.session_secrets import SessionSecrets
from broker.dc.seam import CardCryptogram, DataCenter, DcError, DcSession
from broker.domain.events import (
    CardAuthenticated,
    CardAuthenticationFailed,
    CardDetected,
    Event,
    PhysicalSamIdentified,
    SamSessionExpired,
    SamVerificationFailed,
    SamVerified,
    SessionInitialized,
)
from broker.domain.routing import reader_for
from broker.domain.state import SAM_CLOUD, SAM_PHYSICAL, ConsoleState, PhysicalSamIdentity
from broker.flows.runner import Acquire, CardStep, DcCall, Flow, Outcome, Release, Step
from contract.protocol import Reply
from contract.serial_port_names import no_device_message
from contract.status_codes import StatusCode

SAM_RESOURCE = "sam"
"""One verification of the SAM at a time: concurrent calls that need it wait for the one under way."""

_LEVEL_CODES = {
    "hc": (StatusCode.HC_LEVEL1_FAILED, StatusCode.HC_LEVEL2_FAILED),
    "hpc": (StatusCode.HPC_LEVEL1_FAILED, StatusCode.HPC_LEVEL2_FAILED),
}
_CARD_CODES_KEPT = frozenset(
    {
        StatusCode.NO_CARD,
        StatusCode.READER_IN_USE_GONE,
        StatusCode.NO_DEFAULT_READER,
        StatusCode.COMPORT_OPEN_FAILED,
        StatusCode.NHI_READER_FAILED,
    }
)
"""Card failures more specific than "level 2 failed": the card or its reader is gone."""

TAIPEI = datetime.timezone(datetime.timedelta(hours=8))
"""The NHI dedicated reader's clock tells local time in Taiwan (docs/serial-protocol.md)."""
SERIAL_OPEN_TIMEOUT = 15.0
"""Opening an NHI reader: its worker starts (about a second), opens the port and reads the SAM (up to 6 s)."""


class FlowFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message


class SessionContext(Protocol):
    """What the flows need from the broker's core."""

    @property
    def state(self) -> ConsoleState: ...

    @property
    def secrets(self) -> SessionSecrets:
        """What the session holds that never reaches the log: the SAM and its DC token, the cards' holders."""
        ...

    def emit(self, event: Event) -> None: ...

    def now(self) -> datetime.datetime: ...

    def open_device(self, device: str) -> int | None:
        """Open a device for a session: its SAM type, or None if it cannot be opened."""
        ...

    def device_candidates(self) -> list[str]:
        """`Initial` without a name: the devices to try, in contract.md's order."""
        ...

    def serial_port(self, device: str) -> str | None:
        """The serial port (an NHI dedicated reader's) `device` names, by its one name whatever alias was used
        (contract/serial_port_names.py); None if it names none (a cloud SAM, or nothing that is a port)."""
        ...

    def want_serial_device(self, port: str) -> None:
        """Start the port's worker (if it is not running), so `Initial` can try the reader on it."""
        ...

    def drop_serial_device(self, port: str) -> None:
        """The port did not give a working reader: its worker may stop (unless the session uses it)."""
        ...

    def device_fault(self) -> int | None:
        """Why the session's NHI reader cannot be used now (1201, 1202), as its worker last reported; None."""
        ...

    def staff_certificate_problem(self, certificate_der: bytes) -> Generator[Step, Any, int | None]:
        """1422/1423/1424 for a staff card's certificate, None if it is good (may fetch the CRL from the DC)."""
        ...


def run_guarded(body: Callable[[], Generator[Step, Any, Outcome]]) -> Flow:
    """A top-level flow: a `FlowFailed` anywhere in it becomes the answer."""
    try:
        return (yield from body())
    except FlowFailed as failure:
        return failure.code, {"message": failure.message}


def _dc_failure_code(error: DcError, refused: StatusCode) -> int:
    """The DC's own codes are kept (rule 2); "your proof is wrong" and "unknown SAM" become the level's code."""
    if error.reason in ("authenticationFailed", "unknownSam"):
        return int(refused)
    return int(error.code)


# --- the SAM ---------------------------------------------------------------------


def _session_is(ctx: SessionContext, generation: int) -> None:
    if ctx.secrets.sam.generation != generation or not ctx.state.initialized:
        raise FlowFailed(StatusCode.NOT_INITIALIZED, "the session ended while the call was running")


def login_sam(ctx: SessionContext) -> Generator[Step, Any, None]:
    """Verify the SAM with the DC (contract, suspension, revocation); the outcome is logged either way."""
    sam_file = ctx.secrets.sam.file
    if sam_file is None:
        raise FlowFailed(StatusCode.SAM_LEVEL1_FAILED, "no SAM is open")
    generation = ctx.secrets.sam.generation
    sam_id = sam_file.sam_id
    try:
        nonce: bytes = yield DcCall(lambda dc: dc.sam_challenge(sam_id), "Sam/Challenge")
        _session_is(ctx, generation)
        signature = yield from sam_sign(ctx, login_signed_bytes(sam_id, nonce))
        _session_is(ctx, generation)
        session: DcSession = yield DcCall(lambda dc: dc.sam_login(sam_id, nonce, signature), "Sam/Login")
    except DcError as error:
        _session_is(ctx, generation)
        code = _dc_failure_code(error, StatusCode.SAM_LEVEL2_FAILED)
        ctx.emit(SamVerificationFailed(code=code, reason=error.reason))
        raise FlowFailed(code, f"SAM verification failed: {error.reason}") from None
    _session_is(ctx, generation)
    ctx.secrets.sam.token = session.token
    ctx.secrets.sam.token_expires = session.expires_at
    ctx.emit(SamVerified(expires_at=session.expires_at.isoformat()))


def sam_sign(ctx: SessionContext, data: bytes) -> Generator[Step, Any, bytes]:
    """The SAM's RSA signature over `data`: a cloud SAM's key is in the broker's memory; a physical SAM signs
    inside its NHI reader, so its key never leaves the reader."""
    device = ctx.secrets.sam.file
    if device is None:
        raise FlowFailed(StatusCode.SAM_LEVEL1_FAILED, "no SAM is open")
    if not isinstance(device, PhysicalSamIdentity):
        return device.sign(data)
    reply: Reply = yield CardStep(device.port, "SignWithReaderSam", {"data": data})
    signature = reply.body.get("signature")
    if reply.code != 0 or not isinstance(signature, bytes):
        raise FlowFailed(
            reply.code or StatusCode.SAM_LEVEL2_FAILED,
            f"the reader's SAM did not sign: {reply.body.get('message', 'no signature')}",
        )
    return signature


def verify_sam(ctx: SessionContext) -> Generator[Step, Any, None]:
    """`POST /api/sam/v1/Verification`: always asks the DC, even if the SAM is verified already."""
    if not ctx.state.initialized:
        raise FlowFailed(StatusCode.NOT_INITIALIZED, "not initialized")
    yield Acquire(SAM_RESOURCE)
    yield from login_sam(ctx)
    yield Release(SAM_RESOURCE)


def ensure_sam_verified(ctx: SessionContext) -> Generator[Step, Any, None]:
    """SAM level 2 on demand (rule 4): a cloud SAM is verified automatically, a physical one never."""
    if not ctx.state.initialized:
        raise FlowFailed(StatusCode.NOT_INITIALIZED, "not initialized")
    if ctx.state.sam.status >= 2 and ctx.secrets.sam.token_valid(ctx.now()):
        return
    yield Acquire(SAM_RESOURCE)
    if not ctx.state.initialized:
        raise FlowFailed(StatusCode.NOT_INITIALIZED, "not initialized")
    if not (ctx.state.sam.status >= 2 and ctx.secrets.sam.token_valid(ctx.now())):
        if ctx.state.sam.type != SAM_CLOUD:
            raise FlowFailed(StatusCode.SAM_LEVEL2_FAILED, "a physical SAM is verified only when asked")
        yield from login_sam(ctx)
    yield Release(SAM_RESOURCE)


def _with_token(call: Callable[[DataCenter, str], Any], token: str, dc: DataCenter) -> Any:
    """`call` with this attempt's DC session token (bound when the call is made, not when it runs)."""
    return call(dc, token)


def with_dc_session(
    ctx: SessionContext, call: Callable[[DataCenter, str], Any], name: str
) -> Generator[Step, Any, Any]:
    """A DC call under the SAM's session; if the DC says the session expired, log in again and ask once more.

    Asking again is safe: the DC refused the first call without running it.
    """
    for attempt in (1, 2):
        yield from ensure_sam_verified(ctx)
        token = ctx.secrets.sam.token
        assert token is not None
        try:
            return (yield DcCall(functools.partial(_with_token, call, token), name))
        except DcError as error:
            if error.code != StatusCode.DC_SESSION_EXPIRED or attempt == 2:
                raise
            ctx.secrets.sam.drop_token()
            ctx.emit(SamSessionExpired())
    raise AssertionError("unreachable")


# --- cards -----------------------------------------------------------------------


def _card_state(state: ConsoleState, kind: str) -> tuple[int, str | None, int | None]:
    card = state.hc if kind == "hc" else state.hpc
    return card.status, card.reader, card.session


def detect_card(ctx: SessionContext, kind: str) -> tuple[str, int]:
    """Level 1: the card the routing rule picks is the session's card of that kind. No card I/O needed."""
    status, reader, session = _card_state(ctx.state, kind)
    routed = reader_for(ctx.state, kind)
    if status >= 1 and reader is not None and session is not None:
        if kind != "hc" or isinstance(routed, StatusCode) or routed == reader:
            return reader, session
        # Another health card is now the one the routing rule picks (the default reader changed, say): use it.
        card = ctx.state.readers[routed].card
        assert card is not None
        ctx.emit(CardDetected(kind=kind, reader=routed, session=card.session))
        return routed, card.session
    if status >= 1:
        # A staff card's level 3 outliving its removal, or a mobile HCA: there is no card to talk to.
        raise FlowFailed(StatusCode.NO_CARD, "the card is not in a reader")
    if isinstance(routed, StatusCode):
        fault = ctx.device_fault() if ctx.state.sam.type == SAM_PHYSICAL else None
        if fault is not None:
            raise FlowFailed(
                fault,
                "the NHI reader cannot be used: "
                + ("its port cannot be opened" if fault == StatusCode.COMPORT_OPEN_FAILED else "it is not answering"),
            )
        raise FlowFailed(routed, f"no {kind} card to use")
    card = ctx.state.readers[routed].card
    assert card is not None
    ctx.emit(CardDetected(kind=kind, reader=routed, session=card.session))
    return routed, card.session


def _card_failed(ctx: SessionContext, kind: str, reader: str, session: int, code: int, message: str) -> FlowFailed:
    ctx.emit(CardAuthenticationFailed(kind=kind, reader=reader, session=session, code=code))
    return FlowFailed(code, message)


def _worker_code(reply: Reply, level_code: StatusCode) -> int:
    return reply.code if reply.code in _CARD_CODES_KEPT else int(level_code)


def ensure_card_authenticated(ctx: SessionContext, kind: str) -> Generator[Step, Any, tuple[str, int]]:
    """Level 2 on demand: card and SAM authenticate each other, the SAM's half relayed through the DC."""
    yield from ensure_sam_verified(ctx)
    reader, session = detect_card(ctx, kind)
    if _card_state(ctx.state, kind)[0] >= 2:
        return reader, session
    level2 = _LEVEL_CODES[kind][1]
    if ctx.state.sam.type == SAM_PHYSICAL:
        # The card and the reader's own SAM authenticate each other inside the reader.
        inside: Reply = yield CardStep(reader, "AuthenticateCardWithSam", {"session": session})
        if inside.code != 0:
            raise _card_failed(
                ctx,
                kind,
                reader,
                session,
                _worker_code(inside, level2),
                f"the card and the SAM did not authenticate each other: {inside.body.get('message', '')}",
            )
    else:
        yield from _authenticate_through_dc(ctx, kind, reader, session)
    if kind == "hpc":
        certificate: Reply = yield CardStep(reader, "ReadCertificate", {"session": session})
        if certificate.code != 0:
            raise _card_failed(ctx, kind, reader, session, _worker_code(certificate, level2), "no certificate")
        problem = yield from ctx.staff_certificate_problem(certificate.body["certificate"])
        if problem is not None:
            raise _card_failed(ctx, kind, reader, session, problem, "the card's certificate is not acceptable")
    if _card_state(ctx.state, kind)[1:] != (reader, session):
        raise FlowFailed(StatusCode.NO_CARD, "the card was removed during authentication")
    ctx.emit(CardAuthenticated(kind=kind, reader=reader, session=session))
    return reader, session


def _authenticate_through_dc(ctx: SessionContext, kind: str, reader: str, session: int) -> Generator[Step, Any, None]:
    """A cloud SAM's half of the mutual authentication is computed at the DC: relay it."""
    level2 = _LEVEL_CODES[kind][1]
    begin: Reply = yield CardStep(reader, "BeginCardAuthentication", {"kind": kind, "session": session})
    if begin.code != 0:
        raise _card_failed(
            ctx, kind, reader, session, _worker_code(begin, level2), "the card did not start authentication"
        )
    card_number, card_challenge = begin.body["cardNumber"], begin.body["cardChallenge"]
    try:
        answer: CardCryptogram = yield from with_dc_session(
            ctx, lambda dc, token: dc.card_challenge(token, card_number, card_challenge), "Cards/Challenge"
        )
    except DcError as error:
        raise _card_failed(ctx, kind, reader, session, _dc_failure_code(error, level2), f"DC: {error.reason}") from None
    finish: Reply = yield CardStep(
        reader,
        "FinishCardAuthentication",
        {"kind": kind, "session": session, "cryptogram": answer.cryptogram, "hostChallenge": answer.host_challenge},
    )
    if finish.code != 0:
        raise _card_failed(ctx, kind, reader, session, _worker_code(finish, level2), "the card refused the SAM")
    response = finish.body["response"]
    try:
        yield from with_dc_session(
            ctx, lambda dc, token: dc.card_verify(token, answer.auth_id, response), "Cards/Verify"
        )
    except DcError as error:
        raise _card_failed(ctx, kind, reader, session, _dc_failure_code(error, level2), f"DC: {error.reason}") from None


# --- the API's flows ---------------------------------------------------------------


def initial(ctx: SessionContext, name: str | None) -> Flow:
    """`POST /api/common/v1/Initial`: open the named device or the first that works; verify a cloud SAM.

    A serial port is an NHI dedicated reader: its worker is started and reads the reader's SAM. Its failure
    (1201 the port cannot be opened, 1202 the reader does not answer, 1300 no SAM) is the answer when the
    port was named; without a name the next device is tried, and none working is 1002. A name that is neither
    a cloud SAM nor a serial port is 1002 with the same message whatever the file system holds there (a Windows
    port name no port was given gets how to give it one instead). The session's `name` is the port's one name
    (its key: a Windows name such as `COM3` if it has one), not the alias the caller used.
    """

    def body() -> Generator[Step, Any, Outcome]:
        if ctx.state.initialized:
            return int(StatusCode.ALREADY_INITIALIZED), {"message": "already initialized"}
        candidates = [name] if name is not None else ctx.device_candidates()
        failure: Outcome = (int(StatusCode.NO_DEVICE), {"message": no_device_message(name)})
        physical: PhysicalSamIdentity | None = None
        tried: set[str] = set()
        for candidate in candidates:
            port = ctx.serial_port(candidate)
            device = port if port is not None else candidate
            if device in tried:  # the last device (an alias in an older log) and the listing: one port, once
                continue
            tried.add(device)
            if port is not None:
                opened = yield from _open_nhi_reader(ctx, port)
                if isinstance(opened, PhysicalSamIdentity):
                    physical, sam_type = opened, SAM_PHYSICAL
                    break
                if name is not None:
                    failure = opened
                continue
            opened_type = ctx.open_device(device)
            if opened_type is not None:
                sam_type = opened_type
                break
        else:
            return failure
        if ctx.state.initialized:  # another Initial won while the reader was being opened
            if physical is not None:
                ctx.drop_serial_device(device)
            return int(StatusCode.ALREADY_INITIALIZED), {"message": "already initialized"}
        in_use = device if physical is not None else ctx.state.default_reader
        ctx.emit(SessionInitialized(device=device, sam_type=sam_type, reader=in_use))
        if physical is not None:
            ctx.secrets.sam.open(physical)
            ctx.emit(
                PhysicalSamIdentified(
                    port=physical.port,
                    sam_id=physical.sam_id,
                    hospital_id=physical.hospital_id,
                    hospital_name=physical.hospital_name,
                    hospital_short_name=physical.hospital_short_name,
                )
            )
            ctx.drop_serial_device(device)  # the session's device keeps its worker from now on
        for kind in ("hpc", "hc"):  # the health card last: its reader is the one in use
            if reader_for(ctx.state, kind) in ctx.state.readers:
                detect_card(ctx, kind)
        if sam_type == SAM_CLOUD:
            try:
                yield from ensure_sam_verified(ctx)
            except FlowFailed:
                pass  # logged as SamVerificationFailed; the SAM stays at 1 and is verified on demand later
        return int(StatusCode.OK), {}

    return run_guarded(body)


def _open_nhi_reader(ctx: SessionContext, port: str) -> Generator[Step, Any, PhysicalSamIdentity | Outcome]:
    """Start the port's worker and read its reader's SAM; the failure's outcome if that did not work."""
    ctx.want_serial_device(port)
    reply: Reply = yield CardStep(port, "ReadSamInfo", {}, timeout=SERIAL_OPEN_TIMEOUT)
    if reply.code != 0:
        ctx.drop_serial_device(port)
        code = reply.code if reply.code != StatusCode.PCSC_OTHER_ERROR else int(StatusCode.NHI_READER_FAILED)
        return code, {"message": f"the NHI reader on {port}: {reply.body.get('message', 'no answer')}"}
    body = reply.body
    return PhysicalSamIdentity(
        port=port,
        sam_id=body["samId"],
        hospital_id=body["hospitalId"],
        hospital_name=body["hospitalName"],
        hospital_short_name=body["hospitalShortName"],
    )


def sam_verification(ctx: SessionContext) -> Flow:
    def body() -> Generator[Step, Any, Outcome]:
        yield from verify_sam(ctx)
        return int(StatusCode.OK), {}

    return run_guarded(body)


def automatic_verification(ctx: SessionContext) -> Flow:
    """The cloud SAM's DC session expired by the clock: verify again with no one asking."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        return int(StatusCode.OK), {}

    return run_guarded(body)


def signature_input(client_random: bytes, *fields: str) -> bytes:
    """The bytes every signature covers (docs/decisions.md): the random first, then the request's and the
    holders' data, ASCII, in the order the spec lists the answer's fields."""
    return client_random + "".join(fields).encode("ascii")


def sign_as_sam(ctx: SessionContext, service_type: str, *fields: str) -> Generator[Step, Any, dict[str, Any]]:
    """The SAM's RSA-2048 signature over a fresh client random, its ids, the service type and `fields`:
    the spec's common answer fields (signature, clientRandom, samId, hospitalId, serviceType)."""
    sam_file = ctx.secrets.sam.file
    if sam_file is None:
        raise FlowFailed(StatusCode.SAM_LEVEL1_FAILED, "no SAM is open")
    client_random = secrets.token_bytes(8)
    signed = signature_input(client_random, sam_file.sam_id, sam_file.hospital_id, service_type, *fields)
    signature = yield from sam_sign(ctx, signed)
    return {
        "signature": signature,
        "clientRandom": client_random,
        "samId": sam_file.sam_id,
        "hospitalId": sam_file.hospital_id,
        "serviceType": service_type,
    }


def sam_signature(ctx: SessionContext, service_type: str) -> Flow:
    """`POST /api/sam/v1/Signature`: the SAM's RSA-2048 signature over clientRandom, samId, hospitalId, serviceType."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        return int(StatusCode.OK), (yield from sign_as_sam(ctx, service_type))

    return run_guarded(body)


def server_date_time(ctx: SessionContext) -> Flow:
    """From the DC for a cloud SAM; from the reader's own clock for an NHI dedicated reader (the spec's words)."""

    def body() -> Generator[Step, Any, Outcome]:
        physical = ctx.secrets.sam.file
        if isinstance(physical, PhysicalSamIdentity):
            yield from ensure_sam_verified(ctx)
            reply: Reply = yield CardStep(physical.port, "ReadReaderClock", {})
            if reply.code != 0:
                return reply.code, {"message": f"the reader's clock: {reply.body.get('message', 'no answer')}"}
            try:
                read = datetime.datetime.strptime(str(reply.body.get("readerTime")), "%Y%m%d%H%M%S")
            except ValueError:
                return int(StatusCode.NHI_READER_FAILED), {"message": "the reader's clock answer is malformed"}
            return int(StatusCode.OK), {"serverDateTime": roc_date_time(read.replace(tzinfo=TAIPEI))}
        moment: datetime.datetime = yield from with_dc_session(ctx, lambda dc, token: dc.server_time(token), "Time")
        return int(StatusCode.OK), {"serverDateTime": roc_date_time(moment)}

    def guarded() -> Generator[Step, Any, Outcome]:
        try:
            return (yield from body())
        except DcError as error:
            return int(error.code), {"message": f"DC: {error.reason}"}

    return run_guarded(guarded)


def roc_date_time(moment: datetime.datetime) -> str:
    """`yyyMMddHHmmss` in the moment's own zone, the year counted from 1912 (ROC 1)."""
    roc_year = moment.year - 1911
    if not 1 <= roc_year <= 999:
        raise ValueError("the date is outside the ROC calendar's three digits")
    return f"{roc_year:03d}{moment:%m%d%H%M%S}"
