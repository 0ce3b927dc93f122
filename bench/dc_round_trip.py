"""One DC call's round trip, from the console's DC client to the bench's DC simulator, with and without Nagle's
algorithm on the simulator's accepted sockets; and what it costs a HIS: the first `GET /api/hc/v1/Basic` after the
default reader changes, which authenticates that reader's card again (two DC calls).

The simulator answers in two writes, the head and then the body. With Nagle's algorithm on (before
`JsonRequestHandler.disable_nagle_algorithm`), the body waited for the client's delayed ACK of the head. The
"Nagle on" rows put that back, in this process only, by setting the handler's attribute to False on an in-process
simulator; the console's own run uses the simulator as the bench starts it.

    .venv/bin/python bench/dc_round_trip.py [--calls 200] [--switches 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile
from broker.dc.client import HttpsDataCenter
from sim.dc import BENCH_SAM_ID, prepare
from sim.dc.server import DcRequestHandler, make_server
from tests.integration.console import RunningConsole, running_console
from tests.waiting import wait_for

READERS = ("NHI Sim Reader 0", "NHI Sim Reader 1")


def _milliseconds(call: Callable[[], object], count: int) -> list[float]:
    call()  # the first connection warms the TLS context
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def dc_calls(state_dir: Path, calls: int, nagle: bool) -> dict[str, list[float]]:
    """GET Crl and POST Sam/Challenge, each on a new connection as the console's client makes them."""
    prepared = prepare(state_dir)
    DcRequestHandler.disable_nagle_algorithm = not nagle
    server = make_server(state_dir)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        client = HttpsDataCenter(f"https://localhost:{server.port}", prepared.ca_cert)
        return {
            "GET Crl": _milliseconds(client.hca_crls, calls),
            "POST Sam/Challenge": _milliseconds(lambda: client.sam_challenge(BENCH_SAM_ID), calls),
        }
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        DcRequestHandler.disable_nagle_algorithm = True


def _basic(console: RunningConsole) -> float:
    began = time.perf_counter()
    answer = console.request("GET", "/api/hc/v1/Basic", timeout=30)
    assert answer.body.get("statusCode") == 0, answer
    return (time.perf_counter() - began) * 1000


def first_basic_after_a_switch(scratch: Path, switches: int) -> tuple[list[float], list[float]]:
    """The first Basic after each change of the default reader, and the second (its card already at level 2)."""
    first, second = [], []
    with running_console(scratch / "data") as console:
        # The bench's second reader holds a staff card; give it a health card, so that both readers can serve Basic.
        put = console.request("PUT", f"/api/sim/v1/Readers/{quote(READERS[1])}/Card", {"profile": "hc-basic"})
        assert put.status == 200, put
        wait_for(lambda: console.card_kinds().get(READERS[1]) == "hc", 30, "the second health card")
        assert console.request("POST", "/api/common/v1/Initial", timeout=70).body == {"statusCode": 0}
        for turn in range(switches + 1):
            reader = READERS[turn % 2]
            body = {"readerName": reader}
            assert console.request("POST", "/api/settings/v1/PcscReader/Default", body).body == {"statusCode": 0}
            taken = _basic(console), _basic(console)
            if turn:  # the very first also logs the SAM in
                first.append(taken[0])
                second.append(taken[1])
    return first, second


def _line(label: str, samples: list[float]) -> str:
    median, p99 = statistics.median(samples), percentile(samples, 0.99)
    return f"  {label:44} p50 {median:6.1f} ms   p99 {p99:6.1f} ms   ({len(samples)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--switches", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nhi-bench-dc-") as scratch_name:
        scratch = Path(scratch_name)
        print(f"One DC call on a new HTTPS connection, DC client to the bench's DC simulator ({args.calls} each):")
        for nagle in (True, False):
            for endpoint, samples in dc_calls(scratch / "dc", args.calls, nagle).items():
                print(_line(f"{endpoint}, Nagle {'on (as before)' if nagle else 'off'}", samples))
        first, second = first_basic_after_a_switch(scratch, args.switches)
        print(f"GET /api/hc/v1/Basic after the default reader changed ({args.switches} changes, console --sim):")
        print(_line("first call (the card authenticated again)", first))
        print(_line("second call", second))
    return 0


if __name__ == "__main__":
    sys.exit(main())
