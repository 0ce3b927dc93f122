"""The web API's formats: ROC dates and date-times, sequence and treatment numbers, hex-or-base64 bytes.

Why one module: every path reads or answers these, and a date written two ways is a bug waiting (web-api.md:
dates ROC `yyyMMdd`, date-times ROC 13 characters `yyyMMddHHmmss` in Taiwan's time, `sequenceNumber` 4
characters, `treatmentNumber` 20).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import re

from sim.dc.state import TAIPEI

ROC_OFFSET = 1911
"""民國 year = Gregorian year - 1911."""
MAX_SEQUENCE = 9999
TREATMENT_NUMBER_LENGTH = 20
TREATMENT_NUMBER_DOMAIN = "nhi-console-web-api-twin/treatment-number/1"
"""Names the twin's own treatment number rule (docs/web-api-twin.md): not the NHI's, which is not public."""

_ROC_DATE = re.compile(r"^[0-9]{7}\Z")
_ROC_DATE_TIME = re.compile(r"^[0-9]{13}\Z")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+\Z")


def taipei_date(moment: datetime.datetime) -> datetime.date:
    """The day it is in Taiwan at that moment: what validity, same-day visits and ROC dates are about."""
    return moment.astimezone(TAIPEI).date()


def roc_date(day: datetime.date) -> str:
    """`yyyMMdd` of a day."""
    return f"{day.year - ROC_OFFSET:03d}{day:%m%d}"


def roc_date_time(moment: datetime.datetime) -> str:
    """`yyyMMddHHmmss` of the moment in Taiwan's time (13 characters)."""
    local = moment.astimezone(TAIPEI)
    return f"{local.year - ROC_OFFSET:03d}{local:%m%d%H%M%S}"


def parse_roc_date(text: str) -> datetime.date | None:
    """The date of a `yyyMMdd`, or None when it is not one (wrong shape, no such day, before ROC year 1)."""
    if not _ROC_DATE.match(text) or int(text[:3]) < 1:
        return None
    try:
        return datetime.date(int(text[:3]) + ROC_OFFSET, int(text[3:5]), int(text[5:7]))
    except ValueError:
        return None


def parse_roc_date_time(text: str) -> datetime.datetime | None:
    """The moment (Taiwan's time) of a `yyyMMddHHmmss`, or None when it is not one."""
    if not _ROC_DATE_TIME.match(text):
        return None
    day = parse_roc_date(text[:7])
    if day is None:
        return None
    try:
        clock = datetime.time(int(text[7:9]), int(text[9:11]), int(text[11:13]))
    except ValueError:
        return None
    return datetime.datetime.combine(day, clock, TAIPEI)


def next_sequence(last: int) -> int:
    """The card's next 就醫序號: 1 after 9999 (and after 0, a card that has had no visit)."""
    return last % MAX_SEQUENCE + 1


def sequence_text(sequence: int) -> str:
    """`0001`…`9999`."""
    return f"{sequence:04d}"


def treatment_number(hospital_id: str, id_no: str, treatment_date_time: str) -> str:
    """The twin's 就醫識別碼: 20 characters of base32 (`A`-`Z`, `2`-`7`) of a SHA-256 over the hospital, the
    person and the visit's ROC date-time.

    Deterministic, so every path that names the same visit (SequelNumber/Next, TreatmentNumber/Card, and
    TreatmentNumber/NoCard or /TreatNum given the same hospital, person and time) answers the same number.
    """
    digest = hashlib.sha256(f"{TREATMENT_NUMBER_DOMAIN}|{hospital_id}|{id_no}|{treatment_date_time}".encode())
    return base64.b32encode(digest.digest()).decode("ascii")[:TREATMENT_NUMBER_LENGTH]


def decode_base64(text: str) -> bytes | None:
    """Standard padded base64 (what the console answers), or None."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_hex_or_base64(text: str) -> bytes | None:
    """Hex (what the seed's VPNH_SignX gives: 512 hex characters for a signature) when the text is only hex
    digits in pairs, else base64 (what the 6.0 console answers), else None.

    Unambiguous for what is sent here: base64 of 8 or 256 bytes always ends in `=`, never a hex digit.
    """
    if _HEX.match(text):
        return bytes.fromhex(text)
    return decode_base64(text)
