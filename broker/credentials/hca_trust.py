"""Pure checks of HCA (staff-card / mobile HCA) certificates: validity, issuer trust, revocation.

Why a small path builder of our own rather than cryptography's
`x509.verification`: that verifier enforces the web PKI's profile (it demands a
subjectAltName, checks EKUs for TLS, ...), which HCA staff certificates do not
follow, and it has no revocation checking at all. What the console needs is
narrow and answers in the spec's status codes, in the spec's order: validity
(1422), a trusted issuer (1423), revocation (1424). So the steps are done here,
each with the library's primitives (`verify_directly_issued_by`,
`is_signature_valid`), and every decision is a plain comparison that a test
can pin down.

Pure: no I/O, no clock (the caller passes `now`, so the bench's clock control
and the tests decide what "now" is), no logging. Error messages never quote
certificate content (names, serial numbers), since a staff certificate names a
person.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from contract.status_codes import StatusCode

MAX_PATH_LINKS = 4
"""Issuer links from the leaf to an anchor (leaf → CA is one link). HCA's real hierarchy is
root → issuing CA → staff certificate (2 links); 4 leaves room for a cross-certificate or a
policy CA without letting a crafted bundle send the search down long loops."""


def _require_aware(now: datetime.datetime) -> None:
    # Comparing a naive datetime with cryptography's aware `_utc` properties would raise a bare
    # TypeError deep inside a check; say what is wrong instead.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _valid_at(certificate: x509.Certificate, now: datetime.datetime) -> bool:
    """RFC 5280 §4.1.2.5: both bounds are inclusive."""
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def _basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        # A malformed or duplicated extension: such a certificate cannot be a CA we rely on.
        return None


def _is_ca(certificate: x509.Certificate) -> bool:
    constraints = _basic_constraints(certificate)
    return constraints is not None and constraints.ca


def _may_sign_certificates(certificate: x509.Certificate) -> bool:
    """A CA whose KeyUsage is present but lacks keyCertSign must not sign certificates (RFC 5280 §4.2.1.3)."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False
    return usage.key_cert_sign


def _directly_issued_by(subject: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name match and signature check, by the library; any failure, whatever its kind, is "no"."""
    try:
        subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_self_signed(certificate: x509.Certificate) -> bool:
    return certificate.subject == certificate.issuer and _directly_issued_by(certificate, certificate)


class TrustStore:
    """The CA certificates the console trusts for HCA: anchors (self-signed roots) and intermediates.

    Intermediates are not trusted by themselves: they only help build a path
    from a leaf to an anchor, because a staff certificate is signed by an
    issuing CA and the client sends the leaf alone.
    """

    def __init__(self, anchors: Iterable[x509.Certificate], intermediates: Iterable[x509.Certificate] = ()) -> None:
        self._anchors: tuple[x509.Certificate, ...] = tuple(anchors)
        self._intermediates: tuple[x509.Certificate, ...] = tuple(intermediates)
        self._anchor_set = frozenset(self._anchors)
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for certificate in (*self._anchors, *self._intermediates):
            self._by_subject.setdefault(certificate.subject, []).append(certificate)

    @classmethod
    def from_pem_bundle(cls, pem: bytes) -> TrustStore:
        """Every certificate of a PEM bundle: self-signed CA certificates become anchors, other CA
        certificates intermediates.

        Raises ValueError for an empty or unparsable bundle, and for a bundle
        holding a certificate that is not a CA: a leaf in a trust file is a
        configuration mistake, better refused at start than silently ignored.
        Messages give the certificate's position in the bundle, never its content.
        """
        try:
            certificates = x509.load_pem_x509_certificates(pem)
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
            raise ValueError("the HCA trust bundle holds no PEM certificate, or one that cannot be parsed") from None
        if not certificates:
            raise ValueError("the HCA trust bundle holds no certificate")
        anchors: list[x509.Certificate] = []
        intermediates: list[x509.Certificate] = []
        seen: set[x509.Certificate] = set()
        for position, certificate in enumerate(certificates, start=1):
            if certificate in seen:
                continue  # the same certificate twice is harmless
            seen.add(certificate)
            if not _is_ca(certificate):
                raise ValueError(f"certificate #{position} of the HCA trust bundle is not a CA certificate")
            (anchors if _is_self_signed(certificate) else intermediates).append(certificate)
        if not anchors:
            # Without an anchor nothing could ever be trusted: every login would fail with 1423.
            raise ValueError("the HCA trust bundle holds no self-signed root certificate")
        return cls(anchors, intermediates)

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return self._anchors

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self._intermediates

    def is_anchor(self, certificate: x509.Certificate) -> bool:
        return certificate in self._anchor_set

    def candidates_for(self, issuer_name: x509.Name) -> Sequence[x509.Certificate]:
        """Every trusted CA certificate whose subject is `issuer_name` (several after a key rollover)."""
        return self._by_subject.get(issuer_name, ())


def build_path(
    certificate: x509.Certificate, *, now: datetime.datetime, trust: TrustStore
) -> list[x509.Certificate] | None:
    """A path `[leaf, issuer, ..., anchor]`, or None when there is none.

    Depth-first over every candidate issuer (a CA may have several certificates
    under one name), at most `MAX_PATH_LINKS` links, never visiting a
    certificate twice. Each issuer must have signed the certificate below it,
    be a CA allowed to sign certificates, be valid at `now`, and respect its
    pathLenConstraint (the number of intermediate CAs below it).
    """
    _require_aware(now)

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        links = len(path)  # the link about to be added is number `links`
        if links > MAX_PATH_LINKS:
            return None
        child = path[-1]
        try:
            issuer_name = child.issuer  # parsed on first use: a malformed name raises ValueError here
        except ValueError:
            return None  # an unreadable issuer name leads to no issuer
        for issuer in trust.candidates_for(issuer_name):
            if issuer in path:
                continue
            constraints = _basic_constraints(issuer)
            if constraints is None or not constraints.ca:
                continue
            if constraints.path_length is not None and links - 1 > constraints.path_length:
                continue  # `links - 1` CA certificates sit between this issuer and the leaf
            if not _may_sign_certificates(issuer) or not _valid_at(issuer, now):
                continue
            if not _directly_issued_by(child, issuer):
                continue
            found = [*path, issuer]
            if trust.is_anchor(issuer):
                return found
            deeper = extend(found)
            if deeper is not None:
                return deeper
        return None

    return extend([certificate])


def _crl_usable(crl: x509.CertificateRevocationList, issuer: x509.Certificate, now: datetime.datetime) -> bool:
    """Issued under the leaf's issuer name, signed by that issuer's key, and current at `now`.

    A CRL without nextUpdate (RFC 5280 requires one) cannot be shown to be
    current, so it is not used either. thisUpdate is deliberately not compared
    with `now`: a CRL fetched moments after issue by a machine whose clock is a
    few seconds slow would otherwise refuse every login.
    """
    if crl.issuer != issuer.subject:
        return False
    next_update = crl.next_update_utc
    if next_update is None or next_update < now:
        return False
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]  # any key type: the ones a CRL cannot be signed with raise TypeError, caught below
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def check_certificate(
    certificate: x509.Certificate,
    *,
    now: datetime.datetime,
    trust: TrustStore,
    crls: Sequence[x509.CertificateRevocationList],
) -> StatusCode | None:
    """None when `certificate` is acceptable at `now`; otherwise the spec's code for the first failure.

    In the spec's order:
    1. the certificate's validity period must include `now` → else
       CERTIFICATE_NOT_VALID_NOW (1422);
    2. a path must lead from it to an anchor of `trust` (see `build_path`) →
       else CERTIFICATE_ISSUER_UNTRUSTED (1423);
    3. revocation, against the CRLs issued under the certificate's issuer name
       AND signed with the key of the issuer found in step 2 (a CRL signed by
       any other key is ignored, so nobody can forge an empty list) and current
       at `now` (nextUpdate not passed): if the serial number is on one →
       CERTIFICATE_REVOKED (1424).

       Fail closed: when no usable CRL for the issuer is available (none
       given, all stale, all badly signed), the revocation status is unknown
       and the answer is also 1424. A revoked staff certificate accepted
       because a CRL download failed would be worse than a login refused until
       the CRL is refreshed; the refusal is visible and fixable, the acceptance
       is neither.

    Only the leaf's revocation is checked: the intermediates come from the
    console's own trust file, which is the place to withdraw one.
    """
    _require_aware(now)
    if not _valid_at(certificate, now):
        return StatusCode.CERTIFICATE_NOT_VALID_NOW
    path = build_path(certificate, now=now, trust=trust)
    if path is None:
        return StatusCode.CERTIFICATE_ISSUER_UNTRUSTED
    issuer = path[1]
    usable = [crl for crl in crls if _crl_usable(crl, issuer, now)]
    if not usable:
        return StatusCode.CERTIFICATE_REVOKED
    serial = certificate.serial_number
    if any(crl.get_revoked_certificate_by_serial_number(serial) is not None for crl in usable):
        return StatusCode.CERTIFICATE_REVOKED
    return None
