"""Start-up time against the log's size: `bench/startup.py --events N` prints exactly two lines,

    startup_s_empty=<x>
    startup_s_events=<y>

each the median of three starts of `nhi-console serve --no-pcsc` (a clinic's console, no bench), from launching
it to its first answered `GET /api/common/v1/Status`: on an empty data dir, and on one whose log holds N
events of a clinic's mix (bench/realistic_log.py, written by the console's own `SqliteEventStore`).

Before the timed starts, each data dir is started once untimed: that start makes the TLS certificates (which
only a first start ever does) and, with the log, writes the snapshot a console keeps beside it, so the timed
starts measure what every later start of a long-running installation costs. Anything else (progress, how long
the build took, whether a snapshot is there) goes to standard error. Run the old code's starts the same way
with `PYTHONPATH=<its checkout> .venv/bin/python bench/startup.py --events N`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.realistic_log import make_realistic_log
from tests.integration.console import RunningConsole, free_port
from tests.waiting import wait_for

SCRIPT = Path(sys.executable).with_name("nhi-console")
STARTS = 3
STARTUP_TIMEOUT = 900.0
"""Seconds one start may take: the old code folds the whole log (about 25 s a million events)."""


def one_start(data_dir: Path) -> float:
    """Seconds from launching `serve` to its first Status answer; the console is stopped afterwards.

    Launched as tests/integration/console.py's `start_console` launches it, but timed on the Status answer
    alone: `start_console` goes on to read the log for its readers, a scan of every event that is the test
    helper's cost, not the console's (about 1 s at 5,000,000 events)."""
    port = free_port()
    log_path = data_dir.parent / f"console-{port}.log"
    command = [str(SCRIPT), "serve", "--no-pcsc", "--data-dir", str(data_dir), "--port", str(port)]
    began = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    console = RunningConsole(data_dir=data_dir, port=port, process=process, log_path=log_path, sim=False)
    try:
        wait_for(
            lambda: process.poll() is not None or (console.ca_file.exists() and console.status_ok()),
            STARTUP_TIMEOUT,
            "the console's first Status answer",
        )
        elapsed = time.perf_counter() - began
        if process.poll() is not None:
            raise RuntimeError(f"console exited with {process.returncode}:\n{log_path.read_text()}")
    finally:
        console.stop(timeout=120)
    return elapsed


def measure(data_dir: Path) -> float:
    """The median of STARTS timed starts, after one untimed start (certificates, snapshot)."""
    warm = one_start(data_dir)
    snapshots = sorted(path.name for path in data_dir.glob("*.snapshot.json"))
    print(f"{data_dir.name}: untimed first start {warm:.2f} s; snapshot files: {snapshots or 'none'}", file=sys.stderr)
    times = [one_start(data_dir) for _ in range(STARTS)]
    print(f"{data_dir.name}: starts {', '.join(f'{t:.2f}' for t in times)} s", file=sys.stderr)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log (default 1,000,000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nhi-bench-startup-") as scratch_name:
        scratch = Path(scratch_name)
        empty, full = scratch / "empty", scratch / "events"
        empty.mkdir()
        full.mkdir()
        built = time.perf_counter()
        make_realistic_log(full / "console.db", args.events)
        print(f"built a log of {args.events:,} events in {time.perf_counter() - built:.0f} s", file=sys.stderr)
        empty_s = measure(empty)
        full_s = measure(full)
    print(f"startup_s_empty={empty_s:.2f}")
    print(f"startup_s_events={full_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
