"""The DC simulator's own TLS: a self-signed CA and a server certificate for the loopback names.

Why its own CA: the console's DC client verifies the server like it would the
real DC's, so the bench needs a CA the client can be told to trust
(`DIR/ca.pem`) without trusting anything else. The CA is name-constrained to
`localhost`, `127.0.0.1` and `::1` (it cannot vouch for a real site), its key
is never written (it signs the one server certificate and is dropped), and
the files are created once: a new CA would break clients that trust the old.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sim.dc.state import StateDir, write_file

VALIDITY = datetime.timedelta(days=3650)
"""Long: the bench's state may live a long time; only real (not DC) time matters to TLS."""
_BACKDATE = datetime.timedelta(hours=1)
_DNS_NAMES = ("localhost",)
_IP_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))

_KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _key_usage(*allowed: str) -> x509.KeyUsage:
    return x509.KeyUsage(**{name: name in allowed for name in _KEY_USAGE_FIELDS})


def ensure_tls(state: StateDir) -> None:
    """Create `ca.pem`, `server.pem` and `server.key` (0600) unless all three are already there."""
    ensure_tls_files(state.ca_cert, state.server_cert, state.server_key, "DC simulator TLS CA")


def ensure_tls_files(ca_cert: Path, server_cert: Path, server_key: Path, ca_common_name: str) -> None:
    """A loopback CA (named `ca_common_name`) and its one server certificate, unless all three files are there.

    Apart from `ensure_tls` so another bench server (the web-API twin, sim/web_api) gets a CA of its own by the
    same rules.
    """
    if ca_cert.is_file() and server_cert.is_file() and server_key.is_file():
        return
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - _BACKDATE, now + VALIDITY
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhi-console bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(ca_ski, critical=False)
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(name) for name in _DNS_NAMES]
                + [x509.IPAddress(ipaddress.ip_network(address)) for address in _IP_ADDRESSES],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in _DNS_NAMES] + [x509.IPAddress(address) for address in _IP_ADDRESSES]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The CA last: its presence is what says "the set is complete" to the next run.
    write_file(server_key, key_pem, 0o600)
    write_file(server_cert, server.public_bytes(serialization.Encoding.PEM) + ca_pem, 0o644)
    write_file(ca_cert, ca_pem, 0o644)


def server_context(state: StateDir) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 or later, this state dir's certificate."""
    return server_context_of(state.server_cert, state.server_key)


def server_context_of(server_cert: Path, server_key: Path) -> ssl.SSLContext:
    """A server TLS context: TLS 1.2 or later, that certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(server_cert, server_key)
    return context


def client_context(state_dir: Path) -> ssl.SSLContext:
    """A client context that trusts this simulator's CA (`DIR/ca.pem`) and nothing else."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(StateDir(Path(state_dir)).ca_cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context
