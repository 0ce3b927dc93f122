"""Pure parsing and verification of a virtual health card token (format `NHI-VHC`, ours).

The format and the codes are docs/virtual-hc-token.md. The real NHI format is
not public; a licensed parser would replace this module, so everything the
rest of the console needs goes through `verify_token` and `card_data`.

A token is a bearer credential: whoever holds it can read the card. So
nothing here logs, stores or echoes it, and no `TokenRefused` message,
argument or chained exception carries the token or any part of it (refusals
are raised outside the `except` blocks that detect them, so not even
`__context__` holds a decoder's error, which can quote the bytes).

Pure: the caller passes the trusted issuers and `now` (the console's clock,
which the bench can move); nothing here reads files, the network or the clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from contract.status_codes import StatusCode

MAX_TOKEN_LENGTH = 8 * 1024
"""Characters. A bench token is well under 1 KiB (an RSA-4096 signature alone is 683 characters);
the cap keeps a hostile body from making the console decode and parse megabytes."""

ALGORITHM = "RS256"
TOKEN_TYPE = "NHI-VHC"

_MAX_EPOCH_SECONDS = 2**63 - 1
"""`iat`/`exp` are kept and compared downstream as signed 64-bit integers (SQLite, the event log);
a value outside 0..2**63-1 is not "seconds since the epoch" in any sense the console can use."""

# [0-9] and [A-Za-z], never \d or \w: those match non-ASCII digits and letters too.
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CARD_ID = re.compile(r"[0-9]{12}")
_ID_NO = re.compile(r"[A-Za-z0-9]{10}")
_ROC_DATE = re.compile(r"[0-9]{7}")
_HOSPITAL_ID = re.compile(r"[A-Za-z0-9]{1,10}")
_SEXES = ("M", "F")
_IDENTITY_STATUSES = ("1", "2", "3", "4", "8")


@dataclass(frozen=True)
class VirtualHcToken:
    """A verified token's payload, in Python names.

    `name`, `id_no` and `birthday` are kept out of repr so that a traceback or a
    debug print never shows who the card belongs to. The token itself (and its
    signature) is deliberately not kept: once verified, the console needs only
    `token_id` to talk to the DC, and a stored bearer credential is one that can leak.
    """

    token_id: str
    card_id: str
    name: str = field(repr=False)
    id_no: str = field(repr=False)
    birthday: str = field(repr=False)
    sex: str
    identity_status: str
    hospital_id: str
    issued_at: int
    expires_at: int
    max_uses: int


class TokenRefused(Exception):
    """The token is refused with `code` (1520, 1522, 1523 or 1524).

    The message names the check that failed and, for 1522, the field's name;
    it never quotes the token, a part of it, or a decoded value.
    """

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def load_issuers(pem: bytes) -> list[rsa.RSAPublicKey]:
    """The RSA public keys of the X.509 certificates in a PEM bundle (`serve --vhc-issuer FILE`).

    Only the keys are used: the token names no certificate, so there is no chain
    or validity period to check; trusting a certificate here means trusting its key.
    Raises ValueError for an empty or unparsable bundle or a non-RSA key, so that a
    wrong file is refused when the console starts rather than turning every
    virtual card into a 1523. Messages give the certificate's position, never its content.
    """
    certificates: list[x509.Certificate] | None
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
        certificates = None
    if certificates is None:
        raise ValueError("the virtual card issuer bundle holds no PEM certificate, or one that cannot be parsed")
    if not certificates:
        raise ValueError("the virtual card issuer bundle holds no certificate")
    keys: list[rsa.RSAPublicKey] = []
    for position, certificate in enumerate(certificates, start=1):
        try:
            key = certificate.public_key()
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"certificate #{position} of the virtual card issuer bundle has no RSA public key")
        if key not in keys:  # the same certificate twice is harmless
            keys.append(key)
    return keys


def _b64url_decode(part: str) -> bytes | None:
    """Unpadded base64url (RFC 4648 §5) → bytes, or None if `part` is not exactly that.

    Canonical only: the encoding of the decoded bytes must give `part` back. Python's
    decoder ignores the unused low bits of the last character, so without this check
    one signature would have several spellings, and a token could be altered without
    touching the bytes that are verified.
    """
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        return None
    try:
        decoded = base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != part.encode("ascii"):
        return None
    return decoded


def _refuse_constant(name: str) -> Any:
    """`json` accepts NaN and ±Infinity, which are not JSON; refuse them like any other error."""
    raise ValueError("not a JSON constant")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse an object with a key twice: parsers disagree on which value wins, and the
    console must read a signed payload exactly as its issuer meant it."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _json_object(data: bytes) -> dict[str, Any] | None:
    """Strict UTF-8 JSON text → the object it holds, or None (not UTF-8, not JSON, not an object,
    a duplicate key, NaN/Infinity, too deep)."""
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _is_text(value: object, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _is_int(value: object, low: int, high: int) -> bool:
    # bool is a subclass of int, and `true` is not a number of uses.
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_name(value: object) -> bool:
    """1 to 20 characters. A lone surrogate (which JSON's \\ud800 escape can produce) is not a
    character and could not be sent back to the HIS as UTF-8."""
    if not isinstance(value, str) or not 1 <= len(value) <= 20:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_PAYLOAD_CHECKS: tuple[tuple[str, Any], ...] = (
    ("tokenId", lambda v: _is_text(v, _TOKEN_ID)),
    ("cardId", lambda v: _is_text(v, _CARD_ID)),
    ("name", _is_name),
    ("idNo", lambda v: _is_text(v, _ID_NO)),
    ("birthday", lambda v: _is_text(v, _ROC_DATE)),
    ("sex", lambda v: isinstance(v, str) and v in _SEXES),
    ("identityStatus", lambda v: isinstance(v, str) and v in _IDENTITY_STATUSES),
    ("hospitalId", lambda v: _is_text(v, _HOSPITAL_ID)),
    ("iat", lambda v: _is_int(v, 0, _MAX_EPOCH_SECONDS)),
    ("exp", lambda v: _is_int(v, 0, _MAX_EPOCH_SECONDS)),
    ("maxUses", lambda v: _is_int(v, 1, 1000)),
)
"""The payload's fields and their formats (the doc's table). Fields not listed are ignored: they
are signed, so they cannot be injected, and ignoring them lets the issuer add some later."""


def _structure_problem(header: dict[str, Any] | None, payload: dict[str, Any] | None) -> str | None:
    """The 1522 checks: None when both objects have the doc's shape, else a message naming
    only the part or the field (never a value)."""
    if header is None:
        return "the token's header is not a JSON object"
    if header.get("alg") != ALGORITHM:
        return "the token's header does not name the RS256 algorithm"
    if header.get("typ") != TOKEN_TYPE:
        return "the token's header does not name the NHI-VHC type"
    if payload is None:
        return "the token's payload is not a JSON object"
    for name, check in _PAYLOAD_CHECKS:
        if name not in payload:
            return f"the token's payload has no {name} field"
        if not check(payload[name]):
            return f"the token's payload field {name} is not of the expected type or format"
    if payload["exp"] <= payload["iat"]:
        return "the token's payload expires (exp) no later than it was issued (iat)"
    return None


def _signed_by_any(signed: bytes, signature: bytes, issuers: Sequence[rsa.RSAPublicKey]) -> bool:
    """RS256: RSASSA-PKCS1-v1_5 with SHA-256, by any one of `issuers`."""
    for issuer in issuers:
        try:
            issuer.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def verify_token(token: str, *, issuers: Sequence[rsa.RSAPublicKey], now: int) -> VirtualHcToken:
    """The token's payload if it is accepted at `now` (seconds since the epoch, the console's clock).

    Raises TokenRefused with the code of the first failed check, in the doc's order:
    1. 1520 (VIRTUAL_HC_TOKEN_MALFORMED): longer than MAX_TOKEN_LENGTH, not exactly
       three non-empty parts, or a part that is not canonical unpadded base64url;
    2. 1522 (VIRTUAL_HC_TOKEN_WRONG_STRUCTURE): the header is not
       `{"alg": "RS256", "typ": "NHI-VHC"}` or the payload is not the doc's object.
       Checked before the signature so that a token from an issuer speaking
       another format says so, rather than looking forged; neither parse trusts
       the content, so doing it first costs nothing;
    3. 1523 (VIRTUAL_HC_TOKEN_BAD_SIGNATURE): the signature, over the first two
       parts exactly as they appear, verifies with none of `issuers` (or there are none);
    4. 1524 (VIRTUAL_HC_TOKEN_EXPIRED): `exp <= now`; the expiry instant itself is past.

    1525 (uses counted by the DC) and 1521 (expiry while in use) are the callers'.
    `iat` in the future is not refused: the doc does not ask for it, and the
    issuer's clock may run ahead of the console's.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused(StatusCode.VIRTUAL_HC_TOKEN_MALFORMED, "the token is not a string of at most 8 KiB")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRefused(StatusCode.VIRTUAL_HC_TOKEN_MALFORMED, "the token does not have exactly three parts")
    decoded = [_b64url_decode(part) for part in parts]
    if any(item is None or not item for item in decoded):
        raise TokenRefused(
            StatusCode.VIRTUAL_HC_TOKEN_MALFORMED, "a part of the token is empty or not unpadded base64url"
        )
    header_bytes, payload_bytes, signature = (item or b"" for item in decoded)

    header = _json_object(header_bytes)
    payload = _json_object(payload_bytes) if header is not None else None
    problem = _structure_problem(header, payload)
    if problem is not None or payload is None:
        raise TokenRefused(StatusCode.VIRTUAL_HC_TOKEN_WRONG_STRUCTURE, problem or "the token's payload is invalid")

    signed = (parts[0] + "." + parts[1]).encode("ascii")  # ASCII: the parts matched [A-Za-z0-9_-]
    if not _signed_by_any(signed, signature, issuers):
        raise TokenRefused(
            StatusCode.VIRTUAL_HC_TOKEN_BAD_SIGNATURE,
            "the token's signature verifies with no trusted virtual card issuer"
            if issuers
            else "no virtual card issuer is configured, so no token can be verified",
        )

    if payload["exp"] <= now:
        raise TokenRefused(StatusCode.VIRTUAL_HC_TOKEN_EXPIRED, "the token has expired")

    return VirtualHcToken(
        token_id=payload["tokenId"],
        card_id=payload["cardId"],
        name=payload["name"],
        id_no=payload["idNo"],
        birthday=payload["birthday"],
        sex=payload["sex"],
        identity_status=payload["identityStatus"],
        hospital_id=payload["hospitalId"],
        issued_at=payload["iat"],
        expires_at=payload["exp"],
        max_uses=payload["maxUses"],
    )


def card_data(token: VirtualHcToken) -> dict[str, str | None]:
    """The spec's HC basic fields (api.resources.health_card.HC_BASIC_FIELDS) for a virtual card.

    `dateIssue` is None: a virtual card has no issue date on a chip, and the
    token does not carry one; inventing a date would tell the HIS something untrue.
    """
    return {
        "cardId": token.card_id,
        "name": token.name,
        "idNo": token.id_no,
        "birthday": token.birthday,
        "sex": token.sex,
        "dateIssue": None,
        "identityStatus": token.identity_status,
    }
