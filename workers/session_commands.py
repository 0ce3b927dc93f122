"""The card commands of a session (authentication with the SAM, the health card's basic data). Pure over `transmit`.

The worker's core (`workers/execute.py`) checks that the card is still the
insertion the broker means and runs these inside one PC/SC transaction; keeping
them free of the worker's I/O lets the broker's flows be tested against a
virtual card in milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from contract.status_codes import StatusCode
from workers import card_auth, health_card_pin, staff_card
from workers.apdu import HC_AID, READ_HC_IDENTITY_STATUS, READ_HC_PUBLIC_DATA, parse_response, select_aid
from workers.health_card import DataBlockError, parse_public_data

log = logging.getLogger(__name__)

Transmit = Callable[[bytes], bytes]
Outcome = tuple[int, dict[str, Any]]
SESSION_COMMANDS = frozenset(
    {
        "BeginCardAuthentication",
        "FinishCardAuthentication",
        "ReadHcBasic",
        "VerifyPin",
        "ChangePin",
        "ResetPin",
        "ReadHpcBasic",
        "ReadCertificate",
        "SignDigest",
        "ReadHcPinState",
        "VerifyHcPin",
        "SetHcPin",
        "RemoveHcPin",
        "UpdateHcNotes",
    }
)
IDENTITY_STATUSES = ("1", "2", "3", "4", "8")


def run_session_command(command: str, args: dict[str, Any], transmit: Transmit) -> Outcome:
    try:
        if command == "BeginCardAuthentication":
            start = card_auth.begin(transmit, str(args.get("kind")))
            return int(StatusCode.OK), {"cardNumber": start.card_number, "cardChallenge": start.card_challenge}
        if command == "FinishCardAuthentication":
            cryptogram, challenge = args.get("cryptogram"), args.get("hostChallenge")
            if not isinstance(cryptogram, bytes) or not isinstance(challenge, bytes):
                return int(StatusCode.BAD_PARAMETER), {"message": "cryptogram and hostChallenge must be bytes"}
            return int(StatusCode.OK), {"response": card_auth.finish(transmit, cryptogram, challenge)}
        if command == "ReadHcBasic":
            return read_hc_basic(transmit)
        if command in _HEALTH_CARD_COMMANDS:
            return _run_health_card_command(command, args, transmit)
        return _run_staff_command(command, args, transmit)
    except card_auth.CardRefused as refused:
        log.warning("%s: %s", command, refused)
        return int(StatusCode.PCSC_OTHER_ERROR), {"message": f"the card refused: {refused.step}"}
    except (staff_card.StaffCardError, health_card_pin.HealthCardError) as error:
        log.warning("%s: %s", command, error)
        return int(StatusCode.PCSC_OTHER_ERROR), {"message": str(error)}


def _digits(args: dict[str, Any], name: str, shortest: int, longest: int) -> bytes | None:
    value = args.get(name)
    if (
        not isinstance(value, str)
        or not value.isascii()
        or not value.isdigit()
        or not shortest <= len(value) <= longest
    ):
        return None
    return value.encode("ascii")


def _secret_outcome(result: staff_card.SecretOutcome) -> dict[str, Any]:
    return {"outcome": result.outcome.value, "triesLeft": result.tries_left}


def _staff_data(data: staff_card.StaffData) -> dict[str, Any]:
    return {
        "cardId": data.card_id,
        "idNo": data.id_no,
        "cName": data.c_name,
        "eName": data.e_name,
        "birthday": data.birthday,
        "cardType": data.card_type,
    }


_HEALTH_CARD_COMMANDS = frozenset({"ReadHcPinState", "VerifyHcPin", "SetHcPin", "RemoveHcPin", "UpdateHcNotes"})


def _pin_state(state: health_card_pin.PinState) -> dict[str, Any]:
    return {
        "hasPin": state.has_pin,
        "verified": state.verified,
        "triesLeft": state.tries_left,
        "blocked": state.blocked,
    }


def _run_health_card_command(command: str, args: dict[str, Any], transmit: Transmit) -> Outcome:
    if command == "ReadHcPinState":
        return int(StatusCode.OK), _pin_state(health_card_pin.pin_state(transmit))
    if command == "VerifyHcPin":
        pin = _digits(args, "pin", 4, 6)
        if pin is None:
            return int(StatusCode.BAD_PARAMETER), {"message": "pin must be 4 to 6 digits"}
        outcome, state = health_card_pin.verify_pin(transmit, pin)
        return int(StatusCode.OK), {"outcome": outcome, **_pin_state(state)}
    if command == "SetHcPin":
        new_pin = _digits(args, "newPin", 4, 6)
        if new_pin is None:
            return int(StatusCode.BAD_PARAMETER), {"message": "newPin must be 4 to 6 digits"}
        return int(StatusCode.OK), {"outcome": health_card_pin.set_pin(transmit, new_pin)}
    if command == "RemoveHcPin":
        return int(StatusCode.OK), {"outcome": health_card_pin.remove_pin(transmit)}
    notes = args.get("notes")
    if not isinstance(notes, bytes) or not 1 <= len(notes) <= 200:
        return int(StatusCode.BAD_PARAMETER), {"message": "notes must be 1 to 200 bytes"}
    health_card_pin.write_notes(transmit, notes)
    return int(StatusCode.OK), {}


def _run_staff_command(command: str, args: dict[str, Any], transmit: Transmit) -> Outcome:
    """PINs and PUKs arrive as digits the broker checked; they are checked again here, and never logged."""
    if command == "VerifyPin":
        pin = _digits(args, "pin", 4, 8)
        if pin is None:
            return int(StatusCode.BAD_PARAMETER), {"message": "pin must be 4 to 8 digits"}
        result = staff_card.verify_pin(transmit, pin)
        body = _secret_outcome(result)
        if result.outcome is staff_card.Outcome.ACCEPTED:
            body.update(_staff_data(staff_card.read_staff_data(transmit)))
        return int(StatusCode.OK), body
    if command == "ChangePin":
        new_pin = _digits(args, "newPin", 4, 8)
        if new_pin is None:
            return int(StatusCode.BAD_PARAMETER), {"message": "newPin must be 4 to 8 digits"}
        return int(StatusCode.OK), _secret_outcome(staff_card.change_pin(transmit, new_pin))
    if command == "ResetPin":
        puk, new_pin = _digits(args, "puk", 1, 8), _digits(args, "newPin", 4, 8)
        if puk is None or new_pin is None:
            return int(StatusCode.BAD_PARAMETER), {"message": "puk must be up to 8 digits, newPin 4 to 8"}
        return int(StatusCode.OK), _secret_outcome(staff_card.reset_pin(transmit, puk, new_pin))
    if command == "ReadHpcBasic":
        return int(StatusCode.OK), _staff_data(staff_card.read_staff_data(transmit))
    if command == "ReadCertificate":
        return int(StatusCode.OK), {"certificate": staff_card.read_certificate(transmit)}
    if command == "SignDigest":
        digest = args.get("digest")
        if not isinstance(digest, bytes) or len(digest) != 32:
            return int(StatusCode.BAD_PARAMETER), {"message": "digest must be 32 bytes"}
        return int(StatusCode.OK), {"signature": staff_card.sign_digest(transmit, digest)}
    return int(StatusCode.BAD_PARAMETER), {"message": f"unknown session command {command!r}"}


def read_hc_basic(transmit: Transmit) -> Outcome:
    """The data block and the identity status (which the card gives only once authenticated)."""
    if not parse_response(transmit(select_aid(HC_AID))).ok:
        return int(StatusCode.SELECT_APPLICATION_FAILED), {"message": "not a health card"}
    try:
        data = parse_public_data(parse_response(transmit(READ_HC_PUBLIC_DATA)))
    except DataBlockError as error:
        return int(StatusCode.PCSC_OTHER_ERROR), {"message": f"unreadable data block: {error}"}
    identity = parse_response(transmit(READ_HC_IDENTITY_STATUS))
    status = identity.data.decode("ascii", "replace")
    if not identity.ok or status not in IDENTITY_STATUSES:
        return int(StatusCode.HC_LEVEL2_FAILED), {"message": f"the card gave no identity status ({identity.sw:04X})"}
    return int(StatusCode.OK), {
        "cardId": data.card_id,
        "name": data.name,
        "idNo": data.id_no,
        "birthday": data.birthday,
        "sex": data.sex,
        "dateIssue": data.date_issue,
        "identityStatus": status,
    }
