"""The NHI dedicated reader through the console: opening it, reading a health card, recovering from an unplug.

Run: `make bench` (or `.venv/bin/python bench/nhi_reader.py [--reads 200] [--replugs 10]`).
Starts a fresh `nhi-console serve --sim`, whose bench runs a virtual NHI reader on a pseudo-terminal; the
console's serial worker talks to it with pyserial in our framing (docs/serial-protocol.md). Measures:
`Initial` with the reader's port (includes starting its worker), `GET /api/hc/v1/Basic` at level 2, and the time
from a replug (the bench's `NhiReader/Replug`) to the first good `hc/v1/Basic`, which includes the worker
reopening the port, the card coming back as a new insertion and being authenticated again inside the reader.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile  # noqa: E402
from tests.integration.console import RunningConsole, start_console  # noqa: E402

HC_BASIC = "/api/hc/v1/Basic"
POLL = 0.01


def _code(console: RunningConsole, method: str, path: str, body: object = None) -> int:
    return int(console.request(method, path, body, timeout=70).body["statusCode"])


def _until(console: RunningConsole, done: object, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not done(_code(console, "GET", HC_BASIC)):  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("the reader did not change state in time")
        time.sleep(POLL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--replugs", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="nhi-bench-") as scratch:
        console = start_console(Path(scratch) / "data")
        try:
            port = console.request("GET", "/api/sim/v1/NhiReader").body["port"]
            began = time.perf_counter()
            if _code(console, "POST", "/api/common/v1/Initial", {"name": port}) != 0:
                raise RuntimeError("Initial with the reader's port failed")
            print(f"Initial with the port: {(time.perf_counter() - began) * 1000:.0f} ms")
            if _code(console, "POST", "/api/sam/v1/Verification") != 0 or _code(console, "GET", HC_BASIC) != 0:
                raise RuntimeError("the SAM or the card did not reach level 2")
            reads = []
            for _ in range(args.reads):
                began = time.perf_counter()
                if _code(console, "GET", HC_BASIC) != 0:
                    raise RuntimeError("hc/v1/Basic failed")
                reads.append(time.perf_counter() - began)
            print(f"hc/v1/Basic at level 2, {len(reads)} calls: p50 {statistics.median(reads) * 1000:.1f} ms, "
                  f"p90 {percentile(reads, 0.9) * 1000:.1f} ms, p99 {percentile(reads, 0.99) * 1000:.1f} ms")
            recoveries = []
            for _ in range(args.replugs):
                console.request("POST", "/api/sim/v1/NhiReader/Unplug")
                _until(console, lambda code: code != 0)
                console.request("POST", "/api/sim/v1/NhiReader/Replug")
                began = time.perf_counter()
                _until(console, lambda code: code == 0)
                recoveries.append(time.perf_counter() - began)
            print(f"replug -> hc/v1/Basic answers 0, {len(recoveries)} replugs: median "
                  f"{statistics.median(recoveries):.2f} s, max {max(recoveries):.2f} s (the issue allows 5 s)")
        finally:
            console.stop()


if __name__ == "__main__":
    main()
