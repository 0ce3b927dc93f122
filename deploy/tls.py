"""The console's own little certificate authority for https://localhost:5066.

Browsers and the HIS clients talk to the console over HTTPS on the loopback
interface, so the console needs a certificate that a client can trust without
a public CA (none will issue one for ``localhost``).  We therefore mint a
private CA per installation, which the user imports into the trust store once
(see :func:`export_ca`), and a server certificate signed by it.

Security choices, and why:

* **The CA's private key is never written anywhere.**  It lives in memory only
  while the server certificate is signed and is then dropped.  A CA that sits
  in a user's trust store is a powerful object; a key that does not exist
  cannot be stolen.  The price: the CA can sign exactly one server
  certificate, so *a new server certificate always comes with a new CA*, and
  the user has to trust the new CA again (every 825 days, or whenever the
  files are lost or damaged).
* **The CA is name-constrained** (critical NameConstraints) to ``localhost``,
  ``127.0.0.1/32`` and ``::1/128``.  Even if the CA were somehow abused, it
  could not vouch for any real site.
* The CA subject carries the host name and a random serial number so that CAs
  of two installations can be told apart in a trust store.
* 825 days is the longest lifetime Apple platforms accept for a TLS server
  certificate; the server certificate never outlives its CA.
* Files are written atomically (temporary file + :func:`os.replace`) so that a
  crash never leaves a half-written PEM, and the server key is created with
  mode 0600 from the first byte, never loosened and tightened afterwards.

Only :mod:`cryptography` and the standard library are used.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import secrets
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eventlog.durable_files import fsync_directory

try:  # POSIX only; on other platforms concurrent first starts are not serialised.
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]  # the module is missing there; every use checks for None

__all__ = [
    "CA_COMMON_NAME",
    "EXPORT_FILENAME",
    "RENEW_BEFORE",
    "VALIDITY",
    "TlsFiles",
    "ensure_certificates",
    "renew_certificates",
    "export_ca",
    "ssl_context_for_clients",
]

CA_COMMON_NAME = "nhi-console local CA"
SERVER_COMMON_NAME = "localhost"
EXPORT_FILENAME = "nhi-console-ca.pem"

#: Apple's ceiling for TLS server certificates; a longer one would be refused.
VALIDITY = _dt.timedelta(days=825)
#: Backdating absorbs small clock differences between processes / machines.
BACKDATE = _dt.timedelta(hours=1)
#: Renew early enough that a user sees the "trust the new CA" step coming.
RENEW_BEFORE = _dt.timedelta(days=30)

_TLS_DIRNAME = "tls"
_CA_FILENAME = "ca.pem"
_SERVER_CERT_FILENAME = "server.pem"
_SERVER_KEY_FILENAME = "server-key.pem"
_LOCK_FILENAME = ".lock"

_DIR_MODE = 0o700
_KEY_MODE = 0o600
_CERT_MODE = 0o644

#: The only names the CA may ever vouch for.
PERMITTED_DNS = ("localhost",)
PERMITTED_NETWORKS = (
    ipaddress.ip_network("127.0.0.1/32"),
    ipaddress.ip_network("::1/128"),
)
_SERVER_IPS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))

# X.520 caps a DN attribute at 64 characters; a longer host name must not make
# certificate generation fail.
_MAX_ATTR_LEN = 64


@dataclass(frozen=True)
class TlsFiles:
    """Where the server and its clients find the TLS material.

    Paths rather than loaded objects, because the consumers (gunicorn's
    ``certfile``/``keyfile``, ``ssl.SSLContext.load_verify_locations``, the
    installer that imports the CA) all want file names.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_dir(cls, data_dir: Path) -> TlsFiles:
        """One place that knows the layout, so callers never build paths themselves."""
        tls_dir = Path(data_dir) / _TLS_DIRNAME
        return cls(
            ca_cert=tls_dir / _CA_FILENAME,
            server_cert=tls_dir / _SERVER_CERT_FILENAME,
            server_key=tls_dir / _SERVER_KEY_FILENAME,
        )

    @property
    def directory(self) -> Path:
        return self.ca_cert.parent


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def ensure_certificates(data_dir: Path, now: _dt.datetime | None = None) -> TlsFiles:
    """Return usable TLS files, minting a new CA + server certificate only if needed.

    Reusing valid files matters: every regeneration means a new CA that the
    user must trust again, so we only regenerate when the existing set is
    missing, damaged, inconsistent, exposed (key readable by others) or
    expires within :data:`RENEW_BEFORE`.

    ``now`` exists so tests (and a clock-skewed operator) can ask "would this
    still be valid then?" without waiting two years.
    """
    moment = _utc(now)
    files = TlsFiles.in_dir(data_dir)
    _make_private_dir(files.directory)
    with _exclusive_lock(files.directory / _LOCK_FILENAME):
        # Checked under the lock: another process may have just renewed them.
        if _existing_files_usable(files, moment):
            return files
        _generate(files, moment)
    return files


def renew_certificates(data_dir: Path, now: _dt.datetime | None = None) -> TlsFiles:
    """A new CA and server certificate now, whatever the state of the old ones (`nhi-console cert --renew`).

    The old CA's key is long gone, so renewing is always a new CA: every store that trusted the old one must be
    given the new one (deploy/trust.py), and the running console restarted to serve it.
    """
    files = TlsFiles.in_dir(data_dir)
    _make_private_dir(files.directory)
    with _exclusive_lock(files.directory / _LOCK_FILENAME):
        _generate(files, _utc(now))
    return files


def export_ca(data_dir: Path, destination: Path) -> Path:
    """Copy the CA certificate out for the user to import into a trust store.

    Only the certificate is ever exported (there is no CA key to leak).  A
    directory destination receives :data:`EXPORT_FILENAME`, so ``export ~/Desktop``
    does the obvious thing.
    """
    files = ensure_certificates(data_dir)
    destination = Path(destination)
    target = destination / EXPORT_FILENAME if destination.is_dir() else destination
    _atomic_write(target, files.ca_cert.read_bytes(), _CERT_MODE)
    return target


def ssl_context_for_clients(data_dir: Path) -> ssl.SSLContext:
    """A client context that trusts this installation's CA and nothing else.

    Deliberately does *not* call :func:`ensure_certificates`: a client (e.g.
    ``nhi-console status``) that renewed the files would hand itself a CA the
    already-running server does not use, and then report a bogus failure.  A
    missing CA file raises :class:`FileNotFoundError`.

    Strict X.509 checking is switched on so that our certificates keep passing
    the stricter defaults of newer Python/OpenSSL releases.
    """
    ca_file = TlsFiles.in_dir(data_dir).ca_cert
    if not ca_file.is_file():
        raise FileNotFoundError(f"no CA certificate at {ca_file}")
    # With cafile given, create_default_context does not load the system store.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


# --------------------------------------------------------------------------- #
# Validation of existing files
# --------------------------------------------------------------------------- #


def _existing_files_usable(files: TlsFiles, now: _dt.datetime) -> bool:
    """True only if the whole set can be served as is; any doubt means regenerate."""
    try:
        if not _key_file_private(files.server_key):
            return False
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        chain = x509.load_pem_x509_certificates(files.server_cert.read_bytes())
        key = serialization.load_pem_private_key(files.server_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False

    leaf = chain[0]
    if chain[1:] != [ca]:  # clients must get the very CA the user trusted
        return False
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return False
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        return False
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    for cert in (leaf, ca):
        if cert.not_valid_before_utc > now:
            return False
        if cert.not_valid_after_utc - now <= RENEW_BEFORE:
            return False
    return True


def _key_file_private(path: Path) -> bool:
    """A key that others could have read is treated as compromised.

    On platforms without POSIX modes (Windows) the check is meaningless and
    always passes; the data directory's ACL has to protect the key there.
    """
    if os.name != "posix":  # pragma: no cover - Windows
        return path.is_file()
    return (path.stat().st_mode & 0o077) == 0


def _spki(public_key: PublicKeyTypes) -> bytes:
    """Compare keys by their encoding: key objects have no value equality."""
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --------------------------------------------------------------------------- #
# Generation
# --------------------------------------------------------------------------- #


def _generate(files: TlsFiles, now: _dt.datetime) -> None:
    """Mint CA + server certificate; the CA key goes out of scope on return."""
    not_before = now - BACKDATE
    not_after = now + VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _build_ca(ca_key, not_before, not_after)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _build_server(server_key, ca_cert, ca_key, not_before, not_after)
    del ca_key  # nothing else references it; it is never serialised

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    server_pem = server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    # Key first, CA last: if we crash in between, the set is inconsistent and
    # the next start regenerates it rather than serving a mismatched pair.
    _atomic_write(files.server_key, key_pem, _KEY_MODE)
    _atomic_write(files.server_cert, server_pem, _CERT_MODE)
    _atomic_write(files.ca_cert, ca_pem, _CERT_MODE)


def _ca_subject() -> x509.Name:
    """Host name in the DN so a user can tell which machine's CA they trust."""
    host = (socket.gethostname() or "unknown-host")[:_MAX_ATTR_LEN]
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, host),
            # A random tag in the DN, not just in the serial: some trust-store
            # UIs show only the DN, and two reinstalls on one host must differ.
            x509.NameAttribute(NameOID.SERIAL_NUMBER, secrets.token_hex(8)),
        ]
    )


def _build_ca(key: ec.EllipticCurvePrivateKey, not_before: _dt.datetime, not_after: _dt.datetime) -> x509.Certificate:
    subject = _ca_subject()
    name_constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(name) for name in PERMITTED_DNS]
        + [x509.IPAddress(net) for net in PERMITTED_NETWORKS],
        excluded_subtrees=None,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(name_constraints, critical=True)
        .sign(key, hashes.SHA256())
    )


def _build_server(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    not_before: _dt.datetime,
    not_after: _dt.datetime,
) -> x509.Certificate:
    # Never outlive the issuer: a chain is only as valid as its shortest link.
    not_after = min(not_after, ca_cert.not_valid_after_utc)
    not_before = max(not_before, ca_cert.not_valid_before_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SERVER_COMMON_NAME)] + [x509.IPAddress(ip) for ip in _SERVER_IPS]
            ),
            critical=False,
        )
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


# --------------------------------------------------------------------------- #
# File system helpers
# --------------------------------------------------------------------------- #


def _utc(now: _dt.datetime | None) -> _dt.datetime:
    """Certificates speak UTC; a naive datetime is taken to already be UTC."""
    if now is None:
        return _dt.datetime.now(_dt.UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=_dt.UTC)
    return now.astimezone(_dt.UTC)


def _make_private_dir(path: Path) -> None:
    """0700 even if the directory pre-existed with looser rights: it holds a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=_DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
    if os.name == "posix":
        os.chmod(path, _DIR_MODE)


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Serialise check-and-regenerate across processes (CLI + service starting at once).

    Without it two processes could interleave their writes and leave a key
    that does not match the certificate.
    """
    if _fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _KEY_MODE)
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write-then-rename so readers see the old file or the new one, never half.

    The temporary file is created with its final mode (O_EXCL, so never an
    attacker's pre-planted file), so a private key is not readable by others
    at any moment.  ``fchmod`` on the still-empty file only neutralises the
    umask (which could make certificates unreadable for the service user).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, mode)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(path.parent)
