"""Starting, restarting and stopping reader workers: the broker's thin process layer.

`reconcile()` compares the readers wanted with the workers running and acts on
the difference; running it twice in a row does nothing the second time.  A
worker is either our child (we started it) or adopted (a previous broker
started it and it re-registered with us after that broker died): both are
watched through their heartbeats; children also through `poll()`, adopted ones
through their pid (the supervisor is their parent now), so that a worker's exit
fails its command in flight at once, whoever started it.

A worker is killed for silence only: its heartbeats come from a thread of
their own, so a slow card command does not make it look dead, and a stall of
the broker's own (`forgive`) is not held against it.

Nothing here waits for a process: the broker's loop runs `reconcile()`, and a
worker slow to exit (a loaded machine, a process stopped or stuck in the
kernel) held every caller while the loop waited on it. A worker told to stop
is signalled and kept aside; later turns reap it, kill it if it outlives
`STOP_GRACE`, and start no new worker for its reader until it is gone, since
a reader (a serial port above all) is opened by one process at a time.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from broker.runtime.backoff import RestartBackoff
from broker.runtime.liveness import WorkerRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A reader to serve, and the back-end (`module:factory`) that opens it."""

    name: str
    backend: str
    companions: tuple[str, ...] = ()
    """Other readers the same worker reports (the NHI reader's staff-card slot): never a process of their own."""
    device: str | None = None
    """What the back-end opens, when it is not `name`: the device path of a port named `COM3` (issue 21)."""


def wanted_names(desired: dict[str, ReaderSpec]) -> set[str]:
    """Every reader name a wanted worker may report: the specs' own and their companions'."""
    return set(desired) | {companion for spec in desired.values() for companion in spec.companions}


class WorkerProcess(Protocol):
    """What the pool needs of a started process (a `subprocess.Popen`)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def _spawn_process(argv: list[str]) -> WorkerProcess:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL)


def _send_signal(pid: int, signum: int) -> None:
    if pid == os.getpid():
        return
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _has_exited(pid: int) -> bool:
    """Whether a process that is not our child has ended: gone, or a zombie its parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[:1]
    except FileNotFoundError:
        return os.path.isdir("/proc")  # no /proc at all: cannot tell, its heartbeats will
    except OSError:
        return False
    return state in ([b"Z"], [b"X"])


STOP_GRACE = 3.0
"""Seconds a worker told to stop (SIGTERM) has to close its reader and exit before it is killed."""

REGISTRATION_TIMEOUT = 10.0
"""A new worker that has not reported within this long is hung (in start-up, or opening its reader)."""


@dataclass
class _Child:
    process: WorkerProcess
    started: float
    report_by: float = 0.0
    """It is hung if it has not reported by then (moved on by the broker's own stalls)."""


@dataclass
class _Stopping:
    """A child told to stop, not reaped yet: its reader gets no new worker until it is gone."""

    process: WorkerProcess
    reader: str
    kill_at: float
    killed: bool = False


@dataclass
class _ReaderSlot:
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    not_before: float = 0.0


class WorkerPool:
    def __init__(
        self,
        endpoint: str,
        registry: WorkerRegistry,
        *,
        adopt_until: float = 0.0,
        registration_timeout: float = REGISTRATION_TIMEOUT,
        worker_args: tuple[str, ...] = (),
        spawn: Callable[[list[str]], WorkerProcess] = _spawn_process,
        send_signal: Callable[[int, int], None] = _send_signal,
        has_exited: Callable[[int], bool] = _has_exited,
    ) -> None:
        self._endpoint = endpoint
        self._registry = registry
        self._registration_timeout = registration_timeout
        self._worker_args = worker_args
        """Added to every worker's command line (a reader agent's: where its key pair is)."""
        self._spawn_process = spawn
        self._signal = send_signal
        self._has_exited = has_exited
        self._children: dict[str, _Child] = {}
        self._stopping: list[_Stopping] = []
        self._slots: dict[str, _ReaderSlot] = {}
        self._adopt_until = adopt_until
        """Until then, wait for surviving workers to re-register instead of starting new ones."""

    def reconcile(self, desired: dict[str, ReaderSpec], now: float) -> tuple[list[tuple[str, str]], list[str]]:
        """Act on the difference; returns (workers lost with a reason, readers no longer wanted)."""
        lost: list[tuple[str, str]] = []
        self._reap(now)
        for reader, child in list(self._children.items()):
            code = child.process.poll()
            if code is not None:
                del self._children[reader]
                connection = self._registry.get(reader)
                if connection is not None and connection.pid == child.process.pid:
                    self._registry.forget(reader)
                lost.append((reader, f"worker exited with {code}"))
                self._schedule_restart(reader, now - child.started, now)
        ours = {child.process.pid for child in self._children.values()}
        for connection in self._registry.local_connections():
            if connection.pid not in ours and self._has_exited(connection.pid):
                # Adopted (or a dead child's companion reader): not ours to poll, so not left to the heartbeats.
                self._registry.forget(connection.reader)
                if connection.reader not in [reader for reader, _ in lost]:
                    lost.append((connection.reader, "worker exited"))
                self._schedule_restart(connection.reader, 0.0, now)
        for reader, child in list(self._children.items()):
            connection = self._registry.get(reader)
            registered = connection is not None and connection.pid == child.process.pid
            if not registered and now > child.report_by:
                del self._children[reader]
                self._end(child.process, reader, signal.SIGKILL, now)
                lost.append((reader, "worker never reported"))
                self._schedule_restart(reader, now - child.started, now)
        for connection in self._registry.silent(now):
            self._registry.forget(connection.reader)
            if connection.agent is not None:  # another machine's process: not ours to kill, nor to restart
                lost.append((connection.reader, f"agent {connection.agent} stopped answering"))
                continue
            if connection.reader not in [reader for reader, _ in lost]:
                lost.append((connection.reader, "worker stopped answering"))
            silent_child = self._children.pop(connection.reader, None)
            if silent_child is None or silent_child.process.pid != connection.pid:
                self._signal(connection.pid, signal.SIGKILL)
            if silent_child is not None:  # ours: killed, and reaped by a later turn, not waited on here
                self._end(silent_child.process, connection.reader, signal.SIGKILL, now)
            started = silent_child.started if silent_child else now
            self._schedule_restart(connection.reader, now - started, now)
        wanted = wanted_names(desired)
        unwanted = [
            r for r in set(self._children) | {c.reader for c in self._registry.local_connections()} if r not in wanted
        ]
        for reader in unwanted:
            self._stop_reader(reader, now)
        if now >= self._adopt_until:
            stopping = {entry.reader for entry in self._stopping}
            for reader, spec in desired.items():
                if reader in self._children or self._registry.get(reader) is not None or reader in stopping:
                    continue
                if now >= self._slot(reader).not_before:
                    self._spawn(spec, now)
        return lost, unwanted

    def is_stopping(self, pid: int) -> bool:
        """Whether this pid is a worker told to stop: what it still reports is not a reader coming back."""
        return any(entry.process.pid == pid for entry in self._stopping)

    def forgive(self, seconds: float, now: float) -> None:
        """The broker's loop stood still for `seconds` (`WorkerRegistry.turned`): the waits it times for
        workers (a new one's first report, the survivors' re-registration) are moved on by as much, as the
        workers' heartbeats are, since whatever they sent meanwhile is still unread."""
        for child in self._children.values():
            child.report_by += seconds
        if self._adopt_until > now - seconds:
            self._adopt_until += seconds

    def _slot(self, reader: str) -> _ReaderSlot:
        return self._slots.setdefault(reader, _ReaderSlot())

    def _schedule_restart(self, reader: str, uptime: float, now: float) -> None:
        slot = self._slot(reader)
        slot.not_before = now + slot.backoff.delay_after_exit(uptime)

    def _spawn(self, spec: ReaderSpec, now: float) -> None:
        command = [
            sys.executable,
            "-m",
            "workers",
            "--endpoint",
            self._endpoint,
            "--reader",
            spec.name,
            "--backend",
            spec.backend,
            "--heartbeat",
            str(self._registry.heartbeat_interval),
            *(["--device", spec.device] if spec.device is not None else []),
            *self._worker_args,
        ]
        process = self._spawn_process(command)
        self._children[spec.name] = _Child(process, now, now + self._registration_timeout)
        log.info("started worker pid %d for reader %r", process.pid, spec.name)

    def _end(self, process: WorkerProcess, reader: str, signum: int, now: float) -> None:
        """Signal a child and keep it aside until a later turn reaps it (`_reap`): never wait for it here."""
        self._signal(process.pid, signum)
        killed = signum == signal.SIGKILL
        self._stopping.append(_Stopping(process, reader, now if killed else now + STOP_GRACE, killed))

    def _reap(self, now: float) -> None:
        """Forget the children that have exited; kill those still there past their grace."""
        for entry in list(self._stopping):
            if entry.process.poll() is not None:
                self._stopping.remove(entry)
            elif not entry.killed and now >= entry.kill_at:
                log.warning(
                    "worker pid %d for reader %r did not stop within %.0f s: killed",
                    entry.process.pid,
                    entry.reader,
                    STOP_GRACE,
                )
                self._signal(entry.process.pid, signal.SIGKILL)
                entry.killed = True

    def _stop_reader(self, reader: str, now: float) -> None:
        child = self._children.pop(reader, None)
        connection = self._registry.forget(reader)
        if child is not None:
            self._end(child.process, reader, signal.SIGTERM, now)
        elif connection is not None:
            self._signal(connection.pid, signal.SIGTERM)

    def stop_all(self, grace: float = 3.0) -> None:
        """Stop every worker, ours and adopted; the ones that ignore SIGTERM get SIGKILL after `grace`."""
        children = [child.process for child in self._children.values()]
        children += [entry.process for entry in self._stopping]
        pids = {process.pid for process in children}
        pids |= {connection.pid for connection in self._registry.local_connections()}
        for pid in pids:
            self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in children:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(process.pid, signal.SIGKILL)
                process.wait()
        for pid in pids - {process.pid for process in children}:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                self._signal(pid, signal.SIGKILL)
        self._children.clear()
        self._stopping.clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
