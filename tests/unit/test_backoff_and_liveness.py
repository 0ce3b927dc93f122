"""Restart pacing (`RestartBackoff`) and worker liveness (`WorkerRegistry`): both pure, time passed in."""

from __future__ import annotations

import pytest

from broker.runtime.backoff import RestartBackoff
from broker.runtime.liveness import WorkerConnection, WorkerRegistry

# --- RestartBackoff ------------------------------------------------------------------


def test_backoff_doubles_from_initial_to_maximum() -> None:
    backoff = RestartBackoff()
    delays = [backoff.delay_after_exit(uptime=0.0) for _ in range(9)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])


def test_backoff_custom_parameters() -> None:
    backoff = RestartBackoff(initial=1.0, factor=3.0, maximum=20.0)
    assert [backoff.delay_after_exit(0.0) for _ in range(5)] == pytest.approx([1.0, 3.0, 9.0, 20.0, 20.0])


def test_backoff_resets_after_stable_run() -> None:
    backoff = RestartBackoff()
    for _ in range(5):
        backoff.delay_after_exit(uptime=0.5)
    assert backoff.delay_after_exit(uptime=10.0) == pytest.approx(0.1)
    assert backoff.delay_after_exit(uptime=0.5) == pytest.approx(0.2)


def test_backoff_does_not_reset_just_short_of_stable() -> None:
    backoff = RestartBackoff()
    for _ in range(3):
        backoff.delay_after_exit(uptime=0.5)
    assert backoff.delay_after_exit(uptime=9.99) == pytest.approx(0.8)


def test_backoff_stays_at_maximum_for_a_long_crash_loop() -> None:
    """A worker that keeps dying (a broken reader, ~85 minutes at 5 s) must keep getting the maximum delay."""
    backoff = RestartBackoff()
    delays = [backoff.delay_after_exit(uptime=0.0) for _ in range(1100)]
    assert delays[-1] == pytest.approx(backoff.maximum)
    assert max(delays) == pytest.approx(backoff.maximum)


# --- WorkerRegistry ---------------------------------------------------------------------


def test_seen_then_get() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    assert registry.get("R") is None
    assert registry.seen(b"w1", "R", pid=10, now=100.0) is None
    assert registry.get("R") == WorkerConnection(identity=b"w1", reader="R", pid=10, last_seen=100.0)
    assert registry.connections() == [WorkerConnection(b"w1", "R", 10, 100.0)]


def test_seen_again_by_same_identity_replaces_nothing() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w1", "R", pid=10, now=100.0)
    assert registry.seen(b"w1", "R", pid=10, now=101.0) is None
    connection = registry.get("R")
    assert connection is not None and connection.last_seen == 101.0


def test_touch_updates_last_seen_and_names_reader() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w1", "R", pid=10, now=100.0)
    registry.seen(b"w2", "S", pid=11, now=100.0)
    assert registry.touch(b"w2", now=105.0) == ["S"]
    s_connection = registry.get("S")
    r_connection = registry.get("R")
    assert s_connection is not None and s_connection.last_seen == 105.0
    assert r_connection is not None and r_connection.last_seen == 100.0


def test_touch_unknown_identity() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w1", "R", pid=10, now=100.0)
    assert registry.touch(b"stranger", now=105.0) == []
    connection = registry.get("R")
    assert connection is not None and connection.last_seen == 100.0


@pytest.mark.parametrize("interval", [0.5, 1.0, 2.0])
def test_silent_after_more_than_three_intervals(interval: float) -> None:
    registry = WorkerRegistry(heartbeat_interval=interval)
    registry.seen(b"w1", "R", pid=10, now=1000.0)
    assert registry.silent(now=1000.0) == []
    assert registry.silent(now=1000.0 + 3 * interval - 0.01) == []
    assert registry.silent(now=1000.0 + 3 * interval) == [], "exactly three intervals is not yet silent"
    assert [c.reader for c in registry.silent(now=1000.0 + 3 * interval + 0.01)] == ["R"]


def test_intervals_parameter_sets_the_limit() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0, intervals=5)
    registry.seen(b"w1", "R", pid=10, now=0.0)
    assert registry.silent(now=4.9) == []
    assert registry.silent(now=5.1) != []


def test_touch_keeps_a_worker_alive() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w1", "R", pid=10, now=0.0)
    registry.seen(b"w2", "S", pid=11, now=0.0)
    registry.touch(b"w1", now=2.5)
    assert [c.reader for c in registry.silent(now=4.0)] == ["S"]


def test_second_identity_for_same_reader_returns_replaced_connection() -> None:
    """A restarted worker takes over its reader; the broker learns which old connection to drop."""
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"old", "R", pid=10, now=1.0)
    replaced = registry.seen(b"new", "R", pid=20, now=2.0)
    assert replaced == WorkerConnection(identity=b"old", reader="R", pid=10, last_seen=1.0)
    assert registry.get("R") == WorkerConnection(identity=b"new", reader="R", pid=20, last_seen=2.0)
    assert registry.touch(b"old", now=3.0) == [], "the replaced connection no longer counts"
    assert len(registry.connections()) == 1


def test_forget() -> None:
    registry = WorkerRegistry(heartbeat_interval=1.0)
    registry.seen(b"w1", "R", pid=10, now=1.0)
    forgotten = registry.forget("R")
    assert forgotten == WorkerConnection(b"w1", "R", 10, 1.0)
    assert registry.get("R") is None
    assert registry.silent(now=100.0) == []
    assert registry.touch(b"w1", now=2.0) == []
    assert registry.forget("R") is None
