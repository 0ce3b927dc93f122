"""The health card's PIN and notes commands. Pure over `transmit`.

Like the staff card's: the counter is read first with a VERIFY that carries
no data (it costs no try), and nothing is sent when the answer is already
known (no PIN, already verified, blocked); otherwise exactly one command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workers.apdu import (
    HC_AID,
    HC_NOTES_EF,
    HC_PIN_P2,
    change_reference_data,
    disable_verification,
    parse_response,
    select_aid,
    select_ef,
    update_binary,
    verify,
)

Transmit = Callable[[bytes], bytes]
SW_OK = 0x9000
SW_NOT_VERIFIED = 0x6982
SW_BLOCKED = 0x6983
SW_NO_PIN = 0x6A88


class HealthCardError(Exception):
    """The card could not do what was asked; the message names the step, never data."""


@dataclass(frozen=True)
class PinState:
    has_pin: bool
    verified: bool | None
    """None when the card has no PIN (contract.md: verifiedPin null then)."""
    tries_left: int | None = None
    blocked: bool = False


def _select(transmit: Transmit) -> None:
    answer = parse_response(transmit(select_aid(HC_AID)))
    if not answer.ok:
        raise HealthCardError(f"SELECT of the health card application failed ({answer.sw:04X})")


def _state_of(sw: int) -> PinState:
    if sw == SW_NO_PIN:
        return PinState(False, None)
    if sw == SW_OK:
        return PinState(True, True)
    if sw == SW_BLOCKED:
        return PinState(True, False, 0, True)
    if sw & 0xFFF0 == 0x63C0:
        return PinState(True, False, sw & 0x0F, sw & 0x0F == 0)
    raise HealthCardError(f"the card did not say whether it has a PIN ({sw:04X})")


def pin_state(transmit: Transmit) -> PinState:
    _select(transmit)
    return _state_of(parse_response(transmit(verify(HC_PIN_P2))).sw)


def verify_pin(transmit: Transmit, pin: bytes) -> tuple[str, PinState]:
    """("accepted" | "wrong" | "noPin" | "alreadyVerified" | "blocked", the PIN state after)."""
    return verify_pin_with(transmit, lambda: parse_response(transmit(verify(HC_PIN_P2, pin))).sw)


def verify_pin_with(transmit: Transmit, present_pin: Callable[[], int]) -> tuple[str, PinState]:
    """`verify_pin` where `present_pin` sends the VERIFY and returns its status word: the console's own APDU,
    or the NHI reader's keypad, which builds it from what the holder types (the PIN never reaches us)."""
    before = pin_state(transmit)
    if not before.has_pin:
        return "noPin", before
    if before.verified:
        return "alreadyVerified", before
    if before.blocked:
        return "blocked", before
    after = _state_of(present_pin())
    if after.verified:
        return "accepted", after
    return ("blocked" if after.blocked else "wrong"), after


def set_pin(transmit: Transmit, new_pin: bytes) -> str:
    """ "accepted" | "notVerified" | "blocked" | "refused": a first PIN needs no verification, a new one does."""
    return set_pin_with(transmit, lambda: parse_response(transmit(change_reference_data(HC_PIN_P2, new_pin))).sw)


def set_pin_with(transmit: Transmit, present_new_pin: Callable[[], int]) -> str:
    """`set_pin` where `present_new_pin` sends CHANGE REFERENCE DATA and returns its status word."""
    _select(transmit)
    sw = present_new_pin()
    return {SW_OK: "accepted", SW_NOT_VERIFIED: "notVerified", SW_BLOCKED: "blocked"}.get(sw, "refused")


def remove_pin(transmit: Transmit) -> str:
    """ "accepted" | "notVerified" | "noPin" | "blocked" | "refused"."""
    _select(transmit)
    sw = parse_response(transmit(disable_verification(HC_PIN_P2))).sw
    return {SW_OK: "accepted", SW_NOT_VERIFIED: "notVerified", SW_NO_PIN: "noPin", SW_BLOCKED: "blocked"}.get(
        sw, "refused"
    )


def write_notes(transmit: Transmit, notes: bytes) -> None:
    _select(transmit)
    selected = parse_response(transmit(select_ef(HC_NOTES_EF)))
    if not selected.ok:
        raise HealthCardError(f"SELECT of the notes file failed ({selected.sw:04X})")
    written = parse_response(transmit(update_binary(notes)))
    if not written.ok:
        raise HealthCardError(f"UPDATE BINARY of the notes failed ({written.sw:04X})")
