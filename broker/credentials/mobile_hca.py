"""Pure verification of a mobile HCA login (`POST /api/hpc/v1/Verification/MobiliHca`).

The mobile HCA app signs, with the staff member's certificate key, the text
`<certificate serial number in decimal><idNo><loginDateTime>` (contract.md,
"Field formats"). The console accepts the login only if that signature, the
certificate, the hospital and the time all check out; each failure has its
own status code so that the HIS can tell the user what to fix.

Pure: the caller passes `now` (the console's clock, which the bench can move),
the trust store and the CRLs; nothing here reads files, the network or the
clock, and nothing is logged (the body names a person).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from broker.credentials.hca_trust import TrustStore, check_certificate
from contract.commands import MobileHcaLogin
from contract.status_codes import StatusCode

LOGIN_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_LOGIN_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
"""[0-9], not \\d: \\d also matches non-ASCII digits, which strptime would then have to reject."""


def signed_text(serial_number: int, id_no: str, login_date_time: str) -> bytes:
    """What the mobile HCA app signs: serial number in decimal, idNo, loginDateTime, no separator.

    ASCII, because every part is ASCII by definition; a non-ASCII idNo or time
    raises ValueError (UnicodeEncodeError), which the verifier turns into a
    failed signature rather than guessing an encoding the signer never used.
    """
    if serial_number < 0:
        raise ValueError("a certificate serial number is never negative")
    return (str(serial_number) + id_no + login_date_time).encode("ascii")


def parse_login_time(text: str) -> datetime.datetime | None:
    """`YYYY-MM-DDTHH:MM:SSZ` exactly → an aware UTC datetime; anything else (other offsets,
    fractions, missing Z, impossible dates) → None.

    Strict on purpose: the text is part of what was signed, so there is one
    spelling of each moment and no room for a parser's leniency.
    """
    if not _LOGIN_TIME.fullmatch(text):
        return None
    try:
        parsed = datetime.datetime.strptime(text, LOGIN_TIME_FORMAT)
    except ValueError:
        return None
    return parsed.replace(tzinfo=datetime.UTC)


def _signed_by_holder(login: MobileHcaLogin) -> x509.Certificate | None:
    """The signature part of 1430: the certificate when it parses, has an RSA key, verifies the
    signature and names `id_no`; None otherwise."""
    try:
        certificate = x509.load_der_x509_certificate(login.certificate_der)
        public_key = certificate.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion):  # InvalidVersion: not a ValueError
        return None
    if not isinstance(public_key, rsa.RSAPublicKey):
        return None
    try:
        message = signed_text(certificate.serial_number, login.id_no, login.login_date_time)
        public_key.verify(login.signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return None
    # A valid signature by someone else's certificate must not log in as `id_no`: when the
    # certificate names its holder (subject serialNumber = idNo, as HCA staff certificates do),
    # every such attribute must name this one.
    try:
        holders = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    except ValueError:
        return None
    if not all(attribute.value == login.id_no for attribute in holders):
        return None
    return certificate


def verify_mobile_login(
    login: MobileHcaLogin,
    *,
    now: datetime.datetime,
    trust: TrustStore,
    crls: Sequence[x509.CertificateRevocationList],
    sam_hospital_id: str,
    window_seconds: float = 300,
    future_skew_seconds: float = 60,
) -> StatusCode | None:
    """None when the login is accepted; otherwise the code of the first failed check.

    The order is the issue's, and it matters for what the HIS is told:
    1. the signature (certificate parses, RSA key, SHA256withRSA PKCS#1 v1.5
       over `signed_text`, subject serialNumber = idNo) → else
       MOBILE_HCA_SIGNATURE_FAILED (1430). First, because nothing else in the
       body means anything until it is known to come from the certificate's holder;
    2. the certificate (`hca_trust.check_certificate`): validity 1422, issuer
       1423, revocation 1424 (fail closed when no CRL is available);
    3. the hospital: `hospitalId` must be the SAM's → else
       MOBILE_HCA_WRONG_HOSPITAL (1431);
    4. freshness: `loginDateTime` must parse and lie within `window_seconds`
       before `now` (the edge itself accepted) and at most
       `future_skew_seconds` after it (phone clocks run a little fast) → else
       HCA_SIGNATURE_STALE (1421). This bounds how long a captured body can be
       replayed.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    certificate = _signed_by_holder(login)
    if certificate is None:
        return StatusCode.MOBILE_HCA_SIGNATURE_FAILED
    problem = check_certificate(certificate, now=now, trust=trust, crls=crls)
    if problem is not None:
        return problem
    if login.hospital_id != sam_hospital_id:
        return StatusCode.MOBILE_HCA_WRONG_HOSPITAL
    moment = parse_login_time(login.login_date_time)
    if moment is None:
        return StatusCode.HCA_SIGNATURE_STALE
    age = (now - moment).total_seconds()
    if age > window_seconds or -age > future_skew_seconds:
        return StatusCode.HCA_SIGNATURE_STALE
    return None
