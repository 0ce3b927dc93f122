"""HCA certificate checks against the bench PKI: validity 1422, issuer 1423, revocation 1424 (fail closed)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from broker.credentials.hca_trust import MAX_PATH_LINKS, TrustStore, build_path, check_certificate
from contract.status_codes import StatusCode
from sim import pki
from sim.pki import bench_pki

UTC = datetime.UTC
NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def bench_trust() -> TrustStore:
    """What the bench's trust file holds: the root and the issuing CA."""
    return TrustStore.from_pem_bundle(pem(bench_pki().root.certificate, bench_pki().issuing_ca.certificate))


def leaf(profile: str) -> x509.Certificate:
    return bench_pki().staff[profile].certificate


def check(
    profile: str,
    *,
    now: datetime.datetime = NOW,
    crls: list[x509.CertificateRevocationList] | None = None,
    trust: TrustStore | None = None,
) -> StatusCode | None:
    return check_certificate(
        leaf(profile),
        now=now,
        trust=trust if trust is not None else bench_trust(),
        crls=[bench_pki().crl] if crls is None else crls,
    )


def crl_by(
    signer: pki.KeyAndCertificate,
    *,
    issuer_name: x509.Name | None = None,
    last_update: datetime.datetime = pki.CRL_LAST_UPDATE,
    next_update: datetime.datetime = pki.CRL_NEXT_UPDATE,
    revoked: tuple[int, ...] = (),
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_name if issuer_name is not None else signer.certificate.subject)
        .last_update(last_update)
        .next_update(next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(pki.REVOCATION_DATE).build()
        )
    return builder.sign(signer.key, hashes.SHA256())


def reissued_ca(
    template: pki.KeyAndCertificate,
    signer: pki.KeyAndCertificate,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    ca: bool = True,
    path_length: int | None = 0,
) -> x509.Certificate:
    """Another certificate for the same CA name and key (as after a renewal), with other dates or constraints."""
    return (
        x509.CertificateBuilder()
        .subject_name(template.certificate.subject)
        .issuer_name(signer.certificate.subject)
        .public_key(template.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .sign(signer.key, hashes.SHA256())
    )


# --- the trust store -------------------------------------------------------------------------------


def test_bundle_sorts_anchors_and_intermediates() -> None:
    store = bench_trust()
    assert store.anchors == (bench_pki().root.certificate,)
    assert store.intermediates == (bench_pki().issuing_ca.certificate,)


def test_bundle_duplicates_are_harmless() -> None:
    store = TrustStore.from_pem_bundle(pem(bench_pki().root.certificate, bench_pki().root.certificate))
    assert store.anchors == (bench_pki().root.certificate,)
    assert store.intermediates == ()


@pytest.mark.parametrize(
    "bundle", [b"", b"   \n", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_empty_or_garbage_bundle_is_refused(bundle: bytes) -> None:
    with pytest.raises(ValueError, match="HCA trust bundle"):
        TrustStore.from_pem_bundle(bundle)


def test_bundle_with_a_leaf_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError, match="#2") as raised:
        TrustStore.from_pem_bundle(pem(bench_pki().root.certificate, leaf("hpc-doctor")))
    assert "E123456789" not in str(raised.value)
    assert "測試" not in str(raised.value)


def test_bundle_without_a_root_is_refused() -> None:
    with pytest.raises(ValueError, match="root"):
        TrustStore.from_pem_bundle(pem(bench_pki().issuing_ca.certificate))


# --- check_certificate -----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["hpc-doctor", "hpc-nurse", "hpc-blocked"])
def test_valid_certificates_are_accepted(profile: str) -> None:
    assert check(profile) is None


def test_expired_certificate() -> None:
    assert check("hpc-expired") == StatusCode.CERTIFICATE_NOT_VALID_NOW


def test_expired_certificate_was_fine_in_its_time() -> None:
    assert check("hpc-expired", now=datetime.datetime(2021, 6, 1, tzinfo=UTC)) is None


def test_not_yet_valid_certificate() -> None:
    before = pki.STAFF_NOT_BEFORE - datetime.timedelta(seconds=1)
    assert check("hpc-doctor", now=before) == StatusCode.CERTIFICATE_NOT_VALID_NOW
    assert check("hpc-doctor", now=pki.STAFF_NOT_BEFORE) is None  # both bounds inclusive


def test_untrusted_issuer() -> None:
    assert check("hpc-untrusted") == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED


def test_untrusted_issuer_is_reported_before_revocation() -> None:
    assert check("hpc-untrusted", crls=[]) == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED


def test_expiry_is_reported_before_trust() -> None:
    only_root = TrustStore.from_pem_bundle(pem(bench_pki().root.certificate))
    assert check("hpc-expired", trust=only_root, crls=[]) == StatusCode.CERTIFICATE_NOT_VALID_NOW


def test_revoked_certificate() -> None:
    assert check("hpc-revoked") == StatusCode.CERTIFICATE_REVOKED


def test_no_crl_fails_closed() -> None:
    assert check("hpc-doctor", crls=[]) == StatusCode.CERTIFICATE_REVOKED


def test_crl_signed_by_the_wrong_key_is_ignored() -> None:
    # Claims to come from the issuing CA, signed by the untrusted root's key, and lists nothing.
    forged = crl_by(bench_pki().untrusted_root, issuer_name=bench_pki().issuing_ca.certificate.subject)
    assert check("hpc-doctor", crls=[forged]) == StatusCode.CERTIFICATE_REVOKED
    assert check("hpc-doctor", crls=[forged, bench_pki().crl]) is None
    assert check("hpc-revoked", crls=[forged, bench_pki().crl]) == StatusCode.CERTIFICATE_REVOKED


def test_crl_of_another_issuer_is_ignored() -> None:
    other = crl_by(bench_pki().root)  # correctly signed, but by the root, which did not issue the leaf
    assert check("hpc-doctor", crls=[other]) == StatusCode.CERTIFICATE_REVOKED


def test_stale_crl_is_unavailable() -> None:
    stale = crl_by(
        bench_pki().issuing_ca,
        last_update=datetime.datetime(2024, 1, 1, tzinfo=UTC),
        next_update=datetime.datetime(2024, 2, 1, tzinfo=UTC),
    )
    assert check("hpc-doctor", crls=[stale]) == StatusCode.CERTIFICATE_REVOKED
    assert check("hpc-doctor", crls=[stale, bench_pki().crl]) is None


def test_crl_is_usable_up_to_its_next_update() -> None:
    next_update = datetime.datetime(2025, 6, 1, tzinfo=UTC)
    crl = crl_by(bench_pki().issuing_ca, next_update=next_update)
    assert check("hpc-doctor", now=next_update, crls=[crl]) is None
    late = next_update + datetime.timedelta(seconds=1)
    assert check("hpc-doctor", now=late, crls=[crl]) == StatusCode.CERTIFICATE_REVOKED


def test_a_fresh_crl_of_our_own_revokes() -> None:
    serial = leaf("hpc-nurse").serial_number
    own = crl_by(bench_pki().issuing_ca, revoked=(serial,))
    assert check("hpc-nurse", crls=[own]) == StatusCode.CERTIFICATE_REVOKED
    assert check("hpc-doctor", crls=[own]) is None


def test_path_needs_the_issuing_ca_in_the_bundle() -> None:
    only_root = TrustStore.from_pem_bundle(bench_pki().trust_store_pem())
    assert check("hpc-doctor", trust=only_root) == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED
    assert check("hpc-doctor", trust=bench_trust()) is None


def test_the_issuing_ca_alone_is_no_anchor() -> None:
    # An intermediate is only a stepping stone: without the root, nothing is trusted.
    store = TrustStore([], [bench_pki().issuing_ca.certificate])
    assert check("hpc-doctor", trust=store) == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED


def test_trusting_the_untrusted_root_makes_its_leaf_trusted() -> None:
    store = TrustStore.from_pem_bundle(pem(bench_pki().untrusted_root.certificate))
    # Trusted now; its root issued no CRL, so revocation status is unknown: fail closed.
    assert check("hpc-untrusted", trust=store, crls=[]) == StatusCode.CERTIFICATE_REVOKED
    assert check("hpc-untrusted", trust=store, crls=[crl_by(bench_pki().untrusted_root)]) is None


def test_build_path_returns_the_chain() -> None:
    path = build_path(leaf("hpc-doctor"), now=NOW, trust=bench_trust())
    assert path == [leaf("hpc-doctor"), bench_pki().issuing_ca.certificate, bench_pki().root.certificate]


def test_expired_intermediate_is_skipped_for_a_valid_one_of_the_same_name() -> None:
    expired_ca = reissued_ca(
        bench_pki().issuing_ca,
        bench_pki().root,
        not_before=datetime.datetime(2015, 1, 1, tzinfo=UTC),
        not_after=datetime.datetime(2020, 1, 1, tzinfo=UTC),
    )
    root = bench_pki().root.certificate
    only_expired = TrustStore([root], [expired_ca])
    assert check("hpc-doctor", trust=only_expired) == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED
    both = TrustStore([root], [expired_ca, bench_pki().issuing_ca.certificate])
    assert check("hpc-doctor", trust=both) is None


def test_issuer_that_is_not_a_ca_is_not_used() -> None:
    not_ca = reissued_ca(
        bench_pki().issuing_ca,
        bench_pki().root,
        not_before=pki.CA_NOT_BEFORE,
        not_after=pki.CA_NOT_AFTER,
        ca=False,
    )
    store = TrustStore([bench_pki().root.certificate], [not_ca])
    assert check("hpc-doctor", trust=store) == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED


def test_path_length_constraint_is_honoured() -> None:
    # An extra CA between the issuing CA and the root: the issuing CA (pathLen 0) stays directly
    # above the leaf, so it is fine, but a middle CA with pathLen 0 cannot have a CA below it.
    root = bench_pki().root
    middle_key = bench_pki().untrusted_root.key  # any fixed key will do
    middle_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Middle CA")])

    def middle(path_length: int | None) -> pki.KeyAndCertificate:
        certificate = (
            x509.CertificateBuilder()
            .subject_name(middle_name)
            .issuer_name(root.certificate.subject)
            .public_key(middle_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(pki.CA_NOT_BEFORE)
            .not_valid_after(pki.CA_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .sign(root.key, hashes.SHA256())
        )
        return pki.KeyAndCertificate(middle_key, certificate)

    def store(path_length: int | None) -> TrustStore:
        m = middle(path_length)
        issuing = reissued_ca(bench_pki().issuing_ca, m, not_before=pki.CA_NOT_BEFORE, not_after=pki.CA_NOT_AFTER)
        return TrustStore([root.certificate], [m.certificate, issuing])

    assert check("hpc-doctor", trust=store(0)) == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED
    assert check("hpc-doctor", trust=store(1)) is None
    assert check("hpc-doctor", trust=store(None)) is None


def test_path_length_is_bounded() -> None:
    assert MAX_PATH_LINKS == 4
    # A chain of CAs, each signed by the next: root → c1 → c2 → ... → issuing CA → leaf.
    root = bench_pki().root
    keys = [bench_pki().untrusted_root.key, bench_pki().issuing_ca.key, bench_pki().root.key]

    def chain(extra: int) -> TrustStore:
        signer = root
        intermediates: list[x509.Certificate] = []
        for i in range(extra):
            key = keys[i % len(keys)]
            name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"Chain CA {i}")])
            certificate = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(signer.certificate.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(pki.CA_NOT_BEFORE)
                .not_valid_after(pki.CA_NOT_AFTER)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(signer.key, hashes.SHA256())
            )
            intermediates.append(certificate)
            signer = pki.KeyAndCertificate(key, certificate)
        issuing = reissued_ca(bench_pki().issuing_ca, signer, not_before=pki.CA_NOT_BEFORE, not_after=pki.CA_NOT_AFTER)
        return TrustStore([root.certificate], [*intermediates, issuing])

    # leaf → issuing → (extra CAs) → root: 2 + extra links.
    assert check("hpc-doctor", trust=chain(2)) is None  # 4 links
    assert check("hpc-doctor", trust=chain(3)) == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED  # 5 links


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        check("hpc-doctor", now=datetime.datetime(2025, 3, 1))
