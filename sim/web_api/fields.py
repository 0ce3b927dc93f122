"""Reading a web-API request's body: the JSON object, each field's shape, the signature block.

Why apart: a body that is not a JSON object, or a required field that is missing or malformed, is refused the
same way on every path (HTTP 400, 1704, a message naming the field, never its value) before anything is
checked or changed; the paths then read only well-formed values.
"""

from __future__ import annotations

import json
import re

from sim.dc.service import Request
from sim.web_api.codes import Code, Refused
from sim.web_api.formats import decode_base64, parse_roc_date_time
from sim.web_api.signatures import Holder, Kind, SignatureBlock

Json = dict[str, object]

SAM_ID = re.compile(r"^[0-9]{12}\Z")
HOSPITAL_ID = re.compile(r"^[0-9A-Za-z]{1,10}\Z")
CARD_ID = re.compile(r"^[0-9]{12}\Z")
ID_NO = re.compile(r"^[0-9A-Za-z]{10}\Z")
TREATMENT_ITEM = re.compile(r"^[0-9A-Z]{2}\Z")
"""就醫類別: `01`…`09` (numeric: may be rolled back) or letters (`AA`, `AC`, ...)."""
AFTER_CHECK = re.compile(r"^[12]\Z")
"""補卡註記: 1 normal, 2 the card was shown afterwards."""
BABY_TREATMENT = re.compile(r"^[ -~]?\Z")
"""新生兒就醫註記: empty, a space (what public HIS code sends) or one printable ASCII character."""
FORMAT = re.compile(r"^[0-9]\Z")
DIAGNOSIS = re.compile(r"^[0-9A-Za-z.]{0,9}\Z")
ACCESS_TOKEN = re.compile(r"^[0-9A-Za-z_-]{16,128}\Z")
MAX_RANDOM_BYTES = 32
MAX_SIGNATURE_BYTES = 1024


def bad_request(detail: str) -> Refused:
    return Refused(Code.BAD_REQUEST, detail)


def json_object(request: Request) -> Json:
    """The body as a JSON object, or 400: too large, not UTF-8 JSON, not an object."""
    if request.body is None:
        raise bad_request("the body is too large, or not sent with a Content-Length")
    try:
        document = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request("the body is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise bad_request("the body is not a JSON object")
    return document


def text(document: Json, name: str, pattern: re.Pattern[str], default: str | None = None) -> str:
    """A string field matching `pattern`; missing or null takes `default` when there is one (an optional field)."""
    value = document.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not pattern.match(value):
        raise bad_request(f"{name} is missing or malformed")
    return value


def printable(document: Json, name: str, longest: int, default: str | None = None) -> str:
    """A string of at most `longest` printable ASCII characters; numbers are taken as their text (public HIS code
    sends `days` as a string, another client may send 7)."""
    value = document.get(name)
    if value is None and default is not None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > longest or not all(" " <= char <= "~" for char in value):
        raise bad_request(f"{name} must be at most {longest} printable ASCII characters")
    return value


def integer(document: Json, name: str, highest: int, default: int | None = None) -> int:
    """A whole number 0..highest (3.0 counts as 3, a bool does not); missing or null takes `default` if any."""
    value = document.get(name)
    if value is None and default is not None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= highest:
        raise bad_request(f"{name} must be a whole number from 0 to {highest}")
    return value


def roc_date_time(document: Json, name: str) -> str:
    """A ROC date-time `yyyMMddHHmmss` that names a real moment."""
    value = document.get(name)
    if not isinstance(value, str) or parse_roc_date_time(value) is None:
        raise bad_request(f"{name} must be a ROC date-time yyyMMddHHmmss (13 digits)")
    return value


def base64_bytes(document: Json, name: str, longest: int) -> bytes:
    value = document.get(name)
    raw = decode_base64(value) if isinstance(value, str) else None
    if raw is None or not 1 <= len(raw) <= longest:
        raise bad_request(f"{name} is missing or not base64 of 1 to {longest} bytes")
    return raw


def signature_block(document: Json, kind: Kind) -> SignatureBlock:
    """clientRandom, hospitalId, samId, signature (base64, as the console answered them), and the holders the
    kind covers: hcId/hcIdNo for HC, hpcId/hpcIdNo as well for HpcHc."""
    hc = hpc = None
    if kind is not Kind.SAM:
        hc = Holder(text(document, "hcId", CARD_ID), text(document, "hcIdNo", ID_NO))
    if kind is Kind.HPC_HC:
        hpc = Holder(text(document, "hpcId", CARD_ID), text(document, "hpcIdNo", ID_NO))
    return SignatureBlock(
        client_random=base64_bytes(document, "clientRandom", MAX_RANDOM_BYTES),
        hospital_id=text(document, "hospitalId", HOSPITAL_ID),
        sam_id=text(document, "samId", SAM_ID),
        signature=base64_bytes(document, "signature", MAX_SIGNATURE_BYTES),
        hc=hc,
        hpc=hpc,
    )
