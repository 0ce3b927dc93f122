"""The bench's test PKI: what the console's chain, expiry and revocation checks will be tested against."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from sim import pki
from sim.pki import bench_pki
from sim.profiles import PROFILES, StaffCardData

NOW = datetime.datetime.now(datetime.UTC)
STAFF = [name for name, profile in PROFILES.items() if profile.kind == "hpc"]
ISSUED_BY_HCA = [
    name
    for name, profile in PROFILES.items()
    if isinstance(profile.data, StaffCardData) and profile.data.certificate != "untrusted"
]
VALID = ["hpc-doctor", "hpc-nurse", "hpc-blocked"]


def staff_data(name: str) -> StaffCardData:
    data = PROFILES[name].data
    assert isinstance(data, StaffCardData)
    return data


def client_verifier(at: datetime.datetime = NOW) -> ClientVerifier:
    """cryptography's RFC 5280 path validation, trusting only the HCA test root.

    Staff certificates name a person, not a host, so the web PKI's demand for a
    subjectAltName is relaxed; everything else is the library's default.
    """
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    return (
        PolicyBuilder()
        .store(Store([bench_pki().root.certificate]))
        .time(at)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_client_verifier()
    )


def test_built_once_per_process() -> None:
    assert bench_pki() is bench_pki()


def test_fixed_keys_are_sound_rsa_2048() -> None:
    """The keys skip OpenSSL's check when the bench loads them; it is done here, once."""
    for label, (p_hex, q_hex) in pki._FIXED_PRIMES.items():  # noqa: SLF001 - the bench keys checked once here
        p, q = int(p_hex, 16), int(q_hex, 16)
        assert p != q
        key = pki._fixed_key(label)  # noqa: SLF001 - see above
        assert key.key_size == 2048 and key.public_key().public_numbers().n == p * q
        # Full validation (primality, consistency) through OpenSSL:
        key.private_numbers().private_key()
    assert set(STAFF) <= set(pki._FIXED_PRIMES), "every contract staff profile has a fixed key"  # noqa: SLF001


def test_the_cas() -> None:
    bench = bench_pki()
    root, issuing = bench.root.certificate, bench.issuing_ca.certificate
    root.verify_directly_issued_by(root)
    issuing.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert issuing.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    for authority in (bench.root, bench.issuing_ca, bench.untrusted_root):
        assert authority.key.key_size == 2048
        assert authority.certificate.public_key() == authority.key.public_key()
        assert authority.certificate.not_valid_before_utc < NOW < authority.certificate.not_valid_after_utc
    assert bench.untrusted_root.certificate.subject != root.subject
    assert x509.load_pem_x509_certificate(bench.trust_store_pem()) == root
    assert x509.load_pem_x509_certificate(bench.issuing_ca_pem()) == issuing


@pytest.mark.parametrize("name", STAFF)
def test_every_staff_profile_has_an_rsa_2048_key_and_certificate_naming_the_person(name: str) -> None:
    key, certificate = bench_pki().staff[name]
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert certificate.public_key() == key.public_key()
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == staff_data(name).id_no
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == staff_data(name).c_name
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature


def test_serial_numbers_are_distinct() -> None:
    bench = bench_pki()
    serials = [c.serial_number for _, c in bench.staff.values()]
    serials += [bench.root.certificate.serial_number, bench.issuing_ca.certificate.serial_number]
    assert len(set(serials)) == len(serials)


@pytest.mark.parametrize("name", ISSUED_BY_HCA)
def test_hca_issued_certificates_chain_to_the_issuing_ca_and_root(name: str) -> None:
    bench = bench_pki()
    certificate = bench.staff[name].certificate
    certificate.verify_directly_issued_by(bench.issuing_ca.certificate)
    assert certificate.issuer == bench.issuing_ca.certificate.subject


@pytest.mark.parametrize("name", VALID + ["hpc-revoked"])
def test_valid_certificates_pass_path_validation(name: str) -> None:
    """hpc-revoked passes too: only the CRL says otherwise, which is what the console must check."""
    bench = bench_pki()
    certificate = bench.staff[name].certificate
    assert certificate.not_valid_before_utc < NOW < certificate.not_valid_after_utc
    chain = client_verifier().verify(certificate, [bench.issuing_ca.certificate]).chain
    assert chain == [certificate, bench.issuing_ca.certificate, bench.root.certificate]


def test_the_expired_certificate_is_expired() -> None:
    bench = bench_pki()
    certificate = bench.staff["hpc-expired"].certificate
    assert certificate.not_valid_after_utc < NOW
    with pytest.raises(VerificationError):
        client_verifier().verify(certificate, [bench.issuing_ca.certificate])
    during = certificate.not_valid_before_utc + datetime.timedelta(days=1)
    client_verifier(during).verify(certificate, [bench.issuing_ca.certificate])


def test_the_crl_lists_the_revoked_serial_and_only_it() -> None:
    bench = bench_pki()
    crl = bench.crl
    assert crl.issuer == bench.issuing_ca.certificate.subject
    assert crl.is_signature_valid(bench.issuing_ca.key.public_key())
    assert crl.next_update_utc is not None and crl.last_update_utc < NOW < crl.next_update_utc
    revoked = bench.staff["hpc-revoked"].certificate.serial_number
    entry = crl.get_revoked_certificate_by_serial_number(revoked)
    assert entry is not None and entry.revocation_date_utc < NOW
    for name in STAFF:
        if name != "hpc-revoked":
            assert crl.get_revoked_certificate_by_serial_number(bench.staff[name].certificate.serial_number) is None
    assert len(list(crl)) == 1


def test_the_untrusted_certificate_does_not_chain_to_the_hca_root() -> None:
    bench = bench_pki()
    certificate = bench.staff["hpc-untrusted"].certificate
    certificate.verify_directly_issued_by(bench.untrusted_root.certificate)
    assert certificate.issuer == bench.untrusted_root.certificate.subject
    for authority in (bench.issuing_ca.certificate, bench.root.certificate):
        with pytest.raises(ValueError):  # the issuer's name is not the certificate's issuer
            certificate.verify_directly_issued_by(authority)
    with pytest.raises(VerificationError):
        client_verifier().verify(certificate, [bench.issuing_ca.certificate, bench.untrusted_root.certificate])


def _fingerprint() -> str:
    bench = bench_pki()
    parts = [bench.root.certificate, bench.issuing_ca.certificate, bench.untrusted_root.certificate]
    parts += [certificate for _, certificate in bench.staff.values()]
    digest = hashlib.sha256()
    for certificate in parts:
        digest.update(certificate.public_bytes(serialization.Encoding.DER))
    digest.update(bench.crl.public_bytes(serialization.Encoding.DER))
    return digest.hexdigest()


def test_every_process_builds_the_same_pki() -> None:
    """The console's trust store, the cards in the reader workers and the control API live in
    different processes: they must agree on every byte."""
    root = Path(__file__).resolve().parents[2]
    code = "from tests.unit.test_sim_pki import _fingerprint; print(_fingerprint())"
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert other == _fingerprint()
