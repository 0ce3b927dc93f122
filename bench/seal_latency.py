"""Status p50/p99 through a running console, without and during a seal of 500,000 rows (issue 19).

`python bench/seal_latency.py [--rows 1000000] [--clients 4] [--seconds 10]`

The log is built first (`rows` Status calls, hash-chained, bench/make_log.py), so that the size rule seals all
but the newest half: 500,000 rows for the default. The same log is served twice by `serve` (no bench, no
readers): once with a row limit it never reaches (the baseline), once with the limit at `rows` and a seal
check a few seconds after the start. Clients are processes, each with a kept-alive HTTPS connection calling
Status back to back and noting when each call started and how long it took; the seal's window comes from the
broker's own log lines ("sealing ..." to "sealed segment ..."), and only the calls that started inside it are
counted as "during the seal". Target: p99 during the seal within 2x the baseline's p99.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import multiprocessing
import re
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.make_log import make_log
from bench.percentiles import percentile
from tests.integration.console import RunningConsole, start_console

STATUS = "/api/common/v1/Status"
SEAL_CHECK_SECONDS = 6.0
"""When the second console's broker checks for a seal: after its start, with the clients already running."""
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) broker INFO eventlog\.sealing: (sealing|sealed)")


def _client(port: int, ca_file: str, until: float, out: multiprocessing.Queue[list[tuple[float, float]]]) -> None:
    """Status back to back until `until` (wall clock); (start, seconds) per call."""
    context = ssl.create_default_context(cafile=ca_file)
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=30)
    samples: list[tuple[float, float]] = []
    while time.time() < until:
        started = time.time()
        begun = time.perf_counter()
        connection.request("GET", STATUS)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"Status answered HTTP {response.status}")
        samples.append((started, time.perf_counter() - begun))
    connection.close()
    out.put(samples)


def measure(console: RunningConsole, clients: int, seconds: float) -> list[tuple[float, float]]:
    until = time.time() + seconds
    queue: multiprocessing.Queue[list[tuple[float, float]]] = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_client, args=(console.port, str(console.ca_file), until, queue))
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    samples = [sample for _ in workers for sample in queue.get()]
    for worker in workers:
        worker.join()
    return samples


def seal_window(log_path: Path) -> tuple[float, float] | None:
    """The seal's start and end (epoch seconds) from the broker's log lines, if it ended."""
    start = end = None
    for line in log_path.read_text(errors="replace").splitlines():
        found = _LOG_TIME.match(line)
        if found is None:
            continue
        moment = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if found.group(2) == "sealing":
            start = moment
        else:
            end = moment
    return (start, end) if start is not None and end is not None else None


def summary(name: str, latencies: list[float]) -> str:
    ms = [value * 1000 for value in latencies]
    return f"{name:<34} {len(ms):>6} calls   p50 {percentile(ms, 0.5):6.2f} ms   p99 {percentile(ms, 0.99):6.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="calls in the log; half of them are sealed")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="the baseline's length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seal-latency-") as temp:
        data = Path(temp) / "data"
        data.mkdir()
        built = time.monotonic()
        make_log(data / "console.db", 0, args.rows, durability="normal")
        print(f"log of {args.rows:,} calls built in {time.monotonic() - built:.1f} s")

        common = ("--seal-check-interval", str(SEAL_CHECK_SECONDS))
        baseline_console = start_console(data, "--seal-max-rows", str(args.rows * 100), *common, sim=False)
        try:
            measure(baseline_console, args.clients, 2.0)  # warm up
            baseline = [latency for _, latency in measure(baseline_console, args.clients, args.seconds)]
        finally:
            baseline_console.stop()

        seal_console = start_console(data, "--seal-max-rows", str(args.rows), *common, sim=False)
        try:
            samples: list[tuple[float, float]] = []
            deadline = time.monotonic() + 300
            while (window := seal_window(seal_console.log_path)) is None and time.monotonic() < deadline:
                samples += measure(seal_console, args.clients, 2.0)
            samples += measure(seal_console, args.clients, 1.0)
        finally:
            seal_console.stop()
        if window is None:
            print("the seal did not run (or did not end) within 300 s", file=sys.stderr)
            return 1
        during = [latency for started, latency in samples if window[0] <= started <= window[1]]
        print(f"seal of ~{args.rows - args.rows // 2:,} rows took {window[1] - window[0]:.1f} s")
        print(summary("Status, no seal", baseline))
        print(summary("Status, during the seal", during))
        ratio = percentile(during, 0.99) / percentile(baseline, 0.99)
        verdict = "met" if ratio <= 2 else "NOT met"
        print(f"p99 during the seal / p99 without: {ratio:.2f} (target <= 2: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
