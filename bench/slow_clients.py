"""Status latency while 500 connections send nothing, or a byte a second, against none (issue 20, "hostile callers").

`python bench/slow_clients.py [--hostile 500] [--calls 300]`

One console (`serve --sim`), and four runs of `calls` sequential `GET /api/common/v1/Status`, each run first on a
fresh HTTPS connection a call (accept, handshake and head go through the guarded worker's poller, where the hostile
connections wait: deploy/guarded_worker.py) and then on one kept-alive connection:

- no load: the baseline;
- `hostile` TCP connections that send nothing;
- `hostile` connections sending their TLS ClientHello a byte a second;
- `hostile` connections, handshake done, sending a request head a byte a second.

The hostile connections are opened before each run and closed after it; the console closes them itself 5 s
(handshake) or 10 s (head) after they began, so a run is kept shorter than that and the count of hostile connections
still open at its end is printed beside it. Each call has a 5 s timeout; a call that failed is counted, not timed.
Numbers are printed, never asserted. To see gunicorn's plain gthread worker against the same load, run it with
`GUNICORN_CMD_ARGS="--worker-class gthread"` (the console's API inherits the environment, and gunicorn lets that
variable override its config file): calls then time out, and the head run cannot even open its connections.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile
from bench.report import machine
from tests.integration.console import RunningConsole, running_console
from tests.integration.hostile_clients import (
    HEAD,
    STATUS,
    client_hello,
    connect,
    connect_tls,
    held,
    raise_descriptor_limit,
    still_open,
    trickling,
)

CALL_TIMEOUT = 5.0
"""Each call's client timeout (per socket operation); a call past it counts as failed."""

Load = Callable[[RunningConsole, int], AbstractContextManager[Callable[[], int]]]
"""Hostile connections for the length of a block: yields how to count those still open."""


def fresh_calls(console: RunningConsole, calls: int) -> tuple[list[float], int]:
    """`calls` Status calls, each on a new HTTPS connection: their latencies in ms (connect to body read), and
    how many failed."""
    latencies: list[float] = []
    failed = 0
    for _ in range(calls):
        began = time.perf_counter()
        connection = http.client.HTTPSConnection(
            "localhost", console.port, context=console.ssl_context(), timeout=CALL_TIMEOUT
        )
        try:
            connection.request("GET", STATUS)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                latencies.append((time.perf_counter() - began) * 1000)
            else:
                failed += 1
        except (OSError, http.client.HTTPException):
            failed += 1
        finally:
            connection.close()
    return latencies, failed


def kept_alive_calls(console: RunningConsole, calls: int) -> tuple[list[float], int]:
    """`calls` Status calls on one kept-alive connection (a new one after a failure): latencies in ms, failures."""
    latencies: list[float] = []
    failed = 0
    connection: http.client.HTTPSConnection | None = None
    for _ in range(calls):
        if connection is None:
            connection = http.client.HTTPSConnection(
                "localhost", console.port, context=console.ssl_context(), timeout=CALL_TIMEOUT
            )
        began = time.perf_counter()
        try:
            connection.request("GET", STATUS)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                latencies.append((time.perf_counter() - began) * 1000)
            else:
                failed += 1
        except (OSError, http.client.HTTPException):
            failed += 1
            connection.close()
            connection = None
    if connection is not None:
        connection.close()
    return latencies, failed


@contextmanager
def no_load(console: RunningConsole, hostile: int) -> Iterator[Callable[[], int]]:
    yield lambda: 0


@contextmanager
def silent(console: RunningConsole, hostile: int) -> Iterator[Callable[[], int]]:
    with held(lambda: connect(console), hostile) as sockets:
        yield lambda: sum(still_open(sock) for sock in sockets)


@contextmanager
def trickled_handshakes(console: RunningConsole, hostile: int) -> Iterator[Callable[[], int]]:
    with held(lambda: connect(console), hostile) as sockets, trickling(sockets, client_hello()):
        yield lambda: sum(still_open(sock) for sock in sockets)


@contextmanager
def trickled_heads(console: RunningConsole, hostile: int) -> Iterator[Callable[[], int]]:
    with held(lambda: connect_tls(console), hostile) as sockets, trickling(sockets, HEAD) as trickle:
        yield lambda: trickle.open


def summary(latencies: list[float], failed: int) -> str:
    if not latencies:
        return f"no call answered, {failed} failed"
    text = (
        f"p50 {percentile(latencies, 0.5):7.2f}  p99 {percentile(latencies, 0.99):7.2f}  max {max(latencies):7.2f} ms"
    )
    return text + (f", {failed} failed" if failed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile", type=int, default=500, help="hostile connections held open in each loaded run")
    parser.add_argument("--calls", type=int, default=300, help="Status calls a run, fresh and again kept-alive")
    args = parser.parse_args()
    raise_descriptor_limit(4 * args.hostile + 256)
    print(machine(), flush=True)
    loads: list[tuple[str, Load]] = [
        ("no load", no_load),
        (f"{args.hostile} connections sending nothing", silent),
        (f"{args.hostile} ClientHellos, a byte a second", trickled_handshakes),
        (f"{args.hostile} request heads, a byte a second", trickled_heads),
    ]
    with (
        tempfile.TemporaryDirectory(prefix="nhi-bench-slow-") as scratch,
        running_console(Path(scratch) / "data") as console,
    ):
        fresh_calls(console, 50)  # warm up: the API processes' sockets to the broker, the TLS contexts
        kept_alive_calls(console, 50)
        print(f"{'':<44} {'calls':>5}  Status latency")
        for name, load in loads:
            try:
                with load(console, args.hostile) as still_open_count:
                    began = time.monotonic()
                    fresh = fresh_calls(console, args.calls)
                    kept = kept_alive_calls(console, args.calls)
                    seconds = time.monotonic() - began
                    remaining = still_open_count()
            except OSError as error:  # plain gthread: the hostile handshakes themselves time out
                print(f"{name:<44}        the hostile connections could not all be opened: {error!r}")
                continue
            print(f"{name:<44} {args.calls:>5}  fresh connections: {summary(*fresh)}")
            print(f"{'':<44} {args.calls:>5}  kept-alive:        {summary(*kept)}")
            if load is not no_load:
                print(f"{'':<44}        ({seconds:.1f} s; {remaining} of {args.hostile} still open at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
