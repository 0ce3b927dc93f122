"""Issuing cloud SAM files (format `nhi-console-sim-sam/1`, docs/dc-protocol.md) from the simulator's SAM CA.

Why a CA of its own: the DC verifies a SAM's login signature with the
certificate it issued, the way a real DC would know its SAMs; the SAM CA's key
(`DIR/sam-ca.key`, 0600) is made once by `prepare` and signs every SAM's
certificate afterwards. Every issued file is checked with the console's own
parser before it leaves, so the simulator can never hand out a file the
console refuses.

A SAM file holds a private key: nothing here logs, and no exception carries a value.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from broker.credentials.cloud_sam_file import FORMAT, MAGIC, parse_cloud_sam_file
from sim.dc.state import Contract, DcState, StateDir, write_file

SAM_CERT_VALIDITY = datetime.timedelta(days=50 * 366)
"""Beyond anything the bench's clock can reach: a SAM's certificate is not what the bench tests expiry with."""
_BACKDATE = datetime.timedelta(days=1)
DEFAULT_HOSPITAL_NAME = "測試機構"


@dataclass(frozen=True)
class SamCa:
    """The simulator's SAM CA: its certificate and its key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def ensure(cls, state: StateDir) -> SamCa:
        """Load the SAM CA, creating it (key 0600, then certificate) the first time."""
        if state.sam_ca_cert.is_file() and state.sam_ca_key.is_file():
            key = serialization.load_pem_private_key(state.sam_ca_key.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError("the SAM CA key is not an EC key")
            return cls(x509.load_pem_x509_certificate(state.sam_ca_cert.read_bytes()), key)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhi-console bench"),
                x509.NameAttribute(NameOID.COMMON_NAME, "DC simulator SAM CA"),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + SAM_CERT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_file(state.sam_ca_key, key_pem, 0o600)
        write_file(state.sam_ca_cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        return cls(certificate, key)


@dataclass(frozen=True)
class IssuedSam:
    file_bytes: bytes = field(repr=False)
    certificate_pem: str


def build_sam_file(ca: SamCa, sam_id: str, hospital_id: str, hospital_name: str) -> IssuedSam:
    """A new RSA-2048 key, its certificate (CN = samId) from the SAM CA, and the file's bytes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sam_id)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + SAM_CERT_VALIDITY, ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    document = {
        "format": FORMAT,
        "samId": sam_id,
        "hospitalId": hospital_id,
        "hospitalName": hospital_name,
        "hospitalShortName": hospital_name,
        "privateKey": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii"),
        "certificate": certificate_pem,
    }
    file_bytes = MAGIC + json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
    parse_cloud_sam_file(file_bytes)  # the console's own check: never issue a file it would refuse
    return IssuedSam(file_bytes, certificate_pem)


def issue_cloud_sam(
    state: DcState, ca: SamCa, sam_id: str, hospital_id: str, hospital_name: str | None, contract: Contract
) -> bytes:
    """Issue a SAM file for a hospital and register both with the DC in the contract state asked for.

    The hospital is created if new (named `測試機構` unless a name is given)
    and keeps its name if none is given. Reissuing a samId replaces its key
    and certificate (`DcState.register_sam`). Returns the file's bytes.
    """
    if hospital_name is None:
        existing = state.hospital(hospital_id)
        hospital_name = existing.name if existing is not None else DEFAULT_HOSPITAL_NAME
    issued = build_sam_file(ca, sam_id, hospital_id, hospital_name)
    state.register_sam(sam_id, hospital_id, hospital_name, contract, issued.certificate_pem)
    return issued.file_bytes
