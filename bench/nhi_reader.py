"""The NHI dedicated reader through the console: opening it, reading a health card, recovering from an unplug.

Run: `make bench` (all benchmarks) or `.venv/bin/python bench/nhi_reader.py`.
Starts a fresh `nhi-console serve --sim`, whose bench runs a virtual NHI reader on a pseudo-terminal; the
console's serial worker talks to it with pyserial in our framing (docs/serial-protocol.md). Measures:
`Initial` with the reader's port (includes starting its worker), `GET /api/hc/v1/Basic` at level 2, and the time
from a replug (the bench's `NhiReader/Replug`) to the first good `hc/v1/Basic`, which includes the worker
reopening the port, the card coming back as a new insertion and being authenticated again inside the reader.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile
from bench.report import Row
from tests.integration.console import RunningConsole, start_console

HC_BASIC = "/api/hc/v1/Basic"
POLL = 0.01


def _code(console: RunningConsole, method: str, path: str, body: object = None) -> int:
    return int(console.request(method, path, body, timeout=70).body["statusCode"])


def _until(console: RunningConsole, done: Callable[[int], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not done(_code(console, "GET", HC_BASIC)):
        if time.monotonic() > deadline:
            raise RuntimeError("the reader did not change state in time")
        time.sleep(POLL)


def rows(reads: int = 200, replugs: int = 10) -> list[Row]:
    section = "6. the NHI dedicated reader (bench)"
    with tempfile.TemporaryDirectory(prefix="nhi-bench-") as scratch:
        console = start_console(Path(scratch) / "data")
        try:
            port = console.request("GET", "/api/sim/v1/NhiReader").body["port"]
            began = time.perf_counter()
            if _code(console, "POST", "/api/common/v1/Initial", {"name": port}) != 0:
                raise RuntimeError("Initial with the reader's port failed")
            opened = time.perf_counter() - began
            if _code(console, "POST", "/api/sam/v1/Verification") != 0 or _code(console, "GET", HC_BASIC) != 0:
                raise RuntimeError("the SAM or the card did not reach level 2")
            samples = []
            for _ in range(reads):
                began = time.perf_counter()
                if _code(console, "GET", HC_BASIC) != 0:
                    raise RuntimeError("hc/v1/Basic failed")
                samples.append(time.perf_counter() - began)
            recoveries = []
            for _ in range(replugs):
                console.request("POST", "/api/sim/v1/NhiReader/Unplug")
                _until(console, lambda code: code != 0)
                console.request("POST", "/api/sim/v1/NhiReader/Replug")
                began = time.perf_counter()
                _until(console, lambda code: code == 0)
                recoveries.append(time.perf_counter() - began)
        finally:
            console.stop()
    return [
        Row(section, "Initial with its port (starting its worker)", f"{opened * 1000:.0f} ms"),
        Row(
            section,
            f"hc/v1/Basic at level 2, {reads} calls",
            f"p50 {statistics.median(samples) * 1000:.1f} ms, p99 {percentile(samples, 0.99) * 1000:.1f} ms",
        ),
        Row(
            section,
            f"replug to hc/v1/Basic answering 0, {replugs} replugs",
            f"median {statistics.median(recoveries):.2f} s, max {max(recoveries):.2f} s",
            "≤ 5 s",
            max(recoveries) <= 5.0,
        ),
    ]


if __name__ == "__main__":
    for row in rows():
        print(row.text())
