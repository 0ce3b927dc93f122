"""The staff card's flows (HCA): PIN and PUK, basic data, signature, mobile HCA login.

contract.md: a PIN is never entered automatically and a PIN verification is
never retried; every PIN or PUK command reaches the card at most once per
call, and a blocked PIN is not tried at all (the worker reads the counter
first). The PIN and PUK travel as command arguments only: no event, log line
or answer carries them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Generator
from typing import Any, Protocol

from broker.credentials.session_secrets import StaffHolder
from broker.domain.events import (
    CardDataRead,
    CardLoggedOut,
    HpcPinChanged,
    HpcPinRejected,
    HpcPinReset,
    HpcPinVerified,
    HpcPukRejected,
    MobileHcaLoggedIn,
    MobileHcaRejected,
)
from broker.flows.runner import CardStep, Flow, Outcome, Step
from broker.flows.session import (
    FlowFailed,
    SessionContext,
    detect_card,
    ensure_card_authenticated,
    ensure_sam_verified,
    run_guarded,
    signature_input,
)
from contract.commands import MobileHcaLogin
from contract.protocol import Reply
from contract.status_codes import StatusCode

MOBILE_HCA = 3


class StaffContext(SessionContext, Protocol):
    def authentication_expiry(self) -> str:
        """ISO 8601 time the staff authentication ends (8 hours from now by default)."""
        ...

    def person_ref(self, id_no: str) -> str: ...

    def mobile_login_problem(self, login: MobileHcaLogin) -> Generator[Step, Any, int | None]:
        """The code a mobile HCA login fails with, or None (may fetch the CRL from the DC)."""
        ...


def _require_card_at_level_3(ctx: StaffContext) -> tuple[str, int]:
    """The physical staff card, in its reader, with its PIN verified in this very insertion."""
    hpc = ctx.state.hpc
    if hpc.type == MOBILE_HCA:
        raise FlowFailed(StatusCode.HPC_FUNCTION_UNSUPPORTED, "a mobile HCA cannot do this")
    if hpc.status < 3:
        raise FlowFailed(StatusCode.HPC_LEVEL3_FAILED, "the staff card's PIN is not verified")
    if hpc.reader is None or hpc.session is None or hpc.pin_session != hpc.session:
        raise FlowFailed(
            StatusCode.HPC_LEVEL3_FAILED,
            "the staff card must be in its reader with its PIN verified since it was inserted",
        )
    return hpc.reader, hpc.session


def current_staff_holder(ctx: StaffContext, failure: StatusCode) -> Generator[Step, Any, StaffHolder]:
    """Whoever holds HPC level 3: known from the PIN verification, else read from the card in its reader.

    `failure` is the code when it cannot be known (the card is out and its data was not kept): the level the
    caller needed. Only for the staff card's own calls does a card that went away keep 1101/1102.
    """
    hpc = ctx.state.hpc
    holder = ctx.secrets.hpc_holder
    if holder is not None and holder.card_ref == hpc.card_ref:
        return holder
    if hpc.reader is None or hpc.session is None:
        raise FlowFailed(failure, "the staff card is not in a reader: verify it again")
    reply: Reply = yield CardStep(hpc.reader, "ReadHpcBasic", {"session": hpc.session})
    if reply.code != 0:
        if failure == StatusCode.HPC_LEVEL3_FAILED:
            raise _card_error(reply)
        raise FlowFailed(failure, "the staff card could not be read")
    ctx.emit(CardDataRead(kind="hpc", reader=hpc.reader, session=hpc.session))
    holder = StaffHolder.read_from(hpc.card_ref, reply.body)
    ctx.secrets.hpc_holder = holder
    return holder


def _card_error(reply: Reply) -> FlowFailed:
    code = (
        reply.code
        if reply.code in (StatusCode.NO_CARD, StatusCode.READER_IN_USE_GONE)
        else StatusCode.HPC_LEVEL3_FAILED
    )
    return FlowFailed(code, str(reply.body.get("message", "the staff card could not do it")))


def verify_hpc_pin(ctx: StaffContext, pin: str) -> Flow:
    """`POST /api/hpc/v1/Verification/Hpc`: level 2 on demand, then one VERIFY (none if the PIN is blocked)."""

    def body() -> Generator[Step, Any, Outcome]:
        reader, session = yield from ensure_card_authenticated(ctx, "hpc")
        reply: Reply = yield CardStep(reader, "VerifyPin", {"session": session, "pin": pin})
        if reply.code != 0:
            raise _card_error(reply)
        outcome, tries = reply.body.get("outcome"), reply.body.get("triesLeft")
        if outcome == "accepted":
            ctx.emit(HpcPinVerified(reader=reader, session=session, expires_at=ctx.authentication_expiry()))
            ctx.secrets.hpc_holder = StaffHolder.read_from(ctx.state.hpc.card_ref, reply.body)
            return int(StatusCode.OK), {}
        if outcome in ("wrong", "blocked"):
            left = int(tries) if isinstance(tries, int) else 0
            ctx.emit(HpcPinRejected(reader=reader, session=session, tries_left=left, blocked=outcome == "blocked"))
            if outcome == "blocked":
                return int(StatusCode.HPC_LEVEL3_FAILED), {
                    "message": "the PIN is blocked: unblock it with the PUK (PUT /api/hpc/v1/Pin)"
                }
            return int(StatusCode.HPC_PIN_FAILED), {"message": f"wrong PIN: {left} tries left"}
        return int(StatusCode.HPC_LEVEL3_FAILED), {"message": "the card refused the verification"}

    return run_guarded(body)


def change_hpc_pin(ctx: StaffContext, new_pin: str) -> Flow:
    """`POST /api/hpc/v1/Pin`: level 3 (never reached automatically: it takes the PIN)."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        reader, session = _require_card_at_level_3(ctx)
        reply: Reply = yield CardStep(reader, "ChangePin", {"session": session, "newPin": new_pin})
        if reply.code != 0:
            raise _card_error(reply)
        if reply.body.get("outcome") != "accepted":
            return int(StatusCode.HPC_LEVEL3_FAILED), {"message": "the card refused the new PIN"}
        ctx.emit(HpcPinChanged(reader=reader, session=session))
        return int(StatusCode.OK), {}

    return run_guarded(body)


def reset_hpc_pin(ctx: StaffContext, puk: str, new_pin: str) -> Flow:
    """`PUT /api/hpc/v1/Pin`: level 1; one RESET RETRY COUNTER. The new PIN is verified by the next call."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        if ctx.state.hpc.type == MOBILE_HCA:
            raise FlowFailed(StatusCode.HPC_FUNCTION_UNSUPPORTED, "a mobile HCA has no PIN here")
        reader, session = detect_card(ctx, "hpc")
        reply: Reply = yield CardStep(reader, "ResetPin", {"session": session, "puk": puk, "newPin": new_pin})
        if reply.code != 0:
            raise _card_error(reply)
        outcome, tries = reply.body.get("outcome"), reply.body.get("triesLeft")
        if outcome == "accepted":
            ctx.emit(HpcPinReset(reader=reader, session=session))
            return int(StatusCode.OK), {}
        if outcome in ("wrong", "blocked"):
            left = int(tries) if isinstance(tries, int) else 0
            ctx.emit(HpcPukRejected(reader=reader, session=session, tries_left=left, blocked=outcome == "blocked"))
            if outcome == "blocked":
                return int(StatusCode.HPC_PIN_FAILED), {"message": "the PUK is blocked"}
            return int(StatusCode.HPC_PIN_FAILED), {"message": f"wrong PUK: {left} tries left"}
        return int(StatusCode.HPC_LEVEL3_FAILED), {"message": "the card refused the PIN reset"}

    return run_guarded(body)


def read_hpc_basic(ctx: StaffContext) -> Flow:
    """`GET /api/hpc/v1/Basic`: level 3; from memory if the holder's data is known, else from the card."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        if ctx.state.hpc.status < 3:
            raise FlowFailed(StatusCode.HPC_LEVEL3_FAILED, "the staff card's PIN is not verified")
        holder = yield from current_staff_holder(ctx, StatusCode.HPC_LEVEL3_FAILED)
        return int(StatusCode.OK), dict(holder.data)

    return run_guarded(body)


def sign_with_hpc(ctx: StaffContext, service_type: str) -> Flow:
    """`POST /api/hpc/v1/Signature`: the staff card's own RSA-2048 signature (SHA-256, PKCS#1 v1.5)."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        reader, session = _require_card_at_level_3(ctx)
        sam_file = ctx.secrets.sam.file
        if sam_file is None:
            raise FlowFailed(StatusCode.SAM_LEVEL1_FAILED, "no SAM is open")
        holder = yield from current_staff_holder(ctx, StatusCode.HPC_LEVEL3_FAILED)
        client_random = secrets.token_bytes(8)
        # The same bytes a SAM signature would cover, with the holder's ids last; the card signs their digest.
        signed = signature_input(
            client_random,
            sam_file.sam_id,
            sam_file.hospital_id,
            service_type,
            holder.data["cardId"],
            holder.data["idNo"],
        )
        reply: Reply = yield CardStep(
            reader, "SignDigest", {"session": session, "digest": hashlib.sha256(signed).digest()}
        )
        if reply.code != 0:
            raise _card_error(reply)
        signature = reply.body.get("signature")
        if not isinstance(signature, bytes):
            return int(StatusCode.HPC_LEVEL3_FAILED), {"message": "the card wants its PIN verified again"}
        return int(StatusCode.OK), {
            "signature": signature,
            "clientRandom": client_random,
            "samId": sam_file.sam_id,
            "hospitalId": sam_file.hospital_id,
            "serviceType": service_type,
            "hpcId": holder.data["cardId"],
            "hpcIdNo": holder.data["idNo"],
        }

    return run_guarded(body)


def login_mobile_hca(ctx: StaffContext, login: MobileHcaLogin) -> Flow:
    """`POST /api/hpc/v1/Verification/MobiliHca`: HPC 0 -> 3 (type 3) once the login checks out."""

    def body() -> Generator[Step, Any, Outcome]:
        yield from ensure_sam_verified(ctx)
        problem = yield from ctx.mobile_login_problem(login)
        if problem is not None:
            ctx.emit(MobileHcaRejected(code=int(problem)))
            return int(problem), {"message": "the mobile HCA login was not accepted"}
        person = ctx.person_ref(login.id_no)
        ctx.emit(MobileHcaLoggedIn(person_ref=person, expires_at=ctx.authentication_expiry()))
        ctx.secrets.hpc_holder = StaffHolder(
            person,
            {
                "cardId": "",
                "idNo": login.id_no,
                "cName": login.c_name,
                "eName": login.e_name,
                "birthday": login.birthday,
            },
        )
        return int(StatusCode.OK), {}

    return run_guarded(body)


def logout_hpc(ctx: StaffContext) -> Outcome:
    """`DELETE /api/hpc/v1/Logout`: the staff card (or mobile HCA) to 0; logging out is always allowed."""
    ctx.secrets.hpc_holder = None
    ctx.emit(CardLoggedOut(kind="hpc"))
    return int(StatusCode.OK), {}
