"""The `Sam` seam: the SAM's side of a card's mutual authentication (what takes a card to level 2).

The NHI's real scheme and keys are not public. A licensed implementation plugs
in here (a cloud SAM reached through the data center, or the physical SAM in
an NHI dedicated reader); what ships is the bench's simulated SAM
(`sim.sam.BenchSam`), which speaks the bench cards' own published scheme.

The flow is a pure function of a `transmit` callable and a `Sam`, so that it
runs the same wherever the card is (a PC/SC worker, the serial reader) and is
tested against a virtual card in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from workers.apdu import GET_CHALLENGE, external_authenticate, internal_authenticate, parse_response


class Sam(Protocol):
    def new_challenge(self) -> bytes:
        """8 fresh random bytes for the card to answer."""
        ...

    def external_cryptogram(self, card_number: str, card_challenge: bytes) -> bytes:
        """The SAM's 32-byte answer to the card's challenge."""
        ...

    def verify_internal(self, card_number: str, challenge: bytes, response: bytes) -> bool:
        """Whether the card's answer to our challenge proves it holds its key."""
        ...


class AuthenticationFailed(Exception):
    """A step of the mutual authentication failed; `step` names it (never the data exchanged)."""

    def __init__(self, step: str) -> None:
        super().__init__(f"mutual authentication failed at {step}")
        self.step = step


def authenticate_card(transmit: Callable[[bytes], bytes], sam: Sam, card_number: str) -> None:
    """Card and SAM prove themselves to each other; raises AuthenticationFailed with the failing step.

    The card must have its application selected; run this inside one PC/SC transaction.
    """
    challenge = parse_response(transmit(GET_CHALLENGE))
    if not challenge.ok or len(challenge.data) != 8:
        raise AuthenticationFailed("GET CHALLENGE")
    cryptogram = sam.external_cryptogram(card_number, challenge.data)
    if not parse_response(transmit(external_authenticate(cryptogram))).ok:
        raise AuthenticationFailed("EXTERNAL AUTHENTICATE")
    ours = sam.new_challenge()
    answer = parse_response(transmit(internal_authenticate(ours)))
    if not answer.ok or not sam.verify_internal(card_number, ours, answer.data):
        raise AuthenticationFailed("INTERNAL AUTHENTICATE")
