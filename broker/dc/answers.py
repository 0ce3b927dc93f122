"""The DC's HTTP answers (docs/dc-protocol.md) mapped to values or `DcError`s. Pure.

No I/O here, so every row of the protocol's error table and every malformed
answer is tested without a server; `broker.dc.client` only moves the bytes.

Nothing here puts an answer's content into an exception message: the DC's
answers carry sessions and card data, and a message may end up in a log.
Messages name the endpoint and the HTTP status only; `DcError.reason` is the
DC's error name (one of the table's, never free text from the answer) or ours.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from cryptography import x509

from broker.dc.seam import CardCryptogram, DcError, DcSession, ImportedVirtualHc
from contract.status_codes import StatusCode

Answer = dict[str, Any]

MAX_ANSWER_BYTES = 64 * 1024
"""Every documented answer but `Crl`'s is well under 1 KiB; anything this large is not one, so it is not parsed."""
MAX_CRL_ANSWER_BYTES = 2 * 1024 * 1024
"""`Crl`'s answer only: CRLs grow with their revocations (the bench's is about 1 KiB)."""
MAX_CRLS = 16
"""At most this many CRLs in one `Crl` answer: one per HCA issuing CA the DC knows."""
MAX_CRL_BYTES = 1024 * 1024
"""At most this many bytes of DER per CRL."""

DC_ERRORS: Mapping[tuple[int, str], StatusCode] = {
    (400, "badRequest"): StatusCode.BAD_PARAMETER_1705,
    (401, "sessionExpired"): StatusCode.DC_SESSION_EXPIRED,
    (403, "contractExpired"): StatusCode.CONTRACT_EXPIRED,
    (403, "hospitalSuspended"): StatusCode.HOSPITAL_SUSPENDED,
    (403, "samRevoked"): StatusCode.SAM_REVOKED,
    # Which level failed (SAM 1301, HC 1501, HPC 1401) only the caller knows: it translates this.
    (403, "authenticationFailed"): StatusCode.DC_UNDEFINED_ERROR,
    (404, "unknownSam"): StatusCode.SAM_LEVEL2_FAILED,
    (404, "unknownCommand"): StatusCode.DC_COMMAND_UNKNOWN,
    (403, "verificationCountExceeded"): StatusCode.VIRTUAL_HC_TOKEN_OVERUSED,
    (410, "virtualCardVoid"): StatusCode.TRANSFER_DONE_OR_VOID,
    (404, "unknownTransfer"): StatusCode.TRANSFER_NOT_FOUND,
    (409, "transferUsed"): StatusCode.TRANSFER_USED_ELSEWHERE,
    (403, "otherHospital"): StatusCode.TRANSFER_OTHER_HOSPITAL,
    (410, "transferVoid"): StatusCode.TRANSFER_DONE_OR_VOID,
}
"""The protocol's error table: (HTTP status, `error`) → console code. `error` becomes `DcError.reason`."""

_ERROR_STATUSES = frozenset(status for status, _ in DC_ERRORS)

SESSION_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750's b64token: what may follow `Bearer ` in a header (anything else could split the header)."""

MAX_EPOCH_SECONDS = 2**63 - 1
"""`expiresAt` is seconds since the epoch, kept as a signed 64-bit integer (as docs/virtual-hc-token.md's `exp`)."""
MAX_VIRTUAL_HC_USES = 1000
MAX_NOTES_BYTES = 200
MAX_TRANSFER_TOKEN_LENGTH = 512

# [0-9] and [A-Za-z], never \d or \w: those match non-ASCII digits and letters too. Used with fullmatch.
TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A virtual card's id at the DC (docs/virtual-hc-token.md's `tokenId`)."""
TRANSFER_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
"""`VirtualHc/Export`'s answer: two unpadded base64url parts, a transfer id and a secret."""
VIRTUAL_HC_CARD_FIELDS = ("cardId", "name", "idNo", "birthday", "sex", "identityStatus")
_CARD_FORMATS: Mapping[str, re.Pattern[str]] = {
    "cardId": re.compile(r"[0-9]{12}"),
    "idNo": re.compile(r"[A-Za-z0-9]{10}"),
    "birthday": re.compile(r"[0-9]{7}"),
    "sex": re.compile(r"[MF]"),
    "identityStatus": re.compile(r"[12348]"),
}


def virtual_hc_card(value: object) -> dict[str, str] | None:
    """The six card fields of a virtual card (docs/virtual-hc-token.md's formats), else None.

    Other keys are dropped, not kept: only what the protocol names is passed on.
    Shared with the DC simulator, which checks `VirtualHc/Export`'s `card` with it.
    """
    if not isinstance(value, dict):
        return None
    card: dict[str, str] = {}
    for name in VIRTUAL_HC_CARD_FIELDS:
        item = value.get(name)
        if not isinstance(item, str):
            return None
        pattern = _CARD_FORMATS.get(name)
        if pattern is not None and not pattern.fullmatch(item):
            return None
        card[name] = item
    name = card["name"]
    if not 1 <= len(name) <= 20:
        return None
    try:
        name.encode("utf-8")  # a lone surrogate (JSON's \ud800) is not a character
    except UnicodeEncodeError:
        return None
    return card


def bad_answer(endpoint: str, status: int) -> DcError:
    """1799: the DC answered, but not with the JSON the protocol describes."""
    return DcError(
        StatusCode.DC_UNDEFINED_ERROR, "badAnswer", f"DC {endpoint}: HTTP {status}, answer not as documented"
    )


def interpret_answer(endpoint: str, status: int, body: bytes, max_bytes: int = MAX_ANSWER_BYTES) -> Answer:
    """The JSON object of a 200, else raise the `DcError` the protocol's table gives for `status` and `body`.

    A listed 4xx whose body is not `{"error": <that status's name>, ...}` is
    1799 (the body is not the JSON described), not a guess; any other status,
    5xx or unlisted (including other 2xx and 3xx), is 1702 whatever its body.
    A body over `max_bytes` (the endpoint's limit) is 1799 unparsed.
    """
    if status == 200:
        return _json_object(endpoint, status, body, max_bytes)
    if status in _ERROR_STATUSES:
        error = _json_object(endpoint, status, body, max_bytes).get("error")
        code = DC_ERRORS.get((status, error)) if isinstance(error, str) else None
        if code is None or not isinstance(error, str):
            raise bad_answer(endpoint, status)
        raise DcError(code, error, f"DC {endpoint}: HTTP {status}")
    raise DcError(StatusCode.DC_HTTP_ERROR, "httpStatus", f"DC {endpoint}: HTTP {status}")


def _json_object(endpoint: str, status: int, body: bytes, max_bytes: int) -> Answer:
    if len(body) > max_bytes:
        raise bad_answer(endpoint, status)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad_answer(endpoint, status) from None
    if not isinstance(value, dict):
        raise bad_answer(endpoint, status)
    return value


# --------------------------------------------------------------------------- #
# the fields of each success answer
# --------------------------------------------------------------------------- #


def parse_nonce(endpoint: str, answer: Answer) -> bytes:
    """`Sam/Challenge`: `{"nonce": base64 of 16 bytes}`."""
    return _bytes(endpoint, answer, "nonce", 16)


def parse_session(endpoint: str, answer: Answer) -> DcSession:
    """`Sam/Login`: the session (a header-safe token) with an aware expiry and the hospital's names."""
    token = _text(endpoint, answer, "session")
    if not SESSION_TOKEN.fullmatch(token):
        raise bad_answer(endpoint, 200)
    return DcSession(
        token=token,
        expires_at=_aware_time(endpoint, answer, "expiresAt"),
        hospital_id=_text(endpoint, answer, "hospitalId"),
        hospital_name=_text(endpoint, answer, "hospitalName"),
        hospital_short_name=_text(endpoint, answer, "hospitalShortName"),
    )


def parse_server_time(endpoint: str, answer: Answer) -> datetime.datetime:
    """`Time`: the DC's clock; aware, because the console shows it in the DC's zone."""
    return _aware_time(endpoint, answer, "serverTime")


def parse_card_cryptogram(endpoint: str, answer: Answer) -> CardCryptogram:
    """`Cards/Challenge`: sizes are checked here, so a card never gets an APDU of the wrong length."""
    return CardCryptogram(
        auth_id=_text(endpoint, answer, "authId"),
        cryptogram=_bytes(endpoint, answer, "cryptogram", 32),
        host_challenge=_bytes(endpoint, answer, "hostChallenge", 8),
    )


def parse_verified(endpoint: str, answer: Answer) -> None:
    """`Cards/Verify`: only a literal `true` authenticates; `false` is the DC saying no, anything else 1799."""
    authenticated = answer.get("authenticated")
    if authenticated is True:
        return
    if authenticated is False:
        raise DcError(StatusCode.DC_UNDEFINED_ERROR, "authenticationFailed", f"DC {endpoint}: HTTP 200")
    raise bad_answer(endpoint, 200)


def parse_crls(endpoint: str, answer: Answer) -> list[bytes]:
    """`Crl`: `{"crls": [base64 of a DER X.509 CRL, ...]}`, at most 16, each 1 byte to 1 MiB; the DER bytes.

    Each CRL is only checked to parse (`load_der_x509_crl`): whose it is,
    its signature and its dates are for whoever checks certificates with it.
    An empty list is a DC that knows no HCA CRL, not a malformed answer.
    """
    crls = answer.get("crls")
    if not isinstance(crls, list) or len(crls) > MAX_CRLS:
        raise bad_answer(endpoint, 200)
    result = []
    for item in crls:
        der = _decode(endpoint, item)
        if not 1 <= len(der) <= MAX_CRL_BYTES:
            raise bad_answer(endpoint, 200)
        try:
            x509.load_der_x509_crl(der)
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
            raise bad_answer(endpoint, 200) from None
        result.append(der)
    return result


def parse_verification_count(endpoint: str, answer: Answer, max_uses: int) -> int:
    """`VirtualHc/Verify`: `{"uses": int}`, 1 to the `max_uses` asked about (more: a DC contradicting itself)."""
    uses = answer.get("uses")
    if not _is_int(uses, 1, min(max_uses, MAX_VIRTUAL_HC_USES)):
        raise bad_answer(endpoint, 200)
    return uses


def parse_transfer_token(endpoint: str, answer: Answer) -> str:
    """`VirtualHc/Export`: `{"transferToken": "<part>.<part>"}`, unpadded base64url parts, at most 512 characters."""
    token = answer.get("transferToken")
    if not isinstance(token, str) or len(token) > MAX_TRANSFER_TOKEN_LENGTH or not TRANSFER_TOKEN.fullmatch(token):
        raise bad_answer(endpoint, 200)
    return token


def parse_imported_virtual_hc(endpoint: str, answer: Answer) -> ImportedVirtualHc:
    """`VirtualHc/Import`: `{"tokenId", "card": {...}, "expiresAt", "maxUses"}`, each in its documented format."""
    token_id = answer.get("tokenId")
    card = virtual_hc_card(answer.get("card"))
    expires_at = answer.get("expiresAt")
    max_uses = answer.get("maxUses")
    if (
        not isinstance(token_id, str)
        or not TOKEN_ID.fullmatch(token_id)
        or card is None
        or not _is_int(expires_at, 0, MAX_EPOCH_SECONDS)
        or not _is_int(max_uses, 1, MAX_VIRTUAL_HC_USES)
    ):
        raise bad_answer(endpoint, 200)
    return ImportedVirtualHc(token_id=token_id, card=card, expires_at=expires_at, max_uses=max_uses)


def parse_card_notes(endpoint: str, answer: Answer) -> bytes:
    """`RealHc/Notes`: `{"notes": base64 of 1 to 200 bytes}`."""
    notes = _decode(endpoint, answer.get("notes"))
    if not 1 <= len(notes) <= MAX_NOTES_BYTES:
        raise bad_answer(endpoint, 200)
    return notes


def _is_int(value: object, lowest: int, highest: int) -> TypeGuard[int]:
    """A JSON integer in range: not a bool (`true` is not a count), not a float (`3.0`)."""
    return isinstance(value, int) and not isinstance(value, bool) and lowest <= value <= highest


def _text(endpoint: str, answer: Answer, name: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise bad_answer(endpoint, 200)
    return value


def _bytes(endpoint: str, answer: Answer, name: str, length: int) -> bytes:
    """Strict standard base64 of exactly `length` bytes: a lenient decoder would hide a broken DC."""
    decoded = _decode(endpoint, answer.get(name))
    if len(decoded) != length:
        raise bad_answer(endpoint, 200)
    return decoded


def _decode(endpoint: str, value: object) -> bytes:
    """Strict standard base64, else 1799: no whitespace, not the urlsafe alphabet, exactly the padding needed.

    `validate=True` alone still takes surplus `=` and non-zero spare bits
    (before Python 3.13's `strict_mode`): the canonical re-encoding must match.
    """
    if not isinstance(value, str):
        raise bad_answer(endpoint, 200)
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        raise bad_answer(endpoint, 200) from None
    if base64.b64encode(decoded) != value.encode("ascii"):
        raise bad_answer(endpoint, 200)
    return decoded


def _aware_time(endpoint: str, answer: Answer, name: str) -> datetime.datetime:
    value = _text(endpoint, answer, name)
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise bad_answer(endpoint, 200) from None
    if parsed.utcoffset() is None:
        raise bad_answer(endpoint, 200)
    return parsed
