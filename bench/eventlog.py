"""The event log at scale: append throughput, Record latency at 1M calls, export and verify of 1M events, and
a console's startup over such a log.

Run: `make bench` (all benchmarks) or `.venv/bin/python bench/eventlog.py`. Builds its logs in a temporary
directory (about 2 minutes on a 2-core machine).
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.make_log import make_log
from bench.percentiles import percentile
from bench.report import Row
from eventlog.sqlite_store import SqliteEventStore
from tests.integration.console import start_console

SCRIPT = Path(sys.executable).with_name("nhi-console")
PAYLOAD = (
    b'{"atr":"3B89","card_ref":"card:0123456789abcdef0123456789abcdef","kind":"hc","reader":"Reader 0","session":1}'
)


def append_rate(scratch: Path, durability: str, per_commit: int, total: int) -> float:
    store = SqliteEventStore(scratch / f"append-{durability}-{per_commit}.db", durability=durability)
    begin = time.perf_counter()
    for index in range(total):
        store.append_event("CardInserted", 2, PAYLOAD, "2026-11-23T12:00:00.0000000+08:00")
        if index % per_commit == per_commit - 1:
            store.commit()
    store.commit()
    elapsed = time.perf_counter() - begin
    store.close()
    return total / elapsed


def timed(*args: str) -> float:
    begin = time.perf_counter()
    subprocess.run([str(SCRIPT), "log", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - begin


def rows(scratch: Path) -> list[Row]:
    section = "4. the event log"
    table = []
    for durability in ("full", "normal"):
        for per_commit, total in ((1, 2_000), (100, 100_000)):
            rate = append_rate(scratch, durability, per_commit, total)
            table.append(
                Row(
                    section, f"event appends, durability {durability}, {per_commit} per commit", f"{rate:,.0f} events/s"
                )
            )
    big = scratch / "big"
    big.mkdir()
    built = time.perf_counter()
    make_log(big / "sim-console.db", 1_000_000, calls=1_000_000)
    table.append(
        Row(section, "building a log of 1,000,000 events + 1,000,000 calls", f"{time.perf_counter() - built:.0f} s")
    )
    table.append(
        Row(
            section,
            "export of 1,000,000 events (jsonl)",
            f"{timed('export', '--sim', '--data-dir', str(big), '--output', '/dev/null'):.1f} s",
        )
    )
    table.append(
        Row(
            section,
            "verify of 1,000,000 events + 1,000,000 calls",
            f"{timed('verify', '--sim', '--data-dir', str(big)):.1f} s",
        )
    )
    began = time.perf_counter()
    console = start_console(big, startup_timeout=120)
    table.append(
        Row(section, "startup over that log (1,000,000 events to fold)", f"{time.perf_counter() - began:.1f} s")
    )
    try:
        connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context())
        samples = []
        for index in range(550):
            begin = time.perf_counter()
            connection.request("GET", "/api/common/v1/Record?take=100")
            response = connection.getresponse()
            response.read()
            if index >= 50:
                samples.append(time.perf_counter() - begin)
        connection.close()
    finally:
        console.stop()
    median = statistics.median(samples)
    table.append(
        Row(
            section,
            "GET /api/common/v1/Record?take=100 at 1,000,000 records",
            f"p50 {median * 1000:.2f} ms, p99 {percentile(samples, 0.99) * 1000:.2f} ms",
            "≤ 10 ms p50",
            median <= 0.010,
        )
    )
    return table


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="nhi-bench-log-") as scratch_name:
        for row in rows(Path(scratch_name)):
            print(row.text())
