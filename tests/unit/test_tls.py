"""Tests for deploy.tls: real files, real OpenSSL handshakes, real X.509 path validation."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.general_name import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from deploy import tls
from deploy.tls import TlsFiles, ensure_certificates, export_ca, ssl_context_for_clients

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def _ca(files: TlsFiles) -> x509.Certificate:
    return x509.load_pem_x509_certificate(files.ca_cert.read_bytes())


def _chain(files: TlsFiles) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(files.server_cert.read_bytes())


def _leaf(files: TlsFiles) -> x509.Certificate:
    return _chain(files)[0]


def _spki(cert_or_key: x509.Certificate | PrivateKeyTypes) -> bytes:
    public = cert_or_key.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _snapshot(files: TlsFiles) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (files.ca_cert, files.server_cert, files.server_key)}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _verify(files: TlsFiles, subject: DNSName | IPAddress, when: dt.datetime | None = None) -> None:
    builder = PolicyBuilder().store(Store([_ca(files)]))
    if when is not None:
        builder = builder.time(when)
    verifier = builder.build_server_verifier(subject)
    chain = _chain(files)
    verifier.verify(chain[0], chain[1:])


@pytest.fixture()
def files(tmp_path: Path) -> TlsFiles:
    return ensure_certificates(tmp_path / "data")


# --------------------------------------------------------------------------- #
# layout, modes, and where the keys are
# --------------------------------------------------------------------------- #


def test_paths_follow_the_documented_layout(tmp_path: Path) -> None:
    data = tmp_path / "data"
    files = ensure_certificates(data)
    assert files == TlsFiles(
        ca_cert=data / "tls" / "ca.pem",
        server_cert=data / "tls" / "server.pem",
        server_key=data / "tls" / "server-key.pem",
    )
    assert all(p.is_file() for p in (files.ca_cert, files.server_cert, files.server_key))
    with pytest.raises(AttributeError):
        files.ca_cert = tmp_path  # type: ignore[misc]  # the test: a frozen field cannot be set


@posix_only
def test_file_modes(files: TlsFiles) -> None:
    assert _mode(files.directory) == 0o700
    assert _mode(files.server_key) == 0o600
    assert _mode(files.server_cert) == 0o644
    assert _mode(files.ca_cert) == 0o644


@posix_only
def test_file_modes_do_not_depend_on_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        files = ensure_certificates(tmp_path / "data")
    finally:
        os.umask(old)
    assert _mode(files.server_cert) == 0o644
    assert _mode(files.ca_cert) == 0o644
    assert _mode(files.server_key) == 0o600


@posix_only
def test_preexisting_loose_tls_dir_is_tightened(tmp_path: Path) -> None:
    tls_dir = tmp_path / "data" / "tls"
    tls_dir.mkdir(parents=True, mode=0o755)
    os.chmod(tls_dir, 0o755)
    ensure_certificates(tmp_path / "data")
    assert _mode(tls_dir) == 0o700


def test_only_the_server_key_is_on_disk(files: TlsFiles) -> None:
    holders = [p for p in files.directory.iterdir() if b"PRIVATE KEY" in p.read_bytes()]
    assert holders == [files.server_key]
    pem = files.server_key.read_bytes()
    assert pem.count(b"-----BEGIN PRIVATE KEY-----") == 1
    assert pem.count(b"PRIVATE KEY-----") == 2  # one BEGIN + one END, nothing else

    key = serialization.load_pem_private_key(pem, password=None)
    assert _spki(key) == _spki(_leaf(files))
    assert _spki(key) != _spki(_ca(files))


def test_no_temporary_files_are_left_behind(files: TlsFiles) -> None:
    assert not [p.name for p in files.directory.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- #
# certificate contents
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "subject",
    [
        DNSName("localhost"),
        IPAddress(ipaddress.ip_address("127.0.0.1")),
        IPAddress(ipaddress.ip_address("::1")),
    ],
    ids=["localhost", "127.0.0.1", "::1"],
)
def test_server_certificate_verifies_against_the_ca(files: TlsFiles, subject: DNSName | IPAddress) -> None:
    _verify(files, subject)


@pytest.mark.parametrize(
    "subject",
    [DNSName("example.com"), IPAddress(ipaddress.ip_address("10.0.0.1"))],
    ids=["example.com", "10.0.0.1"],
)
def test_server_certificate_is_not_valid_for_other_names(files: TlsFiles, subject: DNSName | IPAddress) -> None:
    with pytest.raises(VerificationError):
        _verify(files, subject)


def test_ca_is_name_constrained_to_loopback(files: TlsFiles) -> None:
    ext = _ca(files).extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    assert ext.value.excluded_subtrees is None
    assert set(ext.value.permitted_subtrees or []) == {
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.1/32")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    }
    assert len(ext.value.permitted_subtrees or []) == 3


def test_ca_extensions(files: TlsFiles) -> None:
    ca = _ca(files)
    assert ca.subject == ca.issuer
    assert ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == ("nhi-console local CA")
    host = socket.gethostname()[:64]
    assert host in [a.value for a in ca.subject]

    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0

    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature

    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey) and ca_key.curve.name == "secp256r1"


def test_server_extensions(files: TlsFiles) -> None:
    leaf, ca = _leaf(files), _ca(files)
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "localhost"
    assert leaf.issuer == ca.subject
    leaf_key = leaf.public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey) and leaf_key.curve.name == "secp256r1"

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }

    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.ExtendedKeyUsageOID.SERVER_AUTH]

    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign

    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False

    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest


def test_validity_windows(tmp_path: Path) -> None:
    now = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
    files = ensure_certificates(tmp_path / "data", now=now)
    leaf, ca = _leaf(files), _ca(files)
    for cert in (leaf, ca):
        assert cert.not_valid_before_utc == now - dt.timedelta(hours=1)
        assert cert.not_valid_after_utc == now + dt.timedelta(days=825)
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    _verify(files, DNSName("localhost"), when=now)


def test_server_pem_is_leaf_then_ca(files: TlsFiles) -> None:
    chain = _chain(files)
    assert len(chain) == 2
    assert chain[1] == _ca(files)
    assert not chain[0].extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_two_installations_have_distinguishable_cas(tmp_path: Path) -> None:
    a = _ca(ensure_certificates(tmp_path / "a"))
    b = _ca(ensure_certificates(tmp_path / "b"))
    assert a.serial_number != b.serial_number
    assert a.subject != b.subject
    assert _spki(a) != _spki(b)


# --------------------------------------------------------------------------- #
# reuse and renewal
# --------------------------------------------------------------------------- #


def test_second_call_reuses_files_byte_for_byte(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path / "data")
    before = _snapshot(first)
    mtimes = {p: p.stat().st_mtime_ns for p in (first.ca_cert, first.server_cert, first.server_key)}
    second = ensure_certificates(tmp_path / "data")
    assert second == first
    assert _snapshot(second) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_still_reused_31_days_before_expiry(files: TlsFiles) -> None:
    before = _snapshot(files)
    later = _leaf(files).not_valid_after_utc - dt.timedelta(days=31)
    ensure_certificates(files.directory.parent, now=later)
    assert _snapshot(files) == before


def test_expiring_certificate_is_replaced_by_new_ca_and_cert(files: TlsFiles) -> None:
    old_ca, old_leaf = _ca(files), _leaf(files)
    later = old_leaf.not_valid_after_utc - dt.timedelta(days=10)

    ensure_certificates(files.directory.parent, now=later)

    new_ca, new_leaf = _ca(files), _leaf(files)
    assert new_ca.serial_number != old_ca.serial_number
    assert _spki(new_ca) != _spki(old_ca)
    assert _spki(new_leaf) != _spki(old_leaf)
    assert new_leaf.not_valid_after_utc == later + dt.timedelta(days=825)
    _verify(files, DNSName("localhost"), when=later)
    key = serialization.load_pem_private_key(files.server_key.read_bytes(), password=None)
    assert _spki(key) == _spki(new_leaf)


def test_certificate_not_yet_valid_is_replaced(files: TlsFiles) -> None:
    old_ca = _ca(files)
    earlier = old_ca.not_valid_before_utc - dt.timedelta(days=1)
    ensure_certificates(files.directory.parent, now=earlier)
    assert _ca(files).serial_number != old_ca.serial_number


@pytest.mark.parametrize("victim", ["ca_cert", "server_cert", "server_key"])
def test_missing_file_regenerates_everything(files: TlsFiles, victim: str) -> None:
    old_ca = _ca(files)
    getattr(files, victim).unlink()
    ensure_certificates(files.directory.parent)
    assert _ca(files).serial_number != old_ca.serial_number
    _verify(files, DNSName("localhost"))


@pytest.mark.parametrize("victim", ["ca_cert", "server_cert", "server_key"])
def test_damaged_file_regenerates_everything(files: TlsFiles, victim: str) -> None:
    path: Path = getattr(files, victim)
    path.write_bytes(path.read_bytes()[:40])
    ensure_certificates(files.directory.parent)
    _verify(files, DNSName("localhost"))
    key = serialization.load_pem_private_key(files.server_key.read_bytes(), password=None)
    assert _spki(key) == _spki(_leaf(files))


def test_key_not_matching_certificate_regenerates(tmp_path: Path) -> None:
    a = ensure_certificates(tmp_path / "a")
    b = ensure_certificates(tmp_path / "b")
    old_ca = _ca(a)
    os.replace(b.server_key, a.server_key)  # a's cert with b's key
    ensure_certificates(tmp_path / "a")
    assert _ca(a).serial_number != old_ca.serial_number
    key = serialization.load_pem_private_key(a.server_key.read_bytes(), password=None)
    assert _spki(key) == _spki(_leaf(a))


def test_certificate_from_another_ca_regenerates(tmp_path: Path) -> None:
    a = ensure_certificates(tmp_path / "a")
    b = ensure_certificates(tmp_path / "b")
    os.replace(b.ca_cert, a.ca_cert)  # a's leaf no longer chains to a's ca.pem
    ensure_certificates(tmp_path / "a")
    _verify(a, DNSName("localhost"))


@posix_only
def test_key_readable_by_others_is_treated_as_compromised(files: TlsFiles) -> None:
    old_key = files.server_key.read_bytes()
    os.chmod(files.server_key, 0o644)
    ensure_certificates(files.directory.parent)
    assert files.server_key.read_bytes() != old_key
    assert _mode(files.server_key) == 0o600


# --------------------------------------------------------------------------- #
# real TLS
# --------------------------------------------------------------------------- #


@contextmanager
def _tls_echo_server(files: TlsFiles) -> Iterator[tuple[int, list[BaseException]]]:
    """One-connection-at-a-time echo server on 127.0.0.1; yields (port, server errors)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # short, so the loop notices `stop` promptly
    port = listener.getsockname()[1]
    errors: list[BaseException] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(10)
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(10)
                    data = conn.recv(1024)
                    conn.sendall(b"echo:" + data)
            except (OSError, ssl.SSLError) as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, errors
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=10)


def _exchange(context: ssl.SSLContext, port: int, server_hostname: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as conn,
    ):
        conn.sendall(b"hello")
        return conn.recv(1024)


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_handshake_with_client_context(files: TlsFiles, server_hostname: str) -> None:
    client = ssl_context_for_clients(files.directory.parent)
    with _tls_echo_server(files) as (port, errors):
        assert _exchange(client, port, server_hostname) == b"echo:hello"
    assert errors == []


def test_handshake_fails_for_a_client_trusting_another_ca(files: TlsFiles, tmp_path: Path) -> None:
    ensure_certificates(tmp_path / "other")
    stranger = ssl_context_for_clients(tmp_path / "other")
    with _tls_echo_server(files) as (port, _errors):
        with pytest.raises(ssl.SSLCertVerificationError):
            _exchange(stranger, port, "localhost")
        # The server keeps working for its own clients afterwards.
        own = ssl_context_for_clients(files.directory.parent)
        assert _exchange(own, port, "localhost") == b"echo:hello"


def test_handshake_fails_for_a_name_not_in_the_certificate(files: TlsFiles) -> None:
    client = ssl_context_for_clients(files.directory.parent)
    with _tls_echo_server(files) as (port, _errors), pytest.raises(ssl.SSLCertVerificationError):
        _exchange(client, port, "example.com")


def test_client_context_trusts_nothing_else(files: TlsFiles) -> None:
    client = ssl_context_for_clients(files.directory.parent)
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname
    trusted = client.get_ca_certs(binary_form=True)
    assert trusted == [_ca(files).public_bytes(serialization.Encoding.DER)]


def test_client_context_does_not_create_certificates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ssl_context_for_clients(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here" / "tls").exists()


# --------------------------------------------------------------------------- #
# export
# --------------------------------------------------------------------------- #


def test_export_ca_to_a_file_path(files: TlsFiles, tmp_path: Path) -> None:
    target = tmp_path / "out" / "my-ca.pem"
    target.parent.mkdir()
    written = export_ca(files.directory.parent, target)
    assert written == target
    assert written.read_bytes() == files.ca_cert.read_bytes()
    assert b"PRIVATE KEY" not in written.read_bytes()


def test_export_ca_into_a_directory(files: TlsFiles, tmp_path: Path) -> None:
    out = tmp_path / "desktop"
    out.mkdir()
    written = export_ca(files.directory.parent, out)
    assert written == out / tls.EXPORT_FILENAME == out / "nhi-console-ca.pem"
    assert written.read_bytes() == files.ca_cert.read_bytes()
    assert [p.name for p in out.iterdir()] == ["nhi-console-ca.pem"]


def test_export_ca_creates_certificates_when_missing(tmp_path: Path) -> None:
    written = export_ca(tmp_path / "fresh", tmp_path / "ca.pem")
    files = TlsFiles.in_dir(tmp_path / "fresh")
    assert written.read_bytes() == files.ca_cert.read_bytes()
    _verify(files, DNSName("localhost"))


def test_export_ca_does_not_renew_valid_certificates(files: TlsFiles, tmp_path: Path) -> None:
    before = _snapshot(files)
    export_ca(files.directory.parent, tmp_path / "ca.pem")
    assert _snapshot(files) == before


# --------------------------------------------------------------------------- #
# concurrency
# --------------------------------------------------------------------------- #


def _ensure_in_child(data_dir: str) -> bytes:
    files = ensure_certificates(Path(data_dir))
    return files.ca_cert.read_bytes()


@pytest.mark.skipif(os.name != "posix", reason="needs fork and flock")
def test_concurrent_first_start_leaves_a_consistent_set(tmp_path: Path) -> None:
    """Several processes racing on an empty data dir must not mix key and certificate."""
    import multiprocessing

    data = tmp_path / "data"
    with multiprocessing.get_context("fork").Pool(6) as pool:
        cas = pool.map(_ensure_in_child, [str(data)] * 12)
    files = TlsFiles.in_dir(data)
    assert set(cas) == {files.ca_cert.read_bytes()}  # all generated once, all saw the same CA
    key = serialization.load_pem_private_key(files.server_key.read_bytes(), password=None)
    assert _spki(key) == _spki(_leaf(files))
    _verify(files, DNSName("localhost"))
