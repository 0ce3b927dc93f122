"""The health card's flows (HC): basic data, PIN, signatures, level 3, virtual cards and their transfer, notes.

A health card is either physical (a card in a reader, reached through its
worker) or virtual (a token verified with the DC, whose data the broker keeps
in memory while it is the session's health card). The PIN functions are the
physical card's only (1526 on a virtual one), the transfer functions the
virtual card's only (1527 on a physical one). PINs, tokens and transfer tokens
are passed on once and never logged, stored or recorded.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from broker.credentials.session_secrets import VirtualHolder
from broker.credentials.virtual_hc_token import TokenRefused, VirtualHcToken, card_data, verify_token
from broker.dc.seam import DcError, ImportedVirtualHc
from broker.domain.events import (
    CardDataRead,
    CardLoggedOut,
    HcHpcAuthenticated,
    HcNotesUpdated,
    HcPinRejected,
    HcPinRemoved,
    HcPinSet,
    HcPinStateRead,
    HcPinVerified,
    VirtualHcExpired,
    VirtualHcExported,
    VirtualHcRejected,
    VirtualHcVerified,
)
from broker.domain.state import SAM_PHYSICAL, VIRTUAL_HC
from broker.flows.runner import CardStep, Flow, Outcome, Step
from broker.flows.session import (
    FlowFailed,
    ensure_card_authenticated,
    ensure_sam_verified,
    run_guarded,
    sign_as_sam,
    with_dc_session,
)
from broker.flows.staff import StaffContext, current_staff_holder
from contract.deadlines import KEYPAD_SECONDS, KEYPAD_STEP_SECONDS
from contract.protocol import Reply
from contract.status_codes import StatusCode

HC_BASIC_FIELDS = ("cardId", "name", "idNo", "birthday", "sex", "dateIssue", "identityStatus")


class HealthCardContext(StaffContext, Protocol):
    @property
    def vhc_issuers(self) -> Sequence[rsa.RSAPublicKey]: ...

    def now_seconds(self) -> int: ...

    def card_ref(self, card_number: str) -> str: ...

    def iso_time(self, epoch_seconds: int) -> str: ...


# --- which health card ----------------------------------------------------------------------


def _virtual_in_use(ctx: HealthCardContext) -> VirtualHolder | None:
    """The virtual card, if it is the session's health card; 1521 once if it expired in use."""
    if ctx.secrets.virtual_expired:
        ctx.secrets.virtual_expired = False
        raise FlowFailed(StatusCode.VIRTUAL_HC_TOKEN_TIMED_OUT, "the virtual health card's token expired")
    if ctx.state.hc.type != VIRTUAL_HC or ctx.state.hc.status < 2:
        return None
    holder = ctx.secrets.virtual_holder
    if holder is None:  # the broker restarted: the data was only in its memory
        raise FlowFailed(StatusCode.HC_LEVEL2_FAILED, "verify the virtual health card again")
    if ctx.now_seconds() >= holder.expires_at:
        expire_virtual_card(ctx)
        ctx.secrets.virtual_expired = False
        raise FlowFailed(StatusCode.VIRTUAL_HC_TOKEN_TIMED_OUT, "the virtual health card's token expired")
    return holder


def expire_virtual_card(ctx: HealthCardContext) -> None:
    ctx.secrets.virtual_holder = None
    ctx.secrets.virtual_expired = True
    ctx.emit(VirtualHcExpired())


def _physical_only(ctx: HealthCardContext, code: StatusCode) -> None:
    if _virtual_in_use(ctx) is not None:
        raise FlowFailed(code, "a virtual health card cannot do this")


def _health_card_data(ctx: HealthCardContext) -> Generator[Step, Any, tuple[dict[str, Any], tuple[str, int] | None]]:
    """Level 2 on demand and the card's data: the virtual card's from memory, the physical card's read."""
    yield from ensure_sam_verified(ctx)
    holder = _virtual_in_use(ctx)
    if holder is not None:
        return dict(holder.card), None
    reader, session = yield from ensure_card_authenticated(ctx, "hc")
    reply: Reply = yield CardStep(reader, "ReadHcBasic", {"session": session})
    if reply.code != 0:
        raise FlowFailed(reply.code, str(reply.body.get("message", "the card could not be read")))
    ctx.emit(CardDataRead(kind="hc", reader=reader, session=session))
    return dict(reply.body), (reader, session)


# --- basic data and logout ---------------------------------------------------------------------


def read_hc_basic(ctx: HealthCardContext) -> Flow:
    """`GET /api/hc/v1/Basic`: SAM 2, HC 2 on demand, then the data block and identity status (or the virtual
    card's)."""

    def body() -> Generator[Step, Any, Outcome]:
        data, _ = yield from _health_card_data(ctx)
        return int(StatusCode.OK), {name: data.get(name) for name in HC_BASIC_FIELDS}

    return run_guarded(body)


def logout_hc(ctx: HealthCardContext) -> Outcome:
    ctx.secrets.virtual_holder = None
    ctx.secrets.virtual_expired = False
    ctx.emit(CardLoggedOut(kind="hc"))
    return int(StatusCode.OK), {}


# --- PIN ------------------------------------------------------------------------------------------


_ON_KEYPAD = {"VerifyHcPin": "VerifyHcPinOnKeypad", "SetHcPin": "SetHcPinOnKeypad"}


def _pin_step(
    ctx: HealthCardContext, command: str, args: dict[str, Any]
) -> Generator[Step, Any, tuple[str, int, Reply]]:
    yield from ensure_sam_verified(ctx)
    _physical_only(ctx, StatusCode.VIRTUAL_HC_NO_PIN_FUNCTIONS)
    reader, session = yield from ensure_card_authenticated(ctx, "hc")
    if ctx.state.sam.type == SAM_PHYSICAL and command in _ON_KEYPAD:
        # The holder types the PIN on the NHI reader's keypad; the body's PIN (the spec says "000000") is not
        # used, and the PIN typed goes from the keypad to the card without passing through the console.
        step = CardStep(
            reader, _ON_KEYPAD[command], {"session": session, "seconds": KEYPAD_SECONDS}, timeout=KEYPAD_STEP_SECONDS
        )
    else:
        step = CardStep(reader, command, {"session": session, **args})
    reply: Reply = yield step
    if reply.code != 0:
        raise FlowFailed(reply.code, str(reply.body.get("message", "the card refused")))
    return reader, session, reply


def hc_has_pin(ctx: HealthCardContext) -> Flow:
    def body() -> Generator[Step, Any, Outcome]:
        reader, session, reply = yield from _pin_step(ctx, "ReadHcPinState", {})
        has_pin = bool(reply.body["hasPin"])
        ctx.emit(HcPinStateRead(reader=reader, session=session, has_pin=has_pin, verified=reply.body["verified"]))
        return int(StatusCode.OK), {"hasPin": has_pin}

    return run_guarded(body)


def verify_hc_pin(ctx: HealthCardContext, pin: str) -> Flow:
    """One VERIFY at most: none when the card has no PIN (1510), is verified (1513) or blocked (1514)."""

    def body() -> Generator[Step, Any, Outcome]:
        reader, session, reply = yield from _pin_step(ctx, "VerifyHcPin", {"pin": pin})
        outcome = reply.body["outcome"]
        if outcome == "accepted":
            ctx.emit(HcPinVerified(reader=reader, session=session))
            return int(StatusCode.OK), {}
        if outcome == "noPin":
            ctx.emit(HcPinStateRead(reader=reader, session=session, has_pin=False, verified=None))
            return int(StatusCode.HC_HAS_NO_PIN), {"message": "the card has no PIN"}
        if outcome == "alreadyVerified":
            ctx.emit(HcPinStateRead(reader=reader, session=session, has_pin=True, verified=True))
            return int(StatusCode.HC_PIN_ALREADY_VERIFIED), {"message": "the PIN is verified already"}
        tries = reply.body.get("triesLeft")
        left = int(tries) if isinstance(tries, int) else 0
        ctx.emit(HcPinRejected(reader=reader, session=session, tries_left=left, blocked=outcome == "blocked"))
        if outcome == "blocked":
            return int(StatusCode.HC_PIN_FAILED), {"message": "the PIN is blocked"}
        return int(StatusCode.HC_PIN_FAILED), {"message": f"wrong PIN: {left} tries left"}

    return run_guarded(body)


def set_hc_pin(ctx: HealthCardContext, new_pin: str) -> Flow:
    """`PUT /api/hc/v1/Pin`: a new PIN needs the old one verified (1511); a first PIN needs nothing."""

    def body() -> Generator[Step, Any, Outcome]:
        reader, session, reply = yield from _pin_step(ctx, "SetHcPin", {"newPin": new_pin})
        outcome = reply.body["outcome"]
        if outcome == "accepted":
            ctx.emit(HcPinSet(reader=reader, session=session))
            return int(StatusCode.OK), {}
        if outcome in ("notVerified", "blocked"):
            return int(StatusCode.HC_PIN_NOT_VERIFIED), {"message": "verify the PIN first"}
        return int(StatusCode.HC_PIN_NOT_VERIFIED), {"message": "the card refused the new PIN"}

    return run_guarded(body)


def remove_hc_pin(ctx: HealthCardContext) -> Flow:
    def body() -> Generator[Step, Any, Outcome]:
        reader, session, reply = yield from _pin_step(ctx, "RemoveHcPin", {})
        outcome = reply.body["outcome"]
        if outcome == "accepted":
            ctx.emit(HcPinRemoved(reader=reader, session=session))
            return int(StatusCode.OK), {}
        if outcome == "noPin":
            return int(StatusCode.HC_HAS_NO_PIN), {"message": "the card has no PIN"}
        if outcome == "notVerified":
            return int(StatusCode.HC_PIN_NOT_VERIFIED), {"message": "verify the PIN first"}
        return int(StatusCode.HC_PIN_DISABLE_FAILED), {"message": "the card did not remove its PIN"}

    return run_guarded(body)


# --- signatures ---------------------------------------------------------------------------------------


def sign_with_hc(ctx: HealthCardContext, service_type: str) -> Flow:
    """`POST /api/hc/v1/Signature/Hc`: HC level 2; the SAM signs for the card it authenticated."""

    def body() -> Generator[Step, Any, Outcome]:
        data, _ = yield from _health_card_data(ctx)
        signed = yield from sign_as_sam(ctx, service_type, data["cardId"], data["idNo"])
        return int(StatusCode.OK), {**signed, "hcId": data["cardId"], "hcIdNo": data["idNo"]}

    return run_guarded(body)


def sign_with_hpc_and_hc(ctx: HealthCardContext, service_type: str) -> Flow:
    """`POST /api/hc/v1/Signature/HpcHc`: HC level 3, which needs the staff card at level 3 (1502 otherwise)."""

    def body() -> Generator[Step, Any, Outcome]:
        data, _ = yield from _health_card_data(ctx)
        if ctx.state.hpc.status < 3:
            raise FlowFailed(StatusCode.HC_LEVEL3_FAILED, "the staff card is not at level 3: verify its PIN first")
        staff = yield from current_staff_holder(ctx, StatusCode.HC_LEVEL3_FAILED)
        if ctx.state.hc.status < 3:
            ctx.emit(HcHpcAuthenticated())
        hpc_id, hpc_id_no = staff.data["cardId"], staff.data["idNo"]
        signed = yield from sign_as_sam(ctx, service_type, hpc_id, hpc_id_no, data["cardId"], data["idNo"])
        return int(StatusCode.OK), {
            **signed,
            "hpcId": hpc_id,
            "hpcIdNo": hpc_id_no,
            "hcId": data["cardId"],
            "hcIdNo": data["idNo"],
        }

    return run_guarded(body)


# --- virtual health cards -----------------------------------------------------------------------------


def _token(ctx: HealthCardContext, token: str) -> VirtualHcToken:
    try:
        return verify_token(token, issuers=ctx.vhc_issuers, now=ctx.now_seconds())
    except TokenRefused as refused:
        ctx.emit(VirtualHcRejected(code=int(refused.code)))
        raise FlowFailed(refused.code, str(refused)) from None


def _dc_refusal(ctx: HealthCardContext, error: DcError) -> FlowFailed:
    if int(error.code) in (1521, 1524, 1525, 1528, 1529, 1530, 1531):
        ctx.emit(VirtualHcRejected(code=int(error.code)))
    return FlowFailed(error.code, f"DC: {error.reason}")


def _take_virtual_card(ctx: HealthCardContext, holder: VirtualHolder, via: str) -> None:
    ctx.secrets.virtual_holder = holder
    ctx.secrets.virtual_expired = False
    ctx.emit(
        VirtualHcVerified(
            card_ref=ctx.card_ref(str(holder.card["cardId"])), expires_at=ctx.iso_time(holder.expires_at), via=via
        )
    )


def verify_virtual_hc(ctx: HealthCardContext, token: str) -> Flow:
    """`POST /api/hc/v1/Verification/VirtualHc`: the token checked here, its use counted at the DC (1525)."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        parsed = _token(ctx, token)
        try:
            yield from with_dc_session(
                ctx,
                lambda dc, session: dc.virtual_hc_verify(session, parsed.token_id, parsed.max_uses, parsed.expires_at),
                "VirtualHc/Verify",
            )
        except DcError as error:
            raise _dc_refusal(ctx, error) from None
        _take_virtual_card(
            ctx, VirtualHolder(parsed.token_id, card_data(parsed), parsed.expires_at, parsed.max_uses), "token"
        )
        return int(StatusCode.OK), {}

    return run_guarded(body)


def read_virtual_hc_basic(ctx: HealthCardContext, token: str) -> Flow:
    """`POST /api/hc/v1/VirtualHc/ReadBasic`: the token's data; nothing changes (contract.md rule 8)."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        try:
            parsed = verify_token(token, issuers=ctx.vhc_issuers, now=ctx.now_seconds())
        except TokenRefused as refused:
            raise FlowFailed(refused.code, str(refused)) from None
        data = card_data(parsed)
        return int(StatusCode.OK), {name: data.get(name) for name in HC_BASIC_FIELDS}

    return run_guarded(body)


def export_virtual_hc(ctx: HealthCardContext) -> Flow:
    """`POST /api/hc/v1/VirtualHc/Export`: HC 2 -> 0, a transfer token held at the DC (1527 on a physical card)."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        holder = _virtual_in_use(ctx)
        if holder is None:
            raise FlowFailed(StatusCode.VIRTUAL_HC_ONLY, "only a virtual health card can be exported")
        card = {
            name: str(holder.card[name]) for name in ("cardId", "name", "idNo", "birthday", "sex", "identityStatus")
        }
        try:
            transfer: str = yield from with_dc_session(
                ctx,
                lambda dc, session: dc.virtual_hc_export(
                    session, holder.token_id, card, holder.expires_at, holder.max_uses
                ),
                "VirtualHc/Export",
            )
        except DcError as error:
            raise _dc_refusal(ctx, error) from None
        ctx.secrets.virtual_holder = None
        ctx.emit(VirtualHcExported())
        return int(StatusCode.OK), {"transferToken": transfer}

    return run_guarded(body)


def import_virtual_hc(ctx: HealthCardContext, transfer_token: str) -> Flow:
    """`POST /api/hc/v1/VirtualHc/Import`: the DC hands over the card (1528-1531 when it will not)."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        try:
            imported: ImportedVirtualHc = yield from with_dc_session(
                ctx, lambda dc, session: dc.virtual_hc_import(session, transfer_token), "VirtualHc/Import"
            )
        except DcError as error:
            raise _dc_refusal(ctx, error) from None
        card = {**imported.card, "dateIssue": None}
        _take_virtual_card(
            ctx, VirtualHolder(imported.token_id, card, imported.expires_at, imported.max_uses), "transfer"
        )
        return int(StatusCode.OK), {}

    return run_guarded(body)


# --- the physical card's notes --------------------------------------------------------------------------


def update_real_hc(ctx: HealthCardContext) -> Flow:
    """`POST /api/hc/v1/RealHc/Update`: the DC's notes written onto the card, then the card logged out."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        _physical_only(ctx, StatusCode.PHYSICAL_HC_ONLY)
        data, card = yield from _health_card_data(ctx)
        assert card is not None
        reader, session = card
        try:
            notes: bytes = yield from with_dc_session(
                ctx, lambda dc, dc_session: dc.card_notes(dc_session, str(data["cardId"])), "RealHc/Notes"
            )
        except DcError as error:
            raise FlowFailed(error.code, f"DC: {error.reason}") from None
        reply: Reply = yield CardStep(reader, "UpdateHcNotes", {"session": session, "notes": notes})
        if reply.code != 0:
            raise FlowFailed(
                reply.code if reply.code in (1101, 1102) else StatusCode.HC_LEVEL2_FAILED,
                str(reply.body.get("message", "the card refused the update")),
            )
        ctx.emit(HcNotesUpdated(reader=reader, session=session))
        return int(StatusCode.OK), {}

    return run_guarded(body)
