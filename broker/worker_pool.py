"""Starting, restarting and stopping reader workers: the broker's thin process layer.

`reconcile()` compares the readers wanted with the workers running and acts on
the difference; running it twice in a row does nothing the second time.  A
worker is either our child (we started it) or adopted (a previous broker
started it and it re-registered with us after that broker died): both are
watched through their heartbeats, children also through `poll()`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from broker.backoff import RestartBackoff
from broker.liveness import WorkerRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A reader to serve, and the back-end (`module:factory`) that opens it."""

    name: str
    backend: str


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    started: float


@dataclass
class _ReaderSlot:
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    not_before: float = 0.0


class WorkerPool:
    def __init__(self, endpoint: str, registry: WorkerRegistry, *, adopt_until: float = 0.0) -> None:
        self._endpoint = endpoint
        self._registry = registry
        self._children: dict[str, _Child] = {}
        self._slots: dict[str, _ReaderSlot] = {}
        self._adopt_until = adopt_until
        """Until then, wait for surviving workers to re-register instead of starting new ones."""

    def reconcile(self, desired: dict[str, ReaderSpec], now: float) -> tuple[list[tuple[str, str]], list[str]]:
        """Act on the difference; returns (workers lost with a reason, readers no longer wanted)."""
        lost: list[tuple[str, str]] = []
        for reader, child in list(self._children.items()):
            code = child.process.poll()
            if code is not None:
                del self._children[reader]
                connection = self._registry.get(reader)
                if connection is not None and connection.pid == child.process.pid:
                    self._registry.forget(reader)
                lost.append((reader, f"worker exited with {code}"))
                self._schedule_restart(reader, now - child.started, now)
        for connection in self._registry.silent(now):
            self._registry.forget(connection.reader)
            self._kill(connection.pid)
            if connection.reader not in [reader for reader, _ in lost]:
                lost.append((connection.reader, "worker stopped answering"))
            child = self._children.pop(connection.reader, None)
            started = child.started if child else now
            self._schedule_restart(connection.reader, now - started, now)
        unwanted = [r for r in set(self._children) | {c.reader for c in self._registry.connections()} if r not in desired]
        for reader in unwanted:
            self._stop_reader(reader)
        if now >= self._adopt_until:
            for reader, spec in desired.items():
                if reader in self._children or self._registry.get(reader) is not None:
                    continue
                if now >= self._slot(reader).not_before:
                    self._spawn(spec, now)
        return lost, unwanted

    def _slot(self, reader: str) -> _ReaderSlot:
        return self._slots.setdefault(reader, _ReaderSlot())

    def _schedule_restart(self, reader: str, uptime: float, now: float) -> None:
        slot = self._slot(reader)
        slot.not_before = now + slot.backoff.delay_after_exit(uptime)

    def _spawn(self, spec: ReaderSpec, now: float) -> None:
        command = [
            sys.executable, "-m", "workers",
            "--endpoint", self._endpoint,
            "--reader", spec.name,
            "--backend", spec.backend,
            "--heartbeat", str(self._registry.heartbeat_interval),
        ]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        self._children[spec.name] = _Child(process, now)
        log.info("started worker pid %d for reader %r", process.pid, spec.name)

    def _stop_reader(self, reader: str) -> None:
        child = self._children.pop(reader, None)
        connection = self._registry.forget(reader)
        if child is not None:
            _terminate(child.process.pid)
            try:
                child.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._kill(child.process.pid)
                child.process.wait()
        elif connection is not None:
            _terminate(connection.pid)

    def _kill(self, pid: int) -> None:
        if pid == os.getpid():
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self, grace: float = 3.0) -> None:
        """Stop every worker, ours and adopted; the ones that ignore SIGTERM get SIGKILL after `grace`."""
        pids = {child.process.pid for child in self._children.values()}
        pids |= {connection.pid for connection in self._registry.connections()}
        for pid in pids:
            _terminate(pid)
        deadline = time.monotonic() + grace
        for child in self._children.values():
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill(child.process.pid)
                child.process.wait()
        for pid in pids - {child.process.pid for child in self._children.values()}:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                self._kill(pid)
        self._children.clear()


def _terminate(pid: int) -> None:
    if pid == os.getpid():
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
