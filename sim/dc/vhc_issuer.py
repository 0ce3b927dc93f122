"""The DC simulator's virtual health card issuer: the key that signs the bench's virtual card tokens.

Why the DC simulator holds it: in the real system the NHI issues virtual
cards; on the bench the DC simulator plays the NHI, so its bench control
`POST /sim/v1/VirtualHc/Token` signs tokens (docs/virtual-hc-token.md) with
this key, and the console trusts `DIR/vhc-issuer.pem` (`serve --vhc-issuer`).
Made once by `prepare` (`sim.virtual_hc.make_issuer`): a new key would make
every token issued before refused as forged (1523).

The key (`DIR/vhc-issuer.key`, 0600) never leaves the state dir: nothing here
logs, and no exception carries a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sim.dc.state import StateDir, write_file
from sim.virtual_hc import make_issuer


@dataclass(frozen=True)
class VhcIssuer:
    """The issuer's key and certificate."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def load(cls, state: StateDir) -> VhcIssuer | None:
        """The issuer in the state dir, or None if a file is missing, unreadable or the two do not match."""
        pair = load_key_pair(state.vhc_issuer_key, state.vhc_issuer_cert)
        return None if pair is None else cls(pair[1], pair[0])

    @classmethod
    def ensure(cls, state: StateDir) -> VhcIssuer:
        """Load the issuer, making a new one (key 0600 first, then the certificate 0644) if there is none that works."""
        key, certificate = ensure_key_pair(state.vhc_issuer_key, state.vhc_issuer_cert)
        return cls(certificate, key)


def load_key_pair(key_path: Path, cert_path: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate] | None:
    """An RSA key and its certificate, or None if a file is missing, unreadable or the two do not match."""
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPrivateKey) or certificate.public_key() != key.public_key():
        return None
    return key, certificate


def ensure_key_pair(
    key_path: Path, cert_path: Path, common_name: str | None = None
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Load the pair, or make a new one (`sim.virtual_hc.make_issuer`; key 0600 first, then the certificate 0644).

    Apart from `VhcIssuer` so the bench's other signer (the web-API twin's, sim/web_api) follows the same rule.
    """
    existing = load_key_pair(key_path, cert_path)
    if existing is not None:
        return existing
    key, certificate = make_issuer() if common_name is None else make_issuer(common_name)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_file(key_path, key_pem, 0o600)
    write_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return key, certificate
