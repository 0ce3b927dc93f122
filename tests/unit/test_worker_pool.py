"""The worker pool's decisions, with fake processes: spawn, restart, hung, silent, adopted, unwanted."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field

import pytest

from broker.runtime.liveness import WorkerRegistry
from broker.runtime.worker_pool import STOP_GRACE, ReaderSpec, WorkerPool

READER_A = ReaderSpec("Reader A", "sim.virtual_reader:open_reader")
READER_B = ReaderSpec("Reader B", "sim.virtual_reader:open_reader")


@dataclass
class FakeProcess:
    pid: int
    argv: list[str]
    returncode: int | None = None
    ignores_sigterm: bool = False
    """Slow to exit (a loaded machine, a process stopped or stuck in the kernel): only SIGKILL ends it."""
    waits: int = 0

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.waits += 1
        if self.returncode is None and timeout is not None:
            raise subprocess.TimeoutExpired(self.argv, timeout)
        if self.returncode is None:
            raise AssertionError("waited, with no timeout, on a process still running: the pool would hang")
        return self.returncode


@dataclass
class FakeOs:
    processes: dict[int, FakeProcess] = field(default_factory=dict)
    signals: list[tuple[int, int]] = field(default_factory=list)
    next_pid: int = 100
    ended: set[int] = field(default_factory=set)
    """Pids of processes that are not the pool's children (adopted workers) and have exited."""

    def spawn(self, argv: list[str]) -> FakeProcess:
        self.next_pid += 1
        process = FakeProcess(self.next_pid, argv)
        self.processes[process.pid] = process
        return process

    def send_signal(self, pid: int, signum: int) -> None:
        self.signals.append((pid, signum))
        if pid in self.processes and not (signum == signal.SIGTERM and self.processes[pid].ignores_sigterm):
            self.processes[pid].returncode = -signum

    def has_exited(self, pid: int) -> bool:
        process = self.processes.get(pid)
        return pid in self.ended or (process is not None and process.returncode is not None)

    def running_for(self, reader: str) -> list[FakeProcess]:
        return [p for p in self.processes.values() if p.returncode is None and reader in p.argv]


@pytest.fixture
def fake_os() -> FakeOs:
    return FakeOs()


def make_pool(fake_os: FakeOs, registry: WorkerRegistry, adopt_until: float = 0.0) -> WorkerPool:
    return WorkerPool(
        "ipc:///tmp/w.sock",
        registry,
        adopt_until=adopt_until,
        registration_timeout=10.0,
        spawn=fake_os.spawn,
        send_signal=fake_os.send_signal,
        has_exited=fake_os.has_exited,
    )


def register(registry: WorkerRegistry, process: FakeProcess, reader: str, now: float) -> None:
    registry.seen(f"id-{process.pid}".encode(), reader, process.pid, now)


def test_one_worker_per_reader_and_reconcile_is_idempotent(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    desired = {r.name: r for r in (READER_A, READER_B)}
    assert pool.reconcile(desired, now=0.0) == ([], [])
    assert pool.reconcile(desired, now=0.1) == ([], [])
    assert len(fake_os.processes) == 2
    [a] = fake_os.running_for("Reader A")
    assert a.argv[a.argv.index("--backend") + 1] == READER_A.backend


def test_an_exited_worker_is_reported_and_restarted_after_backoff(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    desired = {READER_A.name: READER_A}
    pool.reconcile(desired, now=0.0)
    [first] = fake_os.running_for("Reader A")
    register(registry, first, "Reader A", 0.5)
    first.returncode = -9
    lost, _ = pool.reconcile(desired, now=1.0)
    assert lost == [("Reader A", "worker exited with -9")]
    assert registry.get("Reader A") is None
    assert fake_os.running_for("Reader A") == []  # not before the backoff delay (0.1 s)
    pool.reconcile(desired, now=1.05)
    assert fake_os.running_for("Reader A") == []
    pool.reconcile(desired, now=1.11)
    assert len(fake_os.running_for("Reader A")) == 1


def test_a_worker_that_never_reports_is_killed_and_replaced(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    desired = {READER_A.name: READER_A}
    pool.reconcile(desired, now=0.0)
    [hung] = fake_os.running_for("Reader A")
    assert pool.reconcile(desired, now=9.9) == ([], [])
    lost, _ = pool.reconcile(desired, now=10.1)
    assert lost == [("Reader A", "worker never reported")]
    assert (hung.pid, signal.SIGKILL) in fake_os.signals
    pool.reconcile(desired, now=10.3)
    assert [p.pid for p in fake_os.running_for("Reader A")] != [hung.pid]
    assert len(fake_os.running_for("Reader A")) == 1


def test_a_silent_worker_is_killed_after_three_intervals(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    desired = {READER_A.name: READER_A}
    pool.reconcile(desired, now=0.0)
    [worker] = fake_os.running_for("Reader A")
    register(registry, worker, "Reader A", 1.0)
    assert pool.reconcile(desired, now=3.9) == ([], [])
    lost, _ = pool.reconcile(desired, now=4.1)
    assert lost == [("Reader A", "worker stopped answering")]
    assert fake_os.signals == [(worker.pid, signal.SIGKILL)]


def test_during_adoption_grace_nothing_is_started_and_an_adopted_worker_is_kept(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry, adopt_until=2.5)
    desired = {r.name: r for r in (READER_A, READER_B)}
    pool.reconcile(desired, now=0.0)
    assert fake_os.processes == {}
    registry.seen(b"survivor", "Reader A", 4242, 1.0)  # a previous broker's worker re-registered
    pool.reconcile(desired, now=2.6)
    assert fake_os.running_for("Reader A") == []
    assert len(fake_os.running_for("Reader B")) == 1


def test_a_silent_adopted_worker_is_killed_by_pid(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    registry.seen(b"survivor", "Reader A", 4242, 0.0)
    lost, _ = pool.reconcile({READER_A.name: READER_A}, now=3.5)
    assert lost == [("Reader A", "worker stopped answering")]
    assert (4242, signal.SIGKILL) in fake_os.signals


def test_an_adopted_worker_that_exits_is_lost_at_once_not_after_its_heartbeats(fake_os: FakeOs) -> None:
    """Not our child, so no poll(): its pid says it ended, long before 3 heartbeats of silence."""
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    registry.seen(b"survivor", "Reader A", 4242, 0.0)
    assert pool.reconcile({READER_A.name: READER_A}, now=0.1) == ([], [])
    fake_os.ended.add(4242)  # kill -9; the supervisor, its parent now, reaps it
    lost, _ = pool.reconcile({READER_A.name: READER_A}, now=0.2)
    assert lost == [("Reader A", "worker exited")]
    assert registry.get("Reader A") is None and (4242, signal.SIGKILL) not in fake_os.signals
    pool.reconcile({READER_A.name: READER_A}, now=0.2 + 0.1)  # restarted after the first backoff step
    assert len(fake_os.running_for("Reader A")) == 1


def test_an_unwanted_reader_is_stopped_and_reported(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    pool.reconcile({READER_A.name: READER_A}, now=0.0)
    [worker] = fake_os.running_for("Reader A")
    lost, unwanted = pool.reconcile({}, now=0.5)
    assert (lost, unwanted) == ([], ["Reader A"])
    assert fake_os.signals == [(worker.pid, signal.SIGTERM)]
    assert pool.reconcile({}, now=0.6) == ([], [])


def test_a_worker_slow_to_stop_is_never_waited_on_and_its_reader_waits_for_it(fake_os: FakeOs) -> None:
    """The broker's loop runs reconcile(): a wait there held every caller (a 503 under fuzzing, issue 23's CI).
    The worker is told, killed past its grace on a later turn, and its reader's next worker starts once it is
    gone, never beside it."""
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    desired = {READER_A.name: READER_A}
    pool.reconcile(desired, now=0.0)
    [worker] = fake_os.running_for("Reader A")
    register(registry, worker, "Reader A", 0.1)
    worker.ignores_sigterm = True
    assert pool.reconcile({}, now=0.5) == ([], ["Reader A"])
    assert fake_os.signals == [(worker.pid, signal.SIGTERM)] and pool.is_stopping(worker.pid)
    pool.reconcile(desired, now=0.5 + STOP_GRACE - 0.1)  # wanted again (plugged back) while it is still there
    assert fake_os.running_for("Reader A") == [worker] and fake_os.signals[-1] == (worker.pid, signal.SIGTERM)
    pool.reconcile(desired, now=0.5 + STOP_GRACE)
    assert fake_os.signals[-1] == (worker.pid, signal.SIGKILL)
    pool.reconcile(desired, now=0.5 + STOP_GRACE + 0.1)
    [successor] = fake_os.running_for("Reader A")
    assert successor.pid != worker.pid and not pool.is_stopping(worker.pid)
    assert worker.waits == 0


def test_stop_all_also_ends_the_workers_still_stopping(fake_os: FakeOs) -> None:
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    pool.reconcile({READER_A.name: READER_A}, now=0.0)
    [worker] = fake_os.running_for("Reader A")
    worker.ignores_sigterm = True
    pool.reconcile({}, now=0.5)
    pool.stop_all(grace=0.0)
    assert fake_os.signals[-1] == (worker.pid, signal.SIGKILL) and not pool.is_stopping(worker.pid)
