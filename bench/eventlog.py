"""The event log at scale: append throughput, Record latency at 1M calls, export and verify of 1M events.

Run: `make bench` or `.venv/bin/python bench/eventlog.py`. Builds its logs in a temporary directory
(about 2 minutes on a 2-core machine).
"""

from __future__ import annotations

import http.client
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile  # noqa: E402
from bench.make_log import make_log  # noqa: E402
from eventlog.sqlite_store import SqliteEventStore  # noqa: E402
from tests.integration.console import start_console  # noqa: E402

SCRIPT = Path(sys.executable).with_name("nhi-console")
PAYLOAD = b'{"atr":"3B89","card_ref":"card:0123456789abcdef0123456789abcdef","kind":"hc","reader":"Reader 0","session":1}'


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


def main() -> None:
    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="nhi-bench-log-") as scratch_name:
        scratch = Path(scratch_name)
        print("append throughput (events/s; one commit = one fsync with durability full):")
        for durability in ("full", "normal"):
            for per_commit, total in ((1, 2_000), (100, 100_000)):
                rate = append_rate(scratch, durability, per_commit, total)
                print(f"  durability {durability:<6} {per_commit:>3} events per commit  {rate:>10,.0f} events/s")

        big = scratch / "big"
        big.mkdir()
        built = time.perf_counter()
        make_log(big / "sim-console.db", 1_000_000, calls=1_000_000)
        print(f"built a log of 1,000,000 events + 1,000,000 calls in {time.perf_counter() - built:.0f} s")
        export = timed("export", "--sim", "--data-dir", str(big), "--output", "/dev/null")
        verify = timed("verify", "--sim", "--data-dir", str(big))
        print(f"export of 1,000,000 events (jsonl): {export:.1f} s")
        print(f"verify of 1,000,000 events + 1,000,000 calls: {verify:.1f} s")

        console = start_console(big)
        try:
            connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context())
            samples = []
            for index in range(250):
                begin = time.perf_counter()
                connection.request("GET", "/api/common/v1/Record?take=100")
                response = connection.getresponse()
                response.read()
                if index >= 50:
                    samples.append(time.perf_counter() - begin)
            connection.close()
        finally:
            console.stop()
        print(f"GET /api/common/v1/Record?take=100 at 1,000,000 records: p50 {statistics.median(samples) * 1000:.2f} ms, "
              f"p99 {percentile(samples, 0.99) * 1000:.2f} ms ({len(samples)} calls, keep-alive HTTPS)")


if __name__ == "__main__":
    main()
