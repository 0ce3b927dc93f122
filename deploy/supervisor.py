"""`nhi-console serve`: start the broker and the API, restart what dies, stop everything on SIGTERM.

The supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER): when the broker
dies, its reader workers are re-parented here rather than to init, keep their
card sessions, and re-register with the restarted broker; and at shutdown
every descendant is ours to stop, so nothing is left behind.  Children get
PR_SET_PDEATHSIG, so even a `kill -9` of the supervisor leaves no orphans.

A child that exits with DATA_DIR_UNWRITABLE (contract/exit_codes.py: the broker
found its data dir read-only) is not restarted: it would fail the same way at
every start. The supervisor stops everything and exits with that status.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.runtime.backoff import RestartBackoff
from contract.exit_codes import DATA_DIR_UNWRITABLE

NOT_RESTARTED: frozenset[int] = frozenset({DATA_DIR_UNWRITABLE})
"""Exit statuses that a restart cannot cure: the supervisor stops the console and exits with them."""

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ChildSpec:
    """A process to keep running; `argv(restarted)` may differ on a restart (the broker adopts workers)."""

    name: str
    argv: Callable[[bool], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    """At the first start, the children after this one wait until it says it is ready (or READY_WAIT passes)."""


READY_WAIT = 10.0
"""How long the first start waits for a child to be ready before starting the next ones anyway."""
READY_POLL = 0.02
"""How often a first start checks a child's readiness."""


@dataclass
class _Running:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = 0.0
    restarts: int = 0
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    ready_seen: bool = False


class Supervisor:
    def __init__(
        self,
        specs: list[ChildSpec],
        stop_grace: float = 10.0,
        restart_backoff: Callable[[], RestartBackoff] = RestartBackoff,
    ) -> None:
        self._children = [_Running(spec, backoff=restart_backoff()) for spec in specs]
        self._stop_grace = stop_grace
        self._stopping = False
        self._exit_status = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        os.set_blocking(self._wake_read, False)

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> int:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        signal.set_wakeup_fd(self._wake_write)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the loop
        try:
            while not self._stopping:
                self._start_due()
                self._reap()
                # While a first start waits on a child's readiness, look often: the next ones start sooner.
                self._sleep(READY_POLL if self._awaiting_readiness() else 0.2)
        finally:
            self._shutdown()
        return self._exit_status

    def _start_due(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if not self._earlier_ready(child, now):
                return
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                restarted = child.restarts > 0
                env = {**os.environ, **child.spec.env}
                child.process = subprocess.Popen(
                    child.spec.argv(restarted), env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
                )
                child.started = now
                child.restart_at = None
                log.info("%s started (pid %d)%s", child.spec.name, child.process.pid, " again" if restarted else "")

    def _awaiting_readiness(self) -> bool:
        """Whether the first start is still under way (some child has never been started)."""
        return any(child.process is None and child.restarts == 0 for child in self._children)

    def _earlier_ready(self, child: _Running, now: float) -> bool:
        """Whether the children before `child` that have a readiness check passed it (first start only)."""
        for earlier in self._children:
            if earlier is child:
                return True
            if earlier.spec.ready is None or earlier.ready_seen:
                continue
            if earlier.process is not None and earlier.spec.ready():
                earlier.ready_seen = True
            elif earlier.process is not None and now - earlier.started > READY_WAIT:
                log.warning("%s is not ready after %.0fs; starting the others anyway", earlier.spec.name, READY_WAIT)
                earlier.ready_seen = True
            else:
                return False
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for child in self._children:
                if child.process is not None and child.process.pid == pid:
                    child.process.returncode = os.waitstatus_to_exitcode(status)
                    if child.process.returncode in NOT_RESTARTED:
                        log.error(
                            "%s (pid %d) exited with %d: a restart would fail the same way; stopping the console",
                            child.spec.name,
                            pid,
                            child.process.returncode,
                        )
                        child.process = None
                        child.restart_at = None
                        self._exit_status = self._exit_status or DATA_DIR_UNWRITABLE
                        self._stopping = True
                        continue
                    uptime = time.monotonic() - child.started
                    delay = child.backoff.delay_after_exit(uptime)
                    log.warning(
                        "%s (pid %d) exited with %s; restarting in %.1fs",
                        child.spec.name,
                        pid,
                        child.process.returncode,
                        delay,
                    )
                    child.process = None
                    child.restarts += 1
                    child.restart_at = time.monotonic() + delay
            # Any other pid is an adopted orphan (a reader worker whose broker died): reaped, nothing more.

    def _sleep(self, seconds: float) -> None:
        try:
            select.select([self._wake_read], [], [], seconds)
        except InterruptedError:
            pass
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _shutdown(self) -> None:
        log.info("stopping")
        # The API first, so no new command arrives while the broker winds down its workers.
        for child in reversed(self._children):
            if child.process is not None:
                _signal(child.process.pid, signal.SIGTERM)
                self._wait_for(child.process.pid, self._stop_grace)
        deadline = time.monotonic() + self._stop_grace
        while True:
            self._reap_quietly()
            left = _children_of(os.getpid())
            if not left:
                break
            for pid in left:
                _signal(pid, signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL)
            time.sleep(0.05)

    def _wait_for(self, pid: int, grace: float) -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self._reap_quietly()
            if not _exists(pid):
                return
            time.sleep(0.02)
        _signal(pid, signal.SIGKILL)

    def _reap_quietly(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError as error:
        return error.errno != errno.ESRCH


def _children_of(parent: int) -> list[int]:
    """Live (non-zombie) processes whose parent is `parent`, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != b"Z":
            found.append(int(entry))
    return found
