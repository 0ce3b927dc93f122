"""The card's half of its mutual authentication with the SAM, in two worker commands. Pure over `transmit`.

The SAM's half is computed elsewhere (at the DC, for a cloud SAM), so the
exchange is split where the SAM must answer: `begin` selects the card's
application and reads its number and challenge; `finish` presents the SAM's
cryptogram and returns the card's answer to the SAM's challenge. The broker
holds the reader between the two, so no other APDU lands in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workers.apdu import (
    GET_CHALLENGE,
    HC_AID,
    HPC_AID,
    external_authenticate,
    internal_authenticate,
    parse_response,
)
from workers.card_kind import read_card_number

Transmit = Callable[[bytes], bytes]
AIDS = {"hc": HC_AID, "hpc": HPC_AID}


class CardRefused(Exception):
    """The card answered a step with an error status; `step` names it (never the data)."""

    def __init__(self, step: str, sw: int | None = None) -> None:
        super().__init__(f"{step} refused" + (f" ({sw:04X})" if sw is not None else ""))
        self.step = step


@dataclass(frozen=True)
class AuthenticationStart:
    card_number: str = field(repr=False)
    card_challenge: bytes = field(repr=False)


def begin(transmit: Transmit, kind: str) -> AuthenticationStart:
    aid = AIDS.get(kind)
    if aid is None:
        raise CardRefused("unknown card kind")
    number = read_card_number(transmit, kind)  # selects the application, then reads the number
    if number is None:
        raise CardRefused("reading the card number")
    challenge = parse_response(transmit(GET_CHALLENGE))
    if not challenge.ok or len(challenge.data) != 8:
        raise CardRefused("GET CHALLENGE", challenge.sw)
    return AuthenticationStart(number, challenge.data)


def finish(transmit: Transmit, cryptogram: bytes, host_challenge: bytes) -> bytes:
    """The card checks the SAM (EXTERNAL AUTHENTICATE), then answers the SAM's challenge (INTERNAL)."""
    if len(cryptogram) != 32 or len(host_challenge) != 8:
        raise CardRefused("the SAM's answer has the wrong length")
    external = parse_response(transmit(external_authenticate(cryptogram)))
    if not external.ok:
        raise CardRefused("EXTERNAL AUTHENTICATE", external.sw)
    internal = parse_response(transmit(internal_authenticate(host_challenge)))
    if not internal.ok or len(internal.data) != 32:
        raise CardRefused("INTERNAL AUTHENTICATE", internal.sw)
    return internal.data
