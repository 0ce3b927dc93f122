"""Liveness under stalls (issue 19), pure: the broker's own stalls are forgiven, the worker's heartbeat thread
counts, a command answered at its deadline still holds its reader until the worker answers, and the worker's
heartbeat stops vouching for a main loop stuck for minutes."""

from __future__ import annotations

import pytest
import zmq

from broker.runtime.liveness import ANSWER_WAIT_LIMIT, WorkerRegistry, heartbeat_owner
from broker.runtime.worker_pool import ReaderSpec, WorkerPool
from contract.protocol import HEARTBEAT_SUFFIX, Heartbeat, parse
from tests.unit.test_worker_pool import FakeOs
from workers import heartbeat

TURN = 0.1
"""The broker's loop judges liveness about this often (broker/runtime/loop.py)."""


def turns(registry: WorkerRegistry, start: float, end: float) -> None:
    """The broker's loop turning normally from `start` to `end`."""
    now = start
    while now <= end:
        registry.turned(now)
        now += TURN


def test_heartbeat_owner_names_the_worker_behind_a_heartbeat_socket() -> None:
    identity = heartbeat.new_identity(1234)
    assert heartbeat_owner(identity + HEARTBEAT_SUFFIX) == identity
    assert heartbeat_owner(identity) is None
    assert heartbeat_owner(HEARTBEAT_SUFFIX) is None, "no worker's identity is empty"
    assert not identity.startswith(b"\x00"), "ZeroMQ keeps identities starting with a zero byte for its own"
    assert heartbeat.new_identity(1234) != identity, "unique per start, even with a reused pid"


def test_a_broker_stall_is_not_held_against_a_worker() -> None:
    """SIGSTOP for 10 s: the worker's heartbeats of those 10 s wait unread; at the first turn after it, before
    any of them is read, the worker is not silent."""
    registry = WorkerRegistry(heartbeat_interval=1.0)
    turns(registry, 99.0, 100.0)
    registry.seen(b"w", "R", pid=10, now=100.0)
    registry.turned(100.05)
    forgiven = registry.turned(110.05)  # the loop stood still for 10 s
    assert forgiven == pytest.approx(9.0), "all of the gap but one interval"
    assert registry.silent(110.05) == []
    assert registry.silent(110.05 + 1.0) == [], "its queued heartbeats have time to be read"


def test_a_worker_that_died_during_a_stall_is_still_found_silent() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w", "R", pid=10, now=100.0)
    registry.turned(100.0)
    registry.turned(110.0)
    turns(registry, 110.1, 113.0)
    assert [c.reader for c in registry.silent(113.0)] == ["R"], "two intervals of listening after one forgiven"


def test_normal_turns_forgive_nothing() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w", "R", pid=10, now=0.0)
    forgiven = [registry.turned(t * TURN) for t in range(40)]
    assert set(forgiven) == {0.0}
    assert [c.reader for c in registry.silent(3.9)] == ["R"]


def test_a_broker_slow_on_every_turn_still_finds_a_silent_worker() -> None:
    """Turns of 1.5 s each: each counts one interval, so liveness still advances."""
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w", "R", pid=10, now=0.0)
    registry.turned(0.0)
    found = None
    for turn in range(1, 10):
        registry.turned(turn * 1.5)
        if registry.silent(turn * 1.5):
            found = turn
            break
    assert found == 4, "three intervals counted, then one more"


def test_heartbeats_from_the_heartbeat_thread_keep_a_busy_worker() -> None:
    """No status report for 30 s (a slow command holds the main loop), a heartbeat every half interval."""
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w", "R", pid=10, now=0.0)
    for step in range(60):
        now = step * 0.5
        registry.turned(now)
        heartbeat_of = heartbeat_owner(b"w" + HEARTBEAT_SUFFIX)
        assert heartbeat_of is not None
        registry.touch(heartbeat_of, now)
        assert registry.silent(now) == []


def test_a_command_answered_at_its_deadline_holds_its_reader_until_the_worker_answers() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w", "R", pid=10, now=0.0)
    assert not registry.busy("R", 0.0)
    registry.sent("R", "first", 0.0)
    assert registry.busy("R", 10.0), "the broker answered the caller at 10 s; the worker still runs it"
    registry.seen(b"w", "R", pid=10, now=11.0)
    assert registry.busy("R", 11.0), "a status report of the same worker does not forget what it owes"
    registry.answered(b"w", "first")
    assert not registry.busy("R", 16.0), "the late answer frees the reader for the next command"


def test_a_new_worker_owes_nothing() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"old", "R", pid=10, now=0.0)
    registry.sent("R", "first", 0.0)
    registry.seen(b"new", "R", pid=11, now=5.0)
    assert not registry.busy("R", 5.0)


def test_an_answer_that_never_comes_holds_the_reader_only_so_long() -> None:
    """A request lost on the way: the worker's heartbeats would have stopped long before, had it been stuck."""
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w", "R", pid=10, now=0.0)
    registry.sent("R", "lost", 0.0)
    assert registry.busy("R", ANSWER_WAIT_LIMIT)
    assert not registry.busy("R", ANSWER_WAIT_LIMIT + 0.1)
    assert heartbeat.HUNG_AFTER < ANSWER_WAIT_LIMIT


def test_a_broker_stall_does_not_count_against_what_a_worker_owes() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w", "R", pid=10, now=0.0)
    registry.sent("R", "slow", 0.0)
    registry.turned(0.0)
    registry.turned(100.0)
    assert registry.busy("R", ANSWER_WAIT_LIMIT + 50.0)


def test_the_heartbeat_vouches_for_a_loop_in_one_command_only_so_long() -> None:
    assert heartbeat.vouches(now=100.0, loop_turned=100.0, hung_after=120.0)
    assert heartbeat.vouches(now=220.0, loop_turned=100.0, hung_after=120.0), "a slow card: still alive"
    assert not heartbeat.vouches(now=220.1, loop_turned=100.0, hung_after=120.0), "hung: let the broker replace it"


def test_a_broker_stall_moves_a_new_workers_registration_deadline() -> None:
    fake_os = FakeOs()
    registry = WorkerRegistry(1.0)
    pool = WorkerPool(
        "ipc:///tmp/w.sock",
        registry,
        registration_timeout=10.0,
        spawn=fake_os.spawn,
        send_signal=fake_os.send_signal,
        has_exited=fake_os.has_exited,
    )
    desired = {"R": ReaderSpec("R", "sim.virtual_reader:open_reader")}
    pool.reconcile(desired, now=0.0)
    (child,) = fake_os.running_for("R")
    pool.forgive(9.0, now=10.5)  # the broker stood still from 0.5 to 10.5
    lost, _ = pool.reconcile(desired, now=10.5)
    assert lost == [] and fake_os.signals == []
    lost, _ = pool.reconcile(desired, now=19.1)
    assert lost == [("R", "worker never reported")] and fake_os.signals == [(child.pid, 9)]


def test_a_broker_stall_keeps_the_adoption_window_open_as_long() -> None:
    fake_os = FakeOs()
    registry = WorkerRegistry(1.0)
    pool = WorkerPool(
        "ipc:///tmp/w.sock",
        registry,
        adopt_until=2.5,
        spawn=fake_os.spawn,
        send_signal=fake_os.send_signal,
        has_exited=fake_os.has_exited,
    )
    desired = {"R": ReaderSpec("R", "sim.virtual_reader:open_reader")}
    pool.forgive(9.0, now=10.0)  # stalled from 1.0 to 10.0, inside the window
    pool.reconcile(desired, now=10.0)
    assert fake_os.running_for("R") == [], "the survivors still have their 1.5 s to re-register"
    pool.reconcile(desired, now=11.6)
    assert len(fake_os.running_for("R")) == 1


def test_the_heartbeat_thread_beats_from_its_own_socket_and_stops_for_a_hung_loop() -> None:
    """The one test here with a thread and a socket (inproc, milliseconds): the wire side of the rules above."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind("inproc://heartbeat-test")
    clock = [0.0]
    thread = heartbeat.HeartbeatThread(
        context, "inproc://heartbeat-test", b"w-1", 0.02, hung_after=5.0, clock=lambda: clock[0]
    )
    thread.start()
    try:
        assert router.poll(2000), "a heartbeat within an interval"
        identity, *frames = router.recv_multipart()
        assert identity == b"w-1" + HEARTBEAT_SUFFIX and isinstance(parse(frames), Heartbeat)
        clock[0] = 5.1  # the main loop has been in one command for longer than `hung_after`
        while router.poll(200):  # what was sent before it counted as hung
            router.recv_multipart()
        assert not router.poll(200), "no heartbeat for a hung main loop"
        thread.loop_turned()
        assert router.poll(2000), "heartbeats again once the loop turns"
    finally:
        thread.stop()
        router.close(linger=0)
        context.term()
