"""Startup time to the first Status answer, and GET Status latency over keep-alive HTTPS.

Run: `make bench` (or `.venv/bin/python bench/status_latency.py [--calls 1000] [--runs 3]`).
Starts a fresh `nhi-console serve --sim` in a temporary data dir for each run,
so startup includes generating the local CA and an empty event log.
"""

from __future__ import annotations

import argparse
import http.client
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile  # noqa: E402
from tests.integration.console import start_console  # noqa: E402


def one_run(calls: int, warmup: int, durability: str) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory(prefix="nhi-bench-") as scratch:
        started = time.perf_counter()
        console = start_console(Path(scratch) / "data", "--durability", durability)
        startup = time.perf_counter() - started
        try:
            connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context())
            samples = []
            for index in range(warmup + calls):
                begin = time.perf_counter()
                connection.request("GET", "/api/common/v1/Status")
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - begin
                if response.status != 200:
                    raise RuntimeError(f"Status answered HTTP {response.status}")
                if index >= warmup:
                    samples.append(elapsed)
            connection.close()
        finally:
            console.stop()
    return startup, samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--durability", choices=["full", "normal"], default="full",
                        help="the event log's SQLite synchronous setting (the console's default is full)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, python {platform.python_version()}")
    print(f"durability: {args.durability}; {args.calls} keep-alive GET /api/common/v1/Status per run")
    print(f"{'run':>3}  {'startup s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'max ms':>7}  calls")
    for run in range(1, args.runs + 1):
        startup, samples = one_run(args.calls, args.warmup, args.durability)
        print(
            f"{run:>3}  {startup:>9.2f}  {statistics.median(samples) * 1000:>7.2f}  "
            f"{percentile(samples, 0.99) * 1000:>7.2f}  {max(samples) * 1000:>7.2f}  {len(samples)}"
        )


if __name__ == "__main__":
    main()
