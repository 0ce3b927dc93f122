"""The health card's public data block: 57 bytes, fixed positions, Big5 name. Pure.

Layout (as real cards answer `00 CA 11 00 02 00 00`): card number [0:12],
name [12:32] Big5 NUL-padded, ID number [32:42], birthday ROC yyyMMdd [42:49],
sex [49], issue date ROC yyyMMdd [50:57].
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.apdu import ResponseApdu

BLOCK_LENGTH = 57


class DataBlockError(ValueError):
    """The card's answer is not a valid public data block; the message names the field, never its value."""


@dataclass(frozen=True, slots=True)
class HealthCardPublicData:
    card_id: str
    name: str
    id_no: str
    birthday: str
    sex: str
    date_issue: str


def _ascii_field(block: bytes, start: int, end: int, label: str, *, digits: bool = False) -> str:
    raw = block[start:end]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as error:
        raise DataBlockError(f"{label} is not ASCII") from error
    if digits and not text.isdigit():
        raise DataBlockError(f"{label} is not all digits")
    return text


def parse_public_data(response: ResponseApdu) -> HealthCardPublicData:
    if not response.ok:
        raise DataBlockError(f"the card answered status {response.sw:04X}")
    block = response.data
    if len(block) != BLOCK_LENGTH:
        raise DataBlockError(f"the data block is {len(block)} bytes, not {BLOCK_LENGTH}")
    name_bytes = block[12:32].split(b"\x00", 1)[0].rstrip(b" ")
    if not name_bytes:
        raise DataBlockError("the name is empty")
    try:
        name = name_bytes.decode("big5")
    except UnicodeDecodeError as error:
        raise DataBlockError("the name is not valid Big5") from error
    sex = _ascii_field(block, 49, 50, "sex")
    if sex not in ("M", "F"):
        raise DataBlockError("sex is neither M nor F")
    return HealthCardPublicData(
        card_id=_ascii_field(block, 0, 12, "card number", digits=True),
        name=name,
        id_no=_ascii_field(block, 32, 42, "ID number"),
        birthday=_ascii_field(block, 42, 49, "birthday", digits=True),
        sex=sex,
        date_issue=_ascii_field(block, 50, 57, "issue date", digits=True),
    )
