"""A worker told to stop ends at once, not at its next status report (workers/loop.py `Worker.stop`).

The broker stops a worker when its reader is unplugged and starts no successor for that reader until the old
one is gone (broker/runtime/worker_pool.py): a worker that slept on in its poll until the next report, a
heartbeat interval later, held its reader that long. Real ZeroMQ sockets, no broker: the worker's poll has
nothing to wake it but `stop()`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sim.virtual_reader import open_reader
from workers.loop import Worker, WorkerConfig

pytestmark = pytest.mark.timeout(30)


HEARTBEAT = 60.0
"""Far longer than the join below waits: only the wake-up can end the loop in time."""


def test_stop_from_another_thread_ends_the_loop_before_its_next_report(tmp_path: Path) -> None:
    config = WorkerConfig(
        endpoint=f"ipc://{tmp_path}/no-broker.sock",
        reader="Stop Test Reader",
        backend="sim.virtual_reader:open_reader",
        heartbeat_interval=HEARTBEAT,
        orphan_after=HEARTBEAT * 10,
    )
    worker = Worker(config, open_reader(config.reader))
    loop = threading.Thread(target=worker.run, name="worker-loop", daemon=True)  # a failure leaves it asleep
    loop.start()
    threading.Event().wait(0.5)  # into its poll, with its first report sent: the next is a minute away
    worker.stop()
    loop.join(timeout=10)
    assert not loop.is_alive(), "the worker's loop slept on after stop()"
