"""Command APDUs the console sends and the status words it reads back (ISO 7816-4). Pure."""

from __future__ import annotations

from dataclasses import dataclass

HC_AID = bytes.fromhex("D1580000010000000000000000001100")
"""The health card application, as the spec's public data block is read from real cards."""

HPC_AID = bytes.fromhex("D1580000010000000000000000001200")
"""The staff card application id used by the bench's virtual staff cards (the real one is not public)."""

SW_OK = 0x9000


def select_aid(aid: bytes) -> bytes:
    """SELECT by DF name, first occurrence, expecting FCI (Le 00)."""
    if not 5 <= len(aid) <= 16:
        raise ValueError("an AID is 5 to 16 bytes")
    return bytes([0x00, 0xA4, 0x04, 0x00, len(aid)]) + aid + b"\x00"


READ_HC_PUBLIC_DATA = bytes.fromhex("00CA11000200 00".replace(" ", ""))
"""`00 CA 11 00 02 00 00`: the health card's 57-byte public data block."""


READ_HPC_BASIC_DATA = bytes.fromhex("00CA12000200 00".replace(" ", ""))
"""`00 CA 12 00 02 00 00`: the bench staff card's data block (its layout is ours: docs/virtual-cards.md)."""


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK


class ResponseTooShort(ValueError):
    """A response without its two status bytes: the reader or card misbehaved."""


def parse_response(raw: bytes) -> ResponseApdu:
    if len(raw) < 2:
        raise ResponseTooShort(f"response of {len(raw)} bytes has no status word")
    return ResponseApdu(data=bytes(raw[:-2]), sw=(raw[-2] << 8) | raw[-1])


GET_CHALLENGE = bytes.fromhex("0084000008")
"""`00 84 00 00 08`: 8 random bytes from the card, for the SAM to answer."""


def external_authenticate(cryptogram: bytes) -> bytes:
    """The SAM's answer to the card's challenge: the card learns the SAM is genuine."""
    if len(cryptogram) != 32:
        raise ValueError("the cryptogram is 32 bytes")
    return bytes([0x00, 0x82, 0x00, 0x00, 0x20]) + cryptogram


def internal_authenticate(challenge: bytes) -> bytes:
    """The SAM's challenge to the card: the SAM learns the card is genuine."""
    if len(challenge) != 8:
        raise ValueError("the challenge is 8 bytes")
    return bytes([0x00, 0x88, 0x00, 0x00, 0x08]) + challenge + b"\x00"


READ_HC_IDENTITY_STATUS = bytes.fromhex("00CA110102 0000".replace(" ", ""))
"""`00 CA 11 01 02 00 00`: the identity status (1 byte), which the card gives only after mutual authentication."""

STAFF_PIN_P2 = 0x81
"""The bench staff card's PIN reference in VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER."""

STAFF_CERTIFICATE_EF = bytes.fromhex("5001")


def verify(p2: int, pin: bytes | None = None) -> bytes:
    """VERIFY; without data it reads the retry counter without spending a try (ISO 7816-4)."""
    if pin is None:
        return bytes([0x00, 0x20, 0x00, p2])
    return bytes([0x00, 0x20, 0x00, p2, len(pin)]) + pin


def change_reference_data(p2: int, new_pin: bytes) -> bytes:
    """CHANGE REFERENCE DATA, P1 01: the new value only (the old one was verified just before)."""
    return bytes([0x00, 0x24, 0x01, p2, len(new_pin)]) + new_pin


def reset_retry_counter(p2: int, puk: bytes, new_pin: bytes) -> bytes:
    """RESET RETRY COUNTER, P1 00: the PUK followed by the new PIN."""
    data = puk + new_pin
    return bytes([0x00, 0x2C, 0x00, p2, len(data)]) + data


def select_ef(file_id: bytes) -> bytes:
    """SELECT an EF by its id under the current application, no FCI (P2 0C)."""
    return bytes([0x00, 0xA4, 0x02, 0x0C, len(file_id)]) + file_id


def read_binary(offset: int, length: int) -> bytes:
    """READ BINARY from the current EF; `length` 256 is encoded as Le 00."""
    if not 0 <= offset <= 0x7FFF or not 1 <= length <= 256:
        raise ValueError("READ BINARY takes an offset below 32768 and 1 to 256 bytes")
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, length & 0xFF])


def compute_digital_signature(digest: bytes) -> bytes:
    """PSO: COMPUTE DIGITAL SIGNATURE over a SHA-256 digest the host computed."""
    if len(digest) != 32:
        raise ValueError("the digest is 32 bytes (SHA-256)")
    return bytes([0x00, 0x2A, 0x9E, 0x9A, 0x20]) + digest + b"\x00"


HC_PIN_P2 = 0x01
"""The health card's PIN reference (the bench's; the spec does not say)."""
HC_NOTES_EF = bytes.fromhex("0102")


def disable_verification(p2: int) -> bytes:
    """DISABLE VERIFICATION REQUIREMENT: the card stops asking for its PIN (the PIN is removed)."""
    return bytes([0x00, 0x26, 0x00, p2])


def update_binary(data: bytes) -> bytes:
    """UPDATE BINARY at offset 0 of the current EF."""
    if not 1 <= len(data) <= 255:
        raise ValueError("UPDATE BINARY carries 1 to 255 bytes")
    return bytes([0x00, 0xD6, 0x00, 0x00, len(data)]) + data
