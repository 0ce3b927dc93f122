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
