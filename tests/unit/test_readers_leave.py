"""A reader leaves the state once no one wants it, however its worker went (issue 21).

`Initial` on a port with no reader behind it answered 1202 and left the port's two readers (`/dev/ttyS0`,
`/dev/ttyS0#hpc`) in `GET /api/settings/v1/PcscReader/Readers` for good. Their worker had been told "not wanted"
on its next report and had exited before the broker's reconcile stopped it: the pool then found it exited
(`WorkerLost`, which keeps the reader for the restart that comes), and the reader, wanted by no one, was never
restarted nor detached. Now the state's readers follow what is wanted, whether the pool stopped the worker or the
worker had gone by itself.

Real here: the broker's core, its turn and the pool's decisions; the processes are fakes (tests/unit/
test_worker_pool.py's), so each ordering of the race is driven by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.runtime.clock import ManualClock
from broker.runtime.config import BrokerConfig
from broker.runtime.loop import Broker
from contract.protocol import WorkerStatus
from contract.status_codes import StatusCode
from tests.unit.test_worker_pool import FakeOs, FakeProcess, make_pool

pytestmark = pytest.mark.timeout(60)

PORT = "/dev/ttyS0"
STAFF_SLOT = f"{PORT}#hpc"
BACKEND = BrokerConfig.serial_backend


class Console:
    """One broker whose reconcile is driven by hand, its workers fake processes."""

    def __init__(self, tmp_path: Path, *, adopt_grace: float = 0.0) -> None:
        self.clock = ManualClock()
        config = BrokerConfig(
            api_endpoint=f"ipc://{tmp_path}/api.sock",
            worker_endpoint=f"ipc://{tmp_path}/workers.sock",
            database=tmp_path / "console.db",
            adopt_grace=adopt_grace,
        )
        self.broker = Broker(config, clock=self.clock)
        self.os = FakeOs()
        self.registry = self.broker._registry  # noqa: SLF001 - the pool and the loop share it
        adopt_until = self.clock.monotonic() + adopt_grace
        self.broker._pool = make_pool(self.os, self.registry, adopt_until=adopt_until)  # noqa: SLF001 - fake processes

    def reconcile(self) -> None:
        self.clock.advance(0.1)
        self.broker._reconcile(self.clock.monotonic())  # noqa: SLF001 - one turn's reconcile, by hand

    def report(self, process: FakeProcess, reader: str) -> None:
        """The worker's status report, as the loop takes it: registered, then folded into the state."""
        self.registry.seen(f"id-{process.pid}".encode(), reader, process.pid, self.clock.monotonic())
        self.broker.core.worker_reported(
            WorkerStatus(reader=reader, backend=BACKEND, pid=process.pid, fault=int(StatusCode.NHI_READER_FAILED))
        )

    def readers(self) -> set[str]:
        return set(self.broker.core.state.readers)

    def event_types(self) -> list[str]:
        return [event.type for event in self.broker.store.events()]

    def close(self) -> None:
        self.broker._shutdown()  # noqa: SLF001 - closes what `run` would have


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    made = Console(tmp_path)
    yield made
    made.close()


def _initial_tries_the_port(console: Console) -> FakeProcess:
    """`Initial` wants the port: its worker starts and reports both slots (the reader does not answer)."""
    console.broker.core.devices.want_serial(PORT)
    console.reconcile()
    (worker,) = console.os.running_for(PORT)
    console.report(worker, PORT)
    console.report(worker, STAFF_SLOT)
    assert console.readers() >= {PORT, STAFF_SLOT}
    return worker


def test_a_worker_that_left_before_it_was_stopped_takes_its_readers_with_it(console: Console) -> None:
    """The failing order: `Initial` is done with the port, its worker hears "not wanted" and exits, and only then
    does the reconcile run."""
    worker = _initial_tries_the_port(console)
    console.broker.core.devices.drop_serial(PORT)
    worker.returncode = 0  # told "reader not wanted" on its report, it exited by itself
    console.reconcile()
    assert not console.readers() & {PORT, STAFF_SLOT}, "no reader of the port stays in the list"
    assert console.os.running_for(PORT) == []
    console.reconcile()
    assert console.os.running_for(PORT) == [], "and no worker is started for it again"


def test_a_worker_still_running_is_stopped_and_its_readers_leave(console: Console) -> None:
    worker = _initial_tries_the_port(console)
    console.broker.core.devices.drop_serial(PORT)
    console.reconcile()
    assert worker.returncode is not None, "stopped"
    assert not console.readers() & {PORT, STAFF_SLOT}


def test_a_worker_that_dies_while_its_port_is_wanted_is_lost_and_restarted(console: Console) -> None:
    """Not a leaving: an `Initial` (or the session) still wants the port, so its readers stay for the restart."""
    worker = _initial_tries_the_port(console)
    worker.returncode = -9
    console.reconcile()
    assert console.readers() >= {PORT, STAFF_SLOT}
    assert "WorkerLost" in console.event_types() and "ReaderDetached" not in console.event_types()


def test_a_replayed_reader_no_one_wants_leaves_at_the_first_reconcile(tmp_path: Path) -> None:
    """A broker restarted while an `Initial` tried a port: what it was trying is not in the log, the port's readers
    are. Nothing wants them now, even while the survivors are waited for."""
    first = Console(tmp_path)
    try:
        _initial_tries_the_port(first)
        first.broker.core.commit()
    finally:
        first.close()
    restarted = Console(tmp_path, adopt_grace=2.5)
    try:
        assert restarted.readers() >= {PORT, STAFF_SLOT}, "replayed"
        restarted.reconcile()
        assert not restarted.readers() & {PORT, STAFF_SLOT}
    finally:
        restarted.close()
