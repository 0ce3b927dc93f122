"""`GET /api/common/v1/Status` with 1, 8 and 32 concurrent keep-alive HTTPS clients: requests/s, p50, p99.

The clients are `wrk` (Debian's), a C load generator: a Python client would spend the 2 cores' time on itself
and measure its own speed. Each Status call is a recorded call (the record is committed before the answer), so
this is also the broker's group commit under load. The console's memory is read in the middle of the 8-client
run ("under load").
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.footprint import Process, processes
from bench.report import Row
from tests.integration.console import RunningConsole

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Load:
    clients: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _found(match: re.Match[str] | None, what: str) -> re.Match[str]:
    if match is None:
        raise ValueError(f"no {what} in wrk's output")
    return match


def _ms(text: str) -> float:
    value, unit = _found(re.fullmatch(r"([0-9.]+)(us|ms|s)", text.strip()), "latency").groups()
    return float(value) * _UNITS[unit]


def parse_wrk(output: str, clients: int) -> Load:
    rate = float(_found(re.search(r"Requests/sec:\s+([0-9.]+)", output), "rate").group(1))
    p50 = _ms(_found(re.search(r"^\s+50%\s+(\S+)", output, re.M), "50th percentile").group(1))
    p99 = _ms(_found(re.search(r"^\s+99%\s+(\S+)", output, re.M), "99th percentile").group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return Load(clients, rate, p50, p99, errors + (int(non_2xx.group(1)) if non_2xx else 0))


def run_wrk(console: RunningConsole, clients: int, seconds: float) -> Load:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    threads = min(clients, 2)
    output = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{clients}",
            f"-d{seconds:g}s",
            "--latency",
            f"https://localhost:{console.port}/api/common/v1/Status",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(output, clients)


def rows(console: RunningConsole, seconds: float = 10.0) -> tuple[list[Row], list[Process]]:
    section = "2. Status, keep-alive HTTPS"
    run_wrk(console, 8, 2.0)  # warm up: connections, the API processes' sockets to the broker
    results, under_load = [], []
    for clients in (1, 8, 32):
        sampler = None
        if clients == 8:

            def sample() -> None:
                time.sleep(seconds / 2)
                under_load.extend(processes(console))

            sampler = threading.Thread(target=sample)
            sampler.start()
        results.append(run_wrk(console, clients, seconds))
        if sampler is not None:
            sampler.join()
    table = []
    for load in results:
        target, met = ("≥ 1,500 req/s", load.requests_per_second >= 1500) if load.clients == 8 else ("", None)
        table.append(
            Row(
                section,
                f"{load.clients} client{'s' if load.clients > 1 else ''}",
                f"{load.requests_per_second:,.0f} req/s, p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms"
                + (f", {load.errors} errors" if load.errors else ""),
                target,
                met,
            )
        )
    return table, under_load
