"""`nhi-console cert --install / --uninstall / --renew`: make this machine's browsers trust the console's local CA.

Where a Linux desktop keeps the CAs it trusts:
- the system store, for curl, Python, Java and most programs: a PEM file in
  `/usr/local/share/ca-certificates/` and `update-ca-certificates` (Debian, Ubuntu); it needs root;
- Chromium's and Chrome's NSS database, `~/.pki/nssdb` (the system store is not read by them);
- each Firefox profile's own NSS database (`~/.mozilla/firefox/<profile>/`, also under snap and flatpak).
The NSS databases are per user: run under `sudo`, the invoking user's (`SUDO_USER`) are the ones changed, and
what is created in them is given back to that user. The CA goes in under a nickname that names this data dir,
so installing again (after a new certificate, which always comes with a new CA) replaces the old one.

The CA is name-constrained to localhost, 127.0.0.1 and ::1 (deploy/tls.py): trusting it vouches for nothing
else. `certutil` comes with Debian's `libnss3-tools`.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SYSTEM_STORE = Path("/usr/local/share/ca-certificates")
UPDATE_COMMAND = ("update-ca-certificates",)
FIREFOX_PROFILE_ROOTS = (
    Path(".mozilla/firefox"),
    Path("snap/firefox/common/.mozilla/firefox"),
    Path(".var/app/org.mozilla.firefox/.mozilla/firefox"),
)
CHROMIUM_DATABASES = (Path(".pki/nssdb"), Path("snap/chromium/current/.pki/nssdb"))
"""The first is created if missing (every Chromium and Chrome on Linux reads it); the others only if present."""


class TrustError(RuntimeError):
    """The stores cannot be changed as asked (no certutil, no CA file): the message says what to do."""


@dataclass(frozen=True)
class Owner:
    """The user whose browsers are meant, and where their files are."""

    name: str
    uid: int
    gid: int
    home: Path


def invoking_user() -> Owner:
    """Under sudo, the user who ran sudo; otherwise this process's user (with $HOME, which tests point elsewhere)."""
    sudo_user = os.environ.get("SUDO_USER")
    if os.geteuid() == 0 and sudo_user and sudo_user != "root":
        entry = pwd.getpwnam(sudo_user)
        return Owner(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))
    entry = pwd.getpwuid(os.geteuid())
    return Owner(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(os.environ.get("HOME") or entry.pw_dir))


def install_name(data_dir: Path) -> str:
    """The CA's name in every store: the same for one data dir, different for two (a bench beside a clinic)."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"nhi-console local CA {digest}"


def system_store_file(data_dir: Path, store: Path = SYSTEM_STORE) -> Path:
    return store / (install_name(data_dir).replace(" ", "-") + ".crt")


def nss_databases(home: Path, *, for_install: bool = False) -> list[Path]:
    """The user's NSS databases: Chromium's (created on install if missing), and every Firefox profile's."""
    found: list[Path] = []
    for relative in CHROMIUM_DATABASES:
        database = home / relative
        if (database / "cert9.db").exists() or (for_install and relative == CHROMIUM_DATABASES[0]):
            found.append(database)
    for root in FIREFOX_PROFILE_ROOTS:
        profiles = home / root
        if profiles.is_dir():
            found += sorted(profile for profile in profiles.iterdir() if (profile / "cert9.db").exists())
    return found


@dataclass(frozen=True)
class StoreResult:
    store: str
    done: str

    def line(self) -> str:
        return f"{self.store}: {self.done}"


def _certutil() -> str:
    found = shutil.which("certutil")
    if found is None:
        raise TrustError("certutil is missing: sudo apt-get install libnss3-tools")
    return found


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False)


def _give_back(path: Path, owner: Owner) -> None:
    """Files root made in a user's home belong to that user (no-op when we are that user)."""
    if os.geteuid() != 0 or owner.uid == 0:
        return
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chown(item, owner.uid, owner.gid, follow_symlinks=False)


def nss_holds(database: Path, name: str) -> bytes | None:
    """The PEM certificate `database` holds under `name`, or None."""
    listed = _run(_certutil(), "-L", "-d", f"sql:{database}", "-n", name, "-a")
    return listed.stdout.encode() if listed.returncode == 0 and "BEGIN CERTIFICATE" in listed.stdout else None


def _nss_remove(database: Path, name: str) -> bool:
    removed = False
    while _run(_certutil(), "-D", "-d", f"sql:{database}", "-n", name).returncode == 0:
        removed = True  # again, in case an earlier run left two under the name
    return removed


def _nss_add(database: Path, name: str, ca_file: Path, owner: Owner) -> None:
    created = not (database / "cert9.db").exists()
    if created:
        database.mkdir(parents=True, exist_ok=True, mode=0o700)
        made = _run(_certutil(), "-N", "-d", f"sql:{database}", "--empty-password")
        if made.returncode != 0:
            raise TrustError(f"could not create the NSS database {database}: {made.stderr.strip()}")
    _nss_remove(database, name)
    added = _run(_certutil(), "-A", "-d", f"sql:{database}", "-n", name, "-t", "C,,", "-i", str(ca_file))
    if added.returncode != 0:
        raise TrustError(f"could not add the CA to {database}: {added.stderr.strip()}")
    top = database.parent if created and database.parent.name == ".pki" else database
    _give_back(top, owner)


def install(
    data_dir: Path, ca_file: Path, owner: Owner, *, system: bool, store: Path = SYSTEM_STORE
) -> list[StoreResult]:
    if not ca_file.is_file():
        raise TrustError(f"no CA certificate at {ca_file}: start the console once (or run `nhi-console cert`)")
    name = install_name(data_dir)
    results = []
    if system:
        target = system_store_file(data_dir, store)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(ca_file.read_bytes())
        target.chmod(0o644)
        results.append(StoreResult(f"system store ({target})", _update_system_store()))
    for database in nss_databases(owner.home, for_install=True):
        _nss_add(database, name, ca_file, owner)
        results.append(StoreResult(f"NSS database {database}", f"trusted as {name!r}"))
    return results


def uninstall(data_dir: Path, owner: Owner, *, system: bool, store: Path = SYSTEM_STORE) -> list[StoreResult]:
    name = install_name(data_dir)
    results = []
    if system:
        target = system_store_file(data_dir, store)
        if target.exists():
            target.unlink()
            # --fresh: a plain update leaves the old links in /etc/ssl/certs dangling behind.
            results.append(StoreResult(f"system store ({target})", "removed; " + _update_system_store("--fresh")))
        else:
            results.append(StoreResult(f"system store ({target})", "was not there"))
    for database in nss_databases(owner.home):
        removed = _nss_remove(database, name)
        results.append(StoreResult(f"NSS database {database}", "removed" if removed else "was not there"))
    return results


def installed_where(data_dir: Path, ca_file: Path, owner: Owner, store: Path = SYSTEM_STORE) -> dict[str, bool]:
    """Each store that holds a CA under this data dir's name: True if it is the current CA, False if an old one."""
    current = ca_file.read_bytes().strip() if ca_file.is_file() else b""
    found: dict[str, bool] = {}
    target = system_store_file(data_dir, store)
    if target.is_file():
        found[f"system store ({target})"] = target.read_bytes().strip() == current
    if shutil.which("certutil") is None:
        return found
    name = install_name(data_dir)
    for database in nss_databases(owner.home):
        held = nss_holds(database, name)
        if held is not None:
            found[f"NSS database {database}"] = _same_certificate(held, current)
    return found


def _same_certificate(first: bytes, second: bytes) -> bool:
    def body(pem: bytes) -> bytes:
        return b"".join(line.strip() for line in pem.splitlines() if line and not line.startswith(b"-----"))

    return bool(second) and body(first) == body(second)


def _update_system_store(*options: str) -> str:
    command = shutil.which(UPDATE_COMMAND[0])
    if command is None:
        return f"written, but {UPDATE_COMMAND[0]} is missing (sudo apt-get install ca-certificates)"
    updated = _run(command, *UPDATE_COMMAND[1:], *options)
    if updated.returncode != 0:
        raise TrustError(f"{UPDATE_COMMAND[0]} failed: {updated.stderr.strip() or updated.stdout.strip()}")
    return f"updated ({' '.join([UPDATE_COMMAND[0], *options])})"
