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
        try:
            key = serialization.load_pem_private_key(state.vhc_issuer_key.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate(state.vhc_issuer_cert.read_bytes())
        except (OSError, ValueError, TypeError):
            return None
        if not isinstance(key, rsa.RSAPrivateKey) or certificate.public_key() != key.public_key():
            return None
        return cls(certificate, key)

    @classmethod
    def ensure(cls, state: StateDir) -> VhcIssuer:
        """Load the issuer, making a new one (key 0600 first, then the certificate 0644) if there is none that works."""
        existing = cls.load(state)
        if existing is not None:
            return existing
        key, certificate = make_issuer()
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_file(state.vhc_issuer_key, key_pem, 0o600)
        write_file(state.vhc_issuer_cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        return cls(certificate, key)
