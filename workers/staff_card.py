"""The staff card's commands (PIN, PUK, data, certificate, signature). Pure over `transmit`.

Each function sends what one API call needs and nothing more: a PIN or PUK
command is sent at most once per call, and never when the counter says the
reference is blocked (a try would be lost, or a blocked card provoked). The
staff card's application, layout and PIN reference are the bench's
(docs/virtual-cards.md): the real ones are not public.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from workers.apdu import (
    HPC_AID,
    READ_HPC_BASIC_DATA,
    STAFF_CERTIFICATE_EF,
    STAFF_PIN_P2,
    change_reference_data,
    compute_digital_signature,
    parse_response,
    read_binary,
    reset_retry_counter,
    select_aid,
    select_ef,
    verify,
)

Transmit = Callable[[bytes], bytes]
SW_END_OF_FILE = 0x6282
SW_BLOCKED = 0x6983
SW_NOT_VERIFIED = 0x6982
MAX_CERTIFICATE_BYTES = 8192
BLOCK_LENGTH = 71


class Outcome(Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    BLOCKED = "blocked"
    REFUSED = "refused"
    """The card said no for another reason (not verified, bad data, no application)."""


@dataclass(frozen=True)
class SecretOutcome:
    """What a PIN or PUK command came to; `tries_left` as the card counts them (None if it did not say)."""

    outcome: Outcome
    tries_left: int | None = None
    sw: int = 0


class StaffCardError(Exception):
    """The card could not do what was asked; the message names the step, never data."""


def _select(transmit: Transmit) -> None:
    answer = parse_response(transmit(select_aid(HPC_AID)))
    if not answer.ok:
        raise StaffCardError(f"SELECT of the staff card application failed ({answer.sw:04X})")


def _tries(sw: int) -> int | None:
    return sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None


def verify_pin(transmit: Transmit, pin: bytes) -> SecretOutcome:
    """Read the counter first (costs nothing); if blocked, stop there. Otherwise one VERIFY."""
    _select(transmit)
    status = parse_response(transmit(verify(STAFF_PIN_P2))).sw
    if status == SW_BLOCKED:
        return SecretOutcome(Outcome.BLOCKED, 0, status)
    sw = parse_response(transmit(verify(STAFF_PIN_P2, pin))).sw
    if sw == 0x9000:
        return SecretOutcome(Outcome.ACCEPTED, None, sw)
    tries = _tries(sw)
    if tries is not None:
        return SecretOutcome(Outcome.BLOCKED if tries == 0 else Outcome.WRONG, tries, sw)
    if sw == SW_BLOCKED:
        return SecretOutcome(Outcome.BLOCKED, 0, sw)
    return SecretOutcome(Outcome.REFUSED, None, sw)


def change_pin(transmit: Transmit, new_pin: bytes) -> SecretOutcome:
    _select(transmit)
    sw = parse_response(transmit(change_reference_data(STAFF_PIN_P2, new_pin))).sw
    if sw == 0x9000:
        return SecretOutcome(Outcome.ACCEPTED, None, sw)
    return SecretOutcome(Outcome.BLOCKED if sw == SW_BLOCKED else Outcome.REFUSED, None, sw)


def reset_pin(transmit: Transmit, puk: bytes, new_pin: bytes) -> SecretOutcome:
    """One RESET RETRY COUNTER: the PUK's own counter answers for a wrong PUK."""
    _select(transmit)
    sw = parse_response(transmit(reset_retry_counter(STAFF_PIN_P2, puk, new_pin))).sw
    if sw == 0x9000:
        return SecretOutcome(Outcome.ACCEPTED, None, sw)
    tries = _tries(sw)
    if tries is not None:
        return SecretOutcome(Outcome.BLOCKED if tries == 0 else Outcome.WRONG, tries, sw)
    return SecretOutcome(Outcome.BLOCKED if sw == SW_BLOCKED else Outcome.REFUSED, None, sw)


@dataclass(frozen=True)
class StaffData:
    card_id: str
    id_no: str
    c_name: str
    e_name: str
    birthday: str
    """`YYYY-MM-DD`, as the API shows it (the card stores `YYYYMMDD`)."""
    card_type: int


def read_staff_data(transmit: Transmit) -> StaffData:
    _select(transmit)
    answer = parse_response(transmit(READ_HPC_BASIC_DATA))
    block = answer.data
    if not answer.ok or len(block) != BLOCK_LENGTH:
        raise StaffCardError(f"the staff data block could not be read ({answer.sw:04X}, {len(block)} bytes)")
    try:
        card_id = block[0:12].decode("ascii")
        id_no = block[12:22].decode("ascii")
        c_name = block[22:42].split(b"\x00", 1)[0].decode("big5")
        e_name = block[42:62].split(b"\x00", 1)[0].decode("ascii")
        birthday = block[62:70].decode("ascii")
    except UnicodeDecodeError:
        raise StaffCardError("the staff data block is not in the expected encodings") from None
    if not (card_id.isdigit() and birthday.isdigit() and block[70:71] in (b"1", b"2")):
        raise StaffCardError("the staff data block has malformed fields")
    return StaffData(card_id, id_no, c_name, e_name, f"{birthday[:4]}-{birthday[4:6]}-{birthday[6:]}", block[70] - 48)


def read_certificate(transmit: Transmit) -> bytes:
    """The card's X.509 certificate (DER), in READ BINARY chunks until the card says the file ends."""
    _select(transmit)
    selected = parse_response(transmit(select_ef(STAFF_CERTIFICATE_EF)))
    if not selected.ok:
        raise StaffCardError(f"SELECT of the certificate file failed ({selected.sw:04X})")
    content = b""
    while len(content) < MAX_CERTIFICATE_BYTES:
        chunk = parse_response(transmit(read_binary(len(content), 256)))
        if chunk.sw not in (0x9000, SW_END_OF_FILE):
            raise StaffCardError(f"READ BINARY failed ({chunk.sw:04X})")
        content += chunk.data
        if chunk.sw == SW_END_OF_FILE or len(chunk.data) < 256:
            return content
    raise StaffCardError("the certificate file is larger than any certificate")


def sign_digest(transmit: Transmit, digest: bytes) -> bytes | None:
    """The card's RSA signature of a SHA-256 digest; None if the card needs its PIN verified first."""
    _select(transmit)
    answer = parse_response(transmit(compute_digital_signature(digest)))
    if answer.sw == SW_NOT_VERIFIED:
        return None
    if not answer.ok or len(answer.data) != 256:
        raise StaffCardError(f"the card did not sign ({answer.sw:04X})")
    return answer.data
