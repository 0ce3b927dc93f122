"""The session's flows: Initial, SAM verification, elevation of cards on demand, and the calls built on them.

contract.md's rules, as code: an API needs a level; below it, the console
elevates on demand (detect the card, authenticate it with the SAM), and a
failed step answers the code of the level it could not reach, unless the DC
or the card reported something more specific. A PIN is never part of this.

Flows are generators (see `broker.flows`); sub-flows are `yield from`-ed and
raise `FlowFailed` with the code to answer.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any, Callable, Generator, Protocol

from broker.datacenter import CardCryptogram, DataCenter, DcError, DcSession
from broker.events import (
    CardAuthenticated,
    CardAuthenticationFailed,
    CardDetected,
    Event,
    SamSessionExpired,
    SamVerificationFailed,
    SamVerified,
    SessionInitialized,
)
from broker.flows import Acquire, CardStep, DcCall, Flow, Outcome, Release, Step
from broker.protocol import Reply
from broker.routing import reader_for
from broker.sam_session import SamSession
from broker.state import SAM_CLOUD, ConsoleState
from broker.status_codes import StatusCode

SAM_RESOURCE = "sam"
"""One verification of the SAM at a time: concurrent calls that need it wait for the one under way."""

_LEVEL_CODES = {
    "hc": (StatusCode.HC_LEVEL1_FAILED, StatusCode.HC_LEVEL2_FAILED),
    "hpc": (StatusCode.HPC_LEVEL1_FAILED, StatusCode.HPC_LEVEL2_FAILED),
}
_CARD_CODES_KEPT = frozenset({StatusCode.NO_CARD, StatusCode.READER_IN_USE_GONE, StatusCode.NO_DEFAULT_READER})
"""Card failures more specific than "level 2 failed": the card or its reader is gone."""


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
    def sam(self) -> SamSession: ...

    def emit(self, event: Event) -> None: ...

    def now(self) -> datetime.datetime: ...

    def open_device(self, device: str) -> int | None:
        """Open a device for a session: its SAM type, or None if it cannot be opened."""
        ...

    def device_candidates(self) -> list[str]:
        """`Initial` without a name: the devices to try, in contract.md's order."""
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
    if ctx.sam.generation != generation or not ctx.state.initialized:
        raise FlowFailed(StatusCode.NOT_INITIALIZED, "the session ended while the call was running")


def login_sam(ctx: SessionContext) -> Generator[Step, Any, None]:
    """Verify the SAM with the DC (contract, suspension, revocation); the outcome is logged either way."""
    sam_file = ctx.sam.file
    if sam_file is None:
        raise FlowFailed(StatusCode.SAM_LEVEL1_FAILED, "no SAM is open")
    generation = ctx.sam.generation
    sam_id = sam_file.sam_id
    try:
        nonce: bytes = yield DcCall(lambda dc: dc.sam_challenge(sam_id), "Sam/Challenge")
        _session_is(ctx, generation)
        signature = sam_file.login_signature(nonce)
        session: DcSession = yield DcCall(lambda dc: dc.sam_login(sam_id, nonce, signature), "Sam/Login")
    except DcError as error:
        _session_is(ctx, generation)
        code = _dc_failure_code(error, StatusCode.SAM_LEVEL2_FAILED)
        ctx.emit(SamVerificationFailed(code=code, reason=error.reason))
        raise FlowFailed(code, f"SAM verification failed: {error.reason}") from None
    _session_is(ctx, generation)
    ctx.sam.token = session.token
    ctx.sam.token_expires = session.expires_at
    ctx.emit(SamVerified(expires_at=session.expires_at.isoformat()))


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
    if ctx.state.sam.status >= 2 and ctx.sam.token_valid(ctx.now()):
        return
    yield Acquire(SAM_RESOURCE)
    if not ctx.state.initialized:
        raise FlowFailed(StatusCode.NOT_INITIALIZED, "not initialized")
    if not (ctx.state.sam.status >= 2 and ctx.sam.token_valid(ctx.now())):
        if ctx.state.sam.type != SAM_CLOUD:
            raise FlowFailed(StatusCode.SAM_LEVEL2_FAILED, "a physical SAM is verified only when asked")
        yield from login_sam(ctx)
    yield Release(SAM_RESOURCE)


def with_dc_session(ctx: SessionContext, call: Callable[[DataCenter, str], Any], name: str) -> Generator[Step, Any, Any]:
    """A DC call under the SAM's session; if the DC says the session expired, log in again and ask once more.

    Asking again is safe: the DC refused the first call without running it.
    """
    for attempt in (1, 2):
        yield from ensure_sam_verified(ctx)
        token = ctx.sam.token
        assert token is not None
        try:
            return (yield DcCall(lambda dc: call(dc, token), name))
        except DcError as error:
            if error.code != StatusCode.DC_SESSION_EXPIRED or attempt == 2:
                raise
            ctx.sam.drop_token()
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
    begin: Reply = yield CardStep(reader, "BeginCardAuthentication", {"kind": kind, "session": session})
    if begin.code != 0:
        raise _card_failed(ctx, kind, reader, session, _worker_code(begin, level2), "the card did not start authentication")
    card_number, card_challenge = begin.body["cardNumber"], begin.body["cardChallenge"]
    try:
        answer: CardCryptogram = yield from with_dc_session(
            ctx, lambda dc, token: dc.card_challenge(token, card_number, card_challenge), "Cards/Challenge"
        )
    except DcError as error:
        raise _card_failed(ctx, kind, reader, session, _dc_failure_code(error, level2), f"DC: {error.reason}") from None
    finish: Reply = yield CardStep(
        reader, "FinishCardAuthentication",
        {"kind": kind, "session": session, "cryptogram": answer.cryptogram, "hostChallenge": answer.host_challenge},
    )
    if finish.code != 0:
        raise _card_failed(ctx, kind, reader, session, _worker_code(finish, level2), "the card refused the SAM")
    response = finish.body["response"]
    try:
        yield from with_dc_session(ctx, lambda dc, token: dc.card_verify(token, answer.auth_id, response), "Cards/Verify")
    except DcError as error:
        raise _card_failed(ctx, kind, reader, session, _dc_failure_code(error, level2), f"DC: {error.reason}") from None
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


# --- the API's flows ---------------------------------------------------------------


def initial(ctx: SessionContext, name: str | None) -> Flow:
    """`POST /api/common/v1/Initial`: open the named device or the first that works; verify a cloud SAM."""

    def body() -> Generator[Step, Any, Outcome]:
        if ctx.state.initialized:
            return int(StatusCode.ALREADY_INITIALIZED), {"message": "already initialized"}
        candidates = [name] if name is not None else ctx.device_candidates()
        for device in candidates:
            sam_type = ctx.open_device(device)
            if sam_type is not None:
                break
        else:
            return int(StatusCode.NO_DEVICE), {"message": "no such device, or none that works"}
        ctx.emit(SessionInitialized(device=device, sam_type=sam_type, reader=ctx.state.default_reader))
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


def sign_as_sam(ctx: SessionContext, service_type: str, *fields: str) -> dict[str, Any]:
    """The SAM's RSA-2048 signature over a fresh client random, its ids, the service type and `fields`:
    the spec's common answer fields (signature, clientRandom, samId, hospitalId, serviceType)."""
    sam_file = ctx.sam.file
    if sam_file is None:
        raise FlowFailed(StatusCode.SAM_LEVEL1_FAILED, "no SAM is open")
    client_random = secrets.token_bytes(8)
    signed = signature_input(client_random, sam_file.sam_id, sam_file.hospital_id, service_type, *fields)
    return {"signature": sam_file.sign(signed), "clientRandom": client_random, "samId": sam_file.sam_id,
            "hospitalId": sam_file.hospital_id, "serviceType": service_type}


def sam_signature(ctx: SessionContext, service_type: str) -> Flow:
    """`POST /api/sam/v1/Signature`: the SAM's RSA-2048 signature over clientRandom, samId, hospitalId, serviceType."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        return int(StatusCode.OK), sign_as_sam(ctx, service_type)

    return run_guarded(body)


def server_date_time(ctx: SessionContext) -> Flow:
    def body() -> Generator[Step, Any, Outcome]:
        moment: datetime.datetime = yield from with_dc_session(
            ctx, lambda dc, token: dc.server_time(token), "Time"
        )
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
