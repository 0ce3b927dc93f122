"""Which card is in the reader, found by SELECTing its application rather than guessing from the ATR."""

from __future__ import annotations

from collections.abc import Callable

from workers.apdu import HC_AID, HPC_AID, READ_HC_PUBLIC_DATA, READ_HPC_BASIC_DATA, parse_response, select_aid

HEALTH_CARD = "hc"
STAFF_CARD = "hpc"
UNKNOWN_CARD = "unknown"


def identify(transmit: Callable[[bytes], bytes]) -> str:
    """SELECT the health card application, then the staff card's; the first that answers 9000 names the card."""
    for aid, kind in ((HC_AID, HEALTH_CARD), (HPC_AID, STAFF_CARD)):
        try:
            if parse_response(transmit(select_aid(aid))).ok:
                return kind
        except ValueError:
            return UNKNOWN_CARD
    return UNKNOWN_CARD


STAFF_TYPE_OFFSET = 70
"""The staff data block's last byte: `1` doctor card, `2` other staff card (the bench's layout)."""


def read_card_identity(transmit: Callable[[bytes], bytes], kind: str) -> tuple[str | None, int | None]:
    """The card number and, for a staff card, its type (1 doctor, 2 other staff); (None, None) if unreadable."""
    command = {HEALTH_CARD: READ_HC_PUBLIC_DATA, STAFF_CARD: READ_HPC_BASIC_DATA}.get(kind)
    if command is None:
        return None, None
    try:
        if not parse_response(transmit(select_aid(HC_AID if kind == HEALTH_CARD else HPC_AID))).ok:
            return None, None
        answer = parse_response(transmit(command))
    except ValueError:
        return None, None
    number = answer.data[:12]
    if not answer.ok or len(number) != 12 or not number.isdigit():
        return None, None
    card_type: int | None = 1 if kind == HEALTH_CARD else None
    if kind == STAFF_CARD and len(answer.data) > STAFF_TYPE_OFFSET and answer.data[STAFF_TYPE_OFFSET] in b"12":
        card_type = answer.data[STAFF_TYPE_OFFSET] - ord("0")
    return number.decode("ascii"), card_type


def read_card_number(transmit: Callable[[bytes], bytes], kind: str) -> str | None:
    """The card number (12 digits, the first field of either card's data block), for the broker to pseudonymize.

    Run right after `identify`, with the card's application still selected.  None when it cannot
    be read: the card is still served, only the log cannot follow it.
    """
    return read_card_identity(transmit, kind)[0]
