"""Which card is in the reader, found by SELECTing its application rather than guessing from the ATR."""

from __future__ import annotations

from typing import Callable

from workers.apdu import HC_AID, HPC_AID, parse_response, select_aid

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
