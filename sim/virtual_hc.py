"""The bench's virtual health card issuer: builds `NHI-VHC` tokens (docs/virtual-hc-token.md).

The DC simulator serves these (`POST /api/sim/v1/VirtualHc/Token`) so that HIS
developers and our tests can present a virtual card that no phone holds. The
token is signed exactly as the doc says, so the console's real verifier
(`broker.credentials.virtual_hc_token`) checks it with no bench special case.

`issue_token` signs whatever it is given, unchecked: an expired token, a
token for another hospital or one with an odd field must be producible too,
or the console's refusals could not be tested. (A payload the console would
refuse as 1522 is best built by hand; see the unit tests.)
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from broker.credentials.virtual_hc_token import ALGORITHM, TOKEN_TYPE
from sim.profiles import PROFILES, HealthCardData

CARD_FIELDS = ("cardId", "name", "idNo", "birthday", "sex", "identityStatus")
"""The card holder's fields of a token, in the API's names (the keys of `issue_token`'s `card`)."""

ISSUER_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
ISSUER_NOT_AFTER = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


def _b64url(data: bytes) -> str:
    """Unpadded base64url, the only spelling the console accepts."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_part(value: Mapping[str, object]) -> str:
    """Compact UTF-8 JSON (names stay readable Chinese rather than \\u escapes), then base64url."""
    return _b64url(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def issue_token(
    issuer_key: rsa.RSAPrivateKey,
    *,
    token_id: str,
    card: Mapping[str, str],
    hospital_id: str,
    issued_at: int,
    expires_at: int,
    max_uses: int,
) -> str:
    """A signed token `header.payload.signature` for the holder in `card` (keys CARD_FIELDS).

    RS256: RSASSA-PKCS1-v1_5 with SHA-256 over the ASCII of `header-part "." payload-part`.
    Raises KeyError when `card` lacks one of CARD_FIELDS (a token without a holder
    field is a bug in the caller, not a test case); extra keys of `card` are not copied.
    """
    payload = {
        "tokenId": token_id,
        **{name: card[name] for name in CARD_FIELDS},
        "hospitalId": hospital_id,
        "iat": issued_at,
        "exp": expires_at,
        "maxUses": max_uses,
    }
    signed = _json_part({"alg": ALGORITHM, "typ": TOKEN_TYPE}) + "." + _json_part(payload)
    signature = issuer_key.sign(signed.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signed + "." + _b64url(signature)


def card_of_profile(profile_name: str) -> dict[str, str]:
    """The token's card fields (CARD_FIELDS) for a health card profile of sim.profiles.

    Raises KeyError for an unknown profile (the control API's 404) and ValueError
    for a staff card profile (no health card holder; the control API's 400).
    The profile's PIN and issue date are not part of a virtual card.
    """
    profile = PROFILES[profile_name]
    data = profile.data
    if not isinstance(data, HealthCardData):
        raise ValueError(f"profile {profile_name!r} is a staff card, not a health card")
    return {
        "cardId": data.card_id,
        "name": data.name,
        "idNo": data.id_no,
        "birthday": data.birthday,
        "sex": data.sex,
        "identityStatus": data.identity_status,
    }


def new_token_id() -> str:
    """22 url-safe random characters (128 bits): a token id nobody can guess or collide with."""
    return secrets.token_urlsafe(16)


def make_issuer(
    common_name: str = "nhi-console bench virtual card issuer",
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A fresh RSA-2048 key and a self-signed certificate for it, valid 2020–2049.

    Fresh, not derived from a fixed seed like the HCA bench PKI: a virtual card
    issuer key is what makes a token a credential, so each bench gets its own
    (the DC simulator's `prepare` writes the certificate as `sim-dc/vhc-issuer.pem`
    for the console). The long validity is because the console trusts only the
    key and never checks the dates; they need merely be plausible. Slow (keygen):
    tests should make one per module.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ISSUER_NOT_BEFORE)
        .not_valid_after(ISSUER_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate
