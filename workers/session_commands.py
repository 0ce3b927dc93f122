"""The card commands of a session (authentication with the SAM, the health card's basic data). Pure over `transmit`.

The worker checks that the card is still the insertion the broker means and
runs these inside one PC/SC transaction; keeping them free of the worker's I/O
lets the broker's flows be tested against a virtual card in milliseconds.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from broker.status_codes import StatusCode
from workers import card_auth
from workers.apdu import HC_AID, READ_HC_IDENTITY_STATUS, READ_HC_PUBLIC_DATA, parse_response, select_aid
from workers.health_card import DataBlockError, parse_public_data

log = logging.getLogger(__name__)

Transmit = Callable[[bytes], bytes]
Outcome = tuple[int, dict[str, Any]]
SESSION_COMMANDS = frozenset({"BeginCardAuthentication", "FinishCardAuthentication", "ReadHcBasic"})
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
    except card_auth.CardRefused as refused:
        log.warning("%s: %s", command, refused)
        return int(StatusCode.PCSC_OTHER_ERROR), {"message": f"the card refused: {refused.step}"}
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
        "cardId": data.card_id, "name": data.name, "idNo": data.id_no, "birthday": data.birthday,
        "sex": data.sex, "dateIssue": data.date_issue, "identityStatus": status,
    }
