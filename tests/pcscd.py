"""A real pcscd with vpcd virtual readers, for the PC/SC integration tests and benches.

pcscd's client socket is fixed at /run/pcscd/pcscd.comm (the daemon ignores
PCSCLITE_CSOCK_NAME), so one pcscd serves the whole machine: this helper starts
its own only when none runs, reuses the one it started earlier in this process,
and refuses to touch anyone else's (a system pcscd is somebody's real readers).

Each vpcd entry in the generated reader.conf gives two readers and listens on
two TCP ports (CHANNELID and CHANNELID+1).  Entries get distinct friendly names
because pcscd numbers readers per driver instance: two entries both named
"Virtual PCD" would both list as "Virtual PCD 00 00".  pcscd reads a serial
driver's reader.conf only at start, so changing the reader list is a restart.

Every wait polls a condition against a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.doctor import PCSCD_SOCKET, pcscd_answers
from tests.waiting import wait_for

COMM_SOCKET = PCSCD_SOCKET
PID_FILE = Path("/run/pcscd/pcscd.pid")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
DEFAULT_BASE_PORT = 0x9C40
"""Away from the packaged vpcd entry's 0x8C7B, so a system reader.conf.d never claims our ports."""

_OURS: dict[int, Pcscd] = {}
"""pcscd processes started by this Python process, by pid: what 'ours from this session' means."""


class PcscdUnavailable(RuntimeError):
    """pcscd or the vpcd driver is not installed: the PC/SC tests skip (unless CI requires them)."""


class ForeignPcscd(RuntimeError):
    """A pcscd we did not start is running; we will not stop it (it may serve real readers)."""


def find_pcscd() -> str | None:
    """pcscd lives in /usr/sbin, which a non-root PATH often lacks."""
    return shutil.which("pcscd") or shutil.which("pcscd", path="/usr/sbin:/sbin:/usr/local/sbin")


def comm_accepts() -> bool:
    """True when some pcscd answers on the client socket (a stale socket file refuses): what the doctor checks."""
    return pcscd_answers()


def _pid_from_file() -> int | None:
    try:
        text = PID_FILE.read_bytes().decode(errors="replace")
    except OSError:
        return None
    digits = text.strip().strip("\0").strip()  # pcscd writes "1234\n\0"
    return int(digits) if digits.isdigit() else None


def _running(pid: int) -> bool:
    """Alive and not a zombie (pcscd's own stale-pid check counts zombies as running)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def list_readers() -> list[str]:
    from smartcard import scard

    try:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    except Exception:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        return []
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        return list(readers) if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def reader_conf(ports: Sequence[int]) -> str:
    """One vpcd entry per port; entry 0 keeps the plain "Virtual PCD" name the other tests and docs use."""
    blocks = []
    for index, port in enumerate(ports):
        blocks.append(
            f'FRIENDLYNAME "{friendly_name(index)}"\n'
            f"DEVICENAME /dev/null:0x{port:04X}\n"
            f"LIBPATH {VPCD_DRIVER}\n"
            f"CHANNELID 0x{port:04X}\n"
        )
    return "\n".join(blocks)


def friendly_name(entry: int) -> str:
    return "Virtual PCD" if entry == 0 else f"Virtual PCD {entry + 1}"


@dataclass
class Pcscd:
    """Our pcscd and its vpcd readers. `reader(e, s)` / `port(e, s)` name slot s (0 or 1) of entry e."""

    workdir: Path
    base_port: int = DEFAULT_BASE_PORT
    start_timeout: float = 10.0
    stop_grace: float = 5.0
    process: subprocess.Popen[bytes] | None = None
    config_path: Path | None = None
    ports: list[int] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def entries(self) -> int:
        return len(self.ports)

    def reader(self, entry: int = 0, slot: int = 0) -> str:
        return f"{friendly_name(entry)} 00 {slot:02d}"

    def port(self, entry: int = 0, slot: int = 0) -> int:
        return self.ports[entry] + slot

    def readers(self) -> list[str]:
        return [self.reader(entry, slot) for entry in range(self.entries) for slot in (0, 1)]

    def start(
        self,
        config_path: Path | None = None,
        ports: Sequence[int] | None = None,
        entries: int = 1,
    ) -> Pcscd:
        """Start (or reuse) pcscd with one vpcd entry per port; `ports` defaults to base_port, base_port+2, ..."""
        executable = find_pcscd()
        if executable is None:
            raise PcscdUnavailable("pcscd is not installed (Debian: apt-get install pcscd vsmartcard-vpcd)")
        if not VPCD_DRIVER.exists():
            raise PcscdUnavailable(
                f"the vpcd driver {VPCD_DRIVER} is missing (Debian: apt-get install vsmartcard-vpcd)"
            )
        wanted = list(ports) if ports is not None else [self.base_port + 2 * index for index in range(entries)]
        if self.process is not None and self.process.poll() is not None:
            _OURS.pop(self.process.pid, None)  # ours, but it died: start afresh
            self.process = None
        if self._is_running_ours():
            if wanted == self.ports:
                return self
            self.stop()
        self._refuse_foreign()
        self.ports = wanted
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = config_path or self.workdir / "reader.conf"
        self.config_path.write_text(reader_conf(self.ports))
        self.log_path = self.workdir / "pcscd.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [executable, "--foreground", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is for pytest; we stop pcscd ourselves
            )
        _OURS[self.process.pid] = self
        expected = set(self.readers())
        try:
            wait_for(self._ready(expected), self.start_timeout, f"pcscd to list {sorted(expected)}")
        except (TimeoutError, RuntimeError) as error:
            self.stop()
            raise RuntimeError(f"{error}\n--- {self.log_path} ---\n{self.log_tail()}") from None
        return self

    def restart(self, entries: int | None = None, ports: Sequence[int] | None = None) -> Pcscd:
        """A new reader list: pcscd reads a serial driver's reader.conf only when it starts."""
        self.stop()
        return self.start(self.config_path, ports=ports, entries=entries if entries is not None else self.entries)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after the grace period, then wait until the client socket no longer answers."""
        process, self.process = self.process, None
        if process is None:
            return
        _OURS.pop(process.pid, None)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(self.stop_grace)
        # A killed pcscd leaves its files behind, and the next pcscd would refuse to start over them.
        if _pid_from_file() == process.pid:
            for stale in (COMM_SOCKET, PID_FILE):
                stale.unlink(missing_ok=True)
        wait_for(lambda: not comm_accepts(), self.stop_grace, "pcscd's client socket to close")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _is_running_ours(self) -> bool:
        return self.process is not None and self.process.poll() is None and comm_accepts()

    def _ready(self, expected: set[str]) -> Callable[[], bool]:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"pcscd exited with status {self.process.returncode} before listing its readers")
            return expected <= set(list_readers())

        return ready

    def _refuse_foreign(self) -> None:
        pid = _pid_from_file()
        if comm_accepts() or (pid is not None and _running(pid)):
            if pid is not None and pid in _OURS and _running(pid):
                _OURS[pid].stop()  # another helper of this process started it with other readers
                return
            who = f"pid {pid}: {_cmdline(pid)}" if pid is not None else "unknown pid"
            raise ForeignPcscd(
                f"a pcscd we did not start is running ({who}); the PC/SC tests need the machine's only pcscd "
                f"socket {COMM_SOCKET}. Stop it (e.g. `systemctl stop pcscd.socket pcscd`) and rerun."
            )
        for stale in (COMM_SOCKET, PID_FILE):  # files of a pcscd that died without cleaning up
            stale.unlink(missing_ok=True)


def stop_all() -> None:
    """Stop every pcscd this process started (an atexit-style safety net for fixtures and benches)."""
    for pcscd in list(_OURS.values()):
        pcscd.stop()


atexit.register(stop_all)  # a run that ends without its fixture teardown (Ctrl-C, a crash) still leaves no pcscd
