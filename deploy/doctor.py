"""`nhi-console doctor`: what a clinic's set-up needs, checked and explained, one line each, with the fix.

The checks: pcscd running, readers seen, serial ports and who may open them, the data dir and its secrets,
the certificate's validity and where it is trusted, the data center reachable, the service's port. They are
made for the console's user (`--service-user`, by default the data dir's owner), which is not the person
running the doctor when an administrator checks the service with sudo: permissions are then judged from the
files' modes and that user's groups, not tried.

A console that is serving leaves `<run dir>/serve.json` (its port, its data center, its serial ports), so the
doctor checks what the console actually uses. The checks are pure functions of what they read; only `gather`
touches the machine.
"""

from __future__ import annotations

import datetime as _dt
import grp
import http.client
import json
import os
import pwd
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from deploy.exposure import exposes_beyond_loopback
from deploy.paths import console_paths
from deploy.single_instance import lock_holder, lock_path
from deploy.tls import RENEW_BEFORE, TlsFiles
from deploy.trust import Owner, installed_where, invoking_user
from eventlog.writable import free_bytes, write_probe

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
LOW_SPACE = 500 * 1024 * 1024
"""Below this, a warning: the log grows about 1 KB a call; sealing needs room for an archive of half the log."""
NO_SPACE = 50 * 1024 * 1024
"""Below this, a failure: the console answers 1098 (not recorded) once the log cannot grow."""
OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Finding:
    verdict: str
    topic: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.verdict:<4}  {self.topic:<12} {self.detail}"
        return text + (f" — fix: {self.fix}" if self.fix and self.verdict != OK else "")


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gids: frozenset[int]


def service_user(name: str | None, data_dir: Path) -> ServiceUser:
    """The named user, else the data dir's owner (the service's user), else whoever runs the doctor."""
    if name is not None:
        entry = pwd.getpwnam(name)
    elif data_dir.exists():
        entry = pwd.getpwuid(data_dir.stat().st_uid)
    else:
        entry = pwd.getpwuid(os.geteuid())
    groups = {entry.pw_gid} | {group.gr_gid for group in grp.getgrall() if entry.pw_name in group.gr_mem}
    return ServiceUser(entry.pw_name, entry.pw_uid, frozenset(groups))


def may(user: ServiceUser, mode: int, owner: int, group: int, want: int) -> bool:
    """Whether `user` gets `want` (a mix of os.R_OK, os.W_OK, os.X_OK) from a file's mode bits. Root gets all."""
    if user.uid == 0:
        return True
    if user.uid == owner:
        bits = (mode >> 6) & 7
    elif group in user.gids:
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def _may_path(user: ServiceUser, path: Path, want: int) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    return may(user, info.st_mode, info.st_uid, info.st_gid, want)


# --- the checks -------------------------------------------------------------------------------------


def check_pcscd(answers: bool, installed: bool) -> Finding:
    if answers:
        return Finding(OK, "pcscd", f"running ({PCSCD_SOCKET} answers)")
    if not installed:
        return Finding(
            FAIL, "pcscd", "not installed", "sudo apt-get install pcscd && sudo systemctl enable --now pcscd.socket"
        )
    return Finding(
        FAIL, "pcscd", f"not running ({PCSCD_SOCKET} does not answer)", "sudo systemctl enable --now pcscd.socket"
    )


def check_readers(pcscd_answers: bool, readers: list[str] | None) -> Finding:
    if not pcscd_answers:
        return Finding(WARN, "readers", "not listed: pcscd is not running", "start pcscd first (above)")
    if readers is None:
        return Finding(FAIL, "readers", "pcscd would not list its readers", "sudo systemctl restart pcscd")
    if not readers:
        return Finding(
            WARN,
            "readers",
            "pcscd sees no PC/SC reader (an NHI dedicated reader on a serial port is listed below)",
            "plug the reader in; `pcsc_scan` (Debian: pcsc-tools) shows what pcscd sees",
        )
    return Finding(OK, "readers", f"{len(readers)} seen: {', '.join(readers)}")


@dataclass(frozen=True)
class PortAccess:
    path: str
    exists: bool
    mode: int = 0
    owner: int = 0
    group: int = 0
    group_name: str = ""


def check_serial(user: ServiceUser, ports: list[PortAccess]) -> list[Finding]:
    if not ports:
        return [Finding(OK, "serial", "no serial port (one is needed only for an NHI dedicated reader)")]
    findings = []
    for port in ports:
        if not port.exists:
            findings.append(
                Finding(
                    FAIL,
                    "serial",
                    f"{port.path} does not exist",
                    "plug the reader in, or fix the --serial-port the console is given",
                )
            )
        elif may(user, port.mode, port.owner, port.group, os.R_OK | os.W_OK):
            findings.append(Finding(OK, "serial", f"{port.path}: {user.name} may open it"))
        else:
            findings.append(
                Finding(
                    FAIL,
                    "serial",
                    f"{port.path}: {user.name} may not open it",
                    f"sudo usermod -aG {port.group_name or 'dialout'} {user.name} (then restart the console)",
                )
            )
    return findings


@dataclass(frozen=True)
class DirState:
    path: Path
    exists: bool
    writable: bool = False
    owner_name: str = ""
    loose_secrets: tuple[str, ...] = ()
    """Files of secrets (keys) that others than their owner can read."""


def check_disk_space(path: Path, free: int | None) -> Finding:
    """Free space where the log lives: a full disk stops the console recording (it answers 1098 meanwhile)."""
    if free is None:
        return Finding(WARN, "disk space", f"{path} does not exist yet: free space not checked")
    text = f"{free / 1024**2:,.0f} MB free for {path}"
    if free < NO_SPACE:
        return Finding(FAIL, "disk space", text + ": calls cannot be recorded soon", "free space on that disk")
    if free < LOW_SPACE:
        return Finding(WARN, "disk space", text, "free space on that disk before it fills")
    return Finding(OK, "disk space", text)


def check_data_dir(user: ServiceUser, state: DirState) -> Finding:
    if not state.exists:
        return Finding(WARN, "data dir", f"{state.path} does not exist yet (made at the first start)")
    if not state.writable:
        return Finding(
            FAIL,
            "data dir",
            f"{state.path} is not writable by {user.name} (owner {state.owner_name})",
            f"sudo chown -R {user.name}: {state.path} && sudo chmod 0700 {state.path}",
        )
    if state.loose_secrets:
        return Finding(
            FAIL,
            "data dir",
            f"readable by others: {', '.join(state.loose_secrets)}",
            "chmod 0600 " + " ".join(state.loose_secrets),
        )
    return Finding(OK, "data dir", f"{state.path}: writable by {user.name}, secrets private")


@dataclass(frozen=True)
class CertificateState:
    present: bool
    not_after: _dt.datetime | None = None
    names_localhost: bool = False
    issued_by_ca: bool = False
    trusted_in: dict[str, bool] = field(default_factory=dict)
    """Store -> holds the current CA (False: an older CA under this data dir's name)."""


def check_certificate(state: CertificateState, now: _dt.datetime, data_dir: Path) -> list[Finding]:
    install = f"sudo nhi-console cert --install --data-dir {data_dir}"
    if not state.present or state.not_after is None:
        return [Finding(WARN, "certificate", "none yet (made at the first start)", "start the console once")]
    findings = []
    left = state.not_after - now
    if not state.issued_by_ca or not state.names_localhost:
        findings.append(
            Finding(
                FAIL,
                "certificate",
                "the server certificate does not match its CA or localhost",
                f"nhi-console cert --renew --data-dir {data_dir}, then restart the console",
            )
        )
    elif left <= _dt.timedelta(0):
        findings.append(
            Finding(
                FAIL,
                "certificate",
                f"expired on {state.not_after:%Y-%m-%d}",
                "restart the console (it makes a new one), then " + install,
            )
        )
    elif left <= RENEW_BEFORE:
        findings.append(
            Finding(
                WARN,
                "certificate",
                f"expires on {state.not_after:%Y-%m-%d}; the next start makes a new one (and a new CA)",
                "after it, " + install,
            )
        )
    else:
        findings.append(Finding(OK, "certificate", f"valid until {state.not_after:%Y-%m-%d}, for localhost"))
    stale = [store for store, current in state.trusted_in.items() if not current]
    trusted = [store for store, current in state.trusted_in.items() if current]
    if stale:
        findings.append(
            Finding(
                FAIL,
                "trust",
                f"an old CA of this console is trusted in {', '.join(stale)} (the certificate was renewed since)",
                install,
            )
        )
    elif not trusted:
        findings.append(
            Finding(FAIL, "trust", "the CA is trusted in no store: browsers will refuse the console", install)
        )
    else:
        findings.append(Finding(OK, "trust", "the CA is trusted in " + ", ".join(trusted)))
    return findings


def check_data_center(url: str | None, outcome: str | None) -> Finding:
    if url is None:
        return Finding(
            WARN,
            "data center",
            "none configured: calls that need it answer 1700",
            "serve --dc-url URL (a licensed DC implementation; the bench has its simulator)",
        )
    if outcome is None:
        return Finding(OK, "data center", f"{url} answers")
    return Finding(
        FAIL,
        "data center",
        f"{url}: {outcome}",
        "check the network and the DC's address; the console answers 1700 meanwhile",
    )


def check_port(port: int, served_by_console: int | None, holder: str | None) -> Finding:
    if served_by_console is not None:
        return Finding(OK, "port", f"{port}: the console is serving on it (pid {served_by_console})")
    if holder is None:
        return Finding(OK, "port", f"{port} is free for the console")
    return Finding(FAIL, "port", f"{port} is taken by {holder}", "stop it, or serve --port another one")


def check_exposure(host: str | None) -> Finding:
    """A console serving on an address other machines can reach (`serve --host … --expose-cards-to-network`)."""
    if not exposes_beyond_loopback(host):
        return Finding(OK, "listening", "on loopback only: other machines cannot reach the cards")
    return Finding(
        WARN,
        "listening",
        f"on {host}: other machines on the network can reach the console, and with it the cards in this "
        f"machine's readers; the Host check is the only wall (docs/security.md). Serve on loopback unless a "
        f"remote HIS really needs it",
    )


def check_lock(data_dir: Path, holder: int | None, served_by: int | None) -> Finding:
    """Whether a console holds the data dir's lock (deploy/single_instance.py), and whether it is the one serving.

    The lock is read from /proc/locks, never tried: trying it could make a console starting at that moment
    refuse to start.
    """
    if holder is None:
        return Finding(OK, "lock", f"no console is running on {data_dir} (its lock is free)")
    if served_by is None or served_by == holder:
        return Finding(OK, "lock", f"a console is running on {data_dir}: pid {holder} holds its lock")
    return Finding(
        WARN,
        "lock",
        f"pid {holder} holds {data_dir}'s lock, but serve.json names pid {served_by}",
        "a console is starting or stopping; run the doctor again",
    )


# --- reading the machine ----------------------------------------------------------------------------


def pcscd_answers() -> bool:
    if not PCSCD_SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def _pcscd_installed() -> bool:
    return any(Path(folder, "pcscd").exists() for folder in ("/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"))


def _readers() -> list[str] | None:
    try:
        from workers.pcsc_reader import list_pcsc_readers

        return list_pcsc_readers()
    except Exception:  # a broken PC/SC stack is a finding, not a crash
        return None


def _serial_ports(extra: Iterable[str]) -> list[PortAccess]:
    try:
        from serial.tools import list_ports

        listed = [port.device for port in list_ports.comports()]
    except Exception:
        listed = []
    found = []
    for path in dict.fromkeys([*listed, *extra]):
        try:
            info = os.stat(path)
        except OSError:
            found.append(PortAccess(path, False))
            continue
        try:
            group_name = grp.getgrgid(info.st_gid).gr_name
        except KeyError:
            group_name = str(info.st_gid)
        found.append(PortAccess(path, True, info.st_mode, info.st_uid, info.st_gid, group_name))
    return found


def _dir_state(user: ServiceUser, data_dir: Path) -> DirState:
    if not data_dir.exists():
        return DirState(data_dir, False)
    writable = _may_path(user, data_dir, os.W_OK | os.X_OK)
    if writable and user.uid == os.geteuid():
        # For ourselves, try it: a read-only mount, a full disk or an immutable flag defeats the mode bits.
        writable = write_probe(data_dir) is None
    try:
        owner_name = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    except KeyError:
        owner_name = str(data_dir.stat().st_uid)
    secrets = [data_dir / "secrets" / "pseudonym.key", TlsFiles.in_dir(data_dir).server_key]
    secrets += sorted((data_dir / "cloud-sams").glob("*.sam")) if (data_dir / "cloud-sams").is_dir() else []
    loose = tuple(str(path) for path in secrets if path.exists() and path.stat().st_mode & 0o077)
    return DirState(data_dir, True, writable, owner_name, loose)


def _certificate_state(data_dir: Path, owner: Owner) -> CertificateState:
    files = TlsFiles.in_dir(data_dir)
    try:
        chain = x509.load_pem_x509_certificates(files.server_cert.read_bytes())
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    except (OSError, ValueError):
        return CertificateState(False)
    leaf = chain[0]
    try:
        leaf.verify_directly_issued_by(ca)
        issued = True
    except Exception:
        issued = False
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        localhost = "localhost" in names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        localhost = False
    return CertificateState(
        True, leaf.not_valid_after_utc, localhost, issued, installed_where(data_dir, files.ca_cert, owner)
    )


def _data_center_outcome(url: str, ca_file: str | None) -> str | None:
    parsed = urllib.parse.urlsplit(url)
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    connection = http.client.HTTPSConnection(parsed.hostname or "", parsed.port or 443, context=context, timeout=5)
    try:
        connection.request("GET", (parsed.path.rstrip("/") or "") + "/dc/v1/")
        connection.getresponse().read()  # any HTTP answer: reachable, TLS trusted
    except ssl.SSLError as error:
        return f"TLS refused ({error.reason or error})"
    except OSError as error:
        return f"not reachable ({error.strerror or error})"
    finally:
        connection.close()
    return None


def _port_holder(port: int) -> str | None:
    """None if 127.0.0.1:`port` can be bound; otherwise who holds it (from /proc, where we may look)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return None
        except OSError:
            pass
    inodes = listening_inodes(Path("/proc/net/tcp").read_text(), port) | listening_inodes(
        Path("/proc/net/tcp6").read_text() if Path("/proc/net/tcp6").exists() else "", port
    )
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for descriptor in (entry / "fd").iterdir():
                target = os.readlink(descriptor)
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"pid {entry.name} ({command[:60]})"
        except OSError:
            continue
    return "another program"


def listening_inodes(table: str, port: int) -> set[int]:
    """The socket inodes listening on `port` in a /proc/net/tcp(6) table."""
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(int(fields[9]))
    return found


@dataclass(frozen=True)
class Served:
    """What a serving console wrote to its run dir (deploy/cli.py `serve`)."""

    pid: int
    port: int
    dc_url: str | None
    dc_ca: str | None
    serial_ports: list[str]
    host: str | None = None
    """`serve --host`; None: loopback only."""


def read_served(data_dir: Path) -> Served | None:
    path = console_paths(data_dir).served_file
    try:
        data = json.loads(path.read_text())
        served = Served(
            int(data["pid"]),
            int(data["port"]),
            data.get("dcUrl"),
            data.get("dcCa"),
            list(data.get("serialPorts", [])),
            data.get("host") if isinstance(data.get("host"), str) else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return served if Path(f"/proc/{served.pid}").exists() else None


def gather(
    data_dir: Path,
    port: int,
    user_name: str | None = None,
    now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
) -> list[Finding]:
    user = service_user(user_name, data_dir)
    served = read_served(data_dir)
    answers = pcscd_answers()
    findings = [check_pcscd(answers, _pcscd_installed()), check_readers(answers, _readers() if answers else None)]
    findings += check_serial(user, _serial_ports(served.serial_ports if served else []))
    findings.append(check_data_dir(user, _dir_state(user, data_dir)))
    findings.append(check_disk_space(data_dir, free_bytes(data_dir) if data_dir.exists() else None))
    findings += check_certificate(_certificate_state(data_dir, invoking_user()), now(), data_dir)
    dc_url = served.dc_url if served else None
    findings.append(
        check_data_center(dc_url, _data_center_outcome(dc_url, served.dc_ca) if dc_url and served else None)
    )
    port = served.port if served else port
    findings.append(check_port(port, served.pid if served else None, None if served else _port_holder(port)))
    findings.append(check_lock(data_dir, lock_holder(lock_path(data_dir)), served.pid if served else None))
    if served is not None:
        findings.append(check_exposure(served.host))
    return findings


def report(findings: list[Finding]) -> tuple[str, int]:
    failed = [finding for finding in findings if finding.verdict == FAIL]
    lines = [finding.line() for finding in findings]
    lines.append(
        f"{len(failed)} problem{'s' if len(failed) != 1 else ''} found"
        if failed
        else "all checks passed: the console has what it needs"
    )
    return "\n".join(lines), 1 if failed else 0
