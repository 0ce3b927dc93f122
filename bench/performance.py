"""`make bench`: every benchmark, one table, written to docs/performance.md with the machine and the date.

1. GET /api/hc/v1/Basic through the console vs the same APDUs through pyscard (bench/overhead.py)
2. GET /api/common/v1/Status with 1, 8, 32 keep-alive HTTPS clients (bench/status_load.py)
3. two readers in parallel vs one (bench/readers_parallel.py)
4. the event log: appends, Record at 1,000,000 records, export, verify (bench/eventlog.py)
5. memory of every process idle and under load, startup time (bench/footprint.py)
6. the NHI dedicated reader on the bench (bench/nhi_reader.py)
7. an APDU through vpcd with and without TCP_QUICKACK re-armed (bench/vpcd_quickack.py)

Needs pcscd and vpcd (it starts its own pcscd, as the tests do; none other may run) and wrk. Takes about six
minutes on a 2-core machine. Numbers are printed and written, never asserted: a target missed is reported as
such, with what bounds it in docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import eventlog, footprint, nhi_reader, overhead, readers_parallel, status_load, vpcd_quickack
from bench.report import Row, machine, markdown
from tests.integration.console import running_console

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).with_name("performance-notes.md")
"""The hand-written half of docs/performance.md: what the profiles showed, what changed, what bounds a target."""


def load_and_memory() -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="nhi-bench-") as scratch,
        running_console(Path(scratch) / "data") as console,
    ):
        time.sleep(3)  # settled: the first reports, the first heartbeats
        idle = footprint.processes(console)
        load_rows, under_load = status_load.rows(console)
    section = "5. memory (serve --sim)"
    return (
        load_rows
        + footprint.memory_rows(section, "idle", idle, target_mib=250)
        + footprint.memory_rows(section, "under 8 Status clients", under_load)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="interleaved hc/v1/Basic pairs")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args()
    print(machine(), flush=True)
    rows: list[Row] = []

    def section(name: str, produce: Callable[[], list[Row]]) -> None:
        began = time.perf_counter()
        produced = produce()
        rows.extend(produced)
        for row in produced:
            print(row.text(), flush=True)
        print(f"  ({name}: {time.perf_counter() - began:.0f} s)", flush=True)

    section("startup", lambda: footprint.startup_rows("5. startup"))
    section("Status load and memory", load_and_memory)
    section("hc/v1/Basic overhead", lambda: overhead.rows(args.calls))
    section("two readers", readers_parallel.rows)
    with tempfile.TemporaryDirectory(prefix="nhi-bench-log-") as scratch:
        section("event log", lambda: eventlog.rows(Path(scratch)))
    section("NHI reader", nhi_reader.rows)
    section("vpcd QUICKACK", vpcd_quickack.rows)

    rows.sort(key=lambda row: row.section.split(".")[0])
    notes = NOTES.read_text() if NOTES.exists() else ""
    args.output.write_text(markdown(rows, notes, datetime.datetime.now().astimezone()))
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
