"""How long a caller waits while bench readers are unplugged: the broker's loop and its workers' exits.

A probe client sends a cheap bench call (`DELETE` of a reader that is not there: answered by the broker at
once, 404) one after another while readers are unplugged, and the slowest probe answer is printed per round.
Before the broker stopped waiting for its workers' exits (docs/decisions.md, "The broker never waits for a
process"), each unplugged reader's worker held the loop until it exited; run this on a checkout from before
that change for the "before" numbers.

    .venv/bin/python bench/unplug_stall.py [--rounds 5] [--readers 5]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.console import RunningConsole, running_console
from tests.waiting import wait_for

READERS = "/api/sim/v1/Readers"
PROBE = f"{READERS}/{quote('no such reader')}"


def _probe(console: RunningConsole, stop: threading.Event, worst: list[float], other: list[int]) -> None:
    """On a kept-alive connection of its own (`RunningConsole.request` shares one between threads)."""
    connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context(), timeout=30)
    try:
        while not stop.is_set():
            began = time.perf_counter()
            connection.request("DELETE", PROBE)
            response = connection.getresponse()
            response.read()
            if response.status != 404:  # 503 with 1099: the broker did not answer within the API's 5 s
                other.append(response.status)
            worst[0] = max(worst[0], time.perf_counter() - began)
    finally:
        connection.close()


def round_of_unplugs(console: RunningConsole, names: list[str]) -> tuple[float, list[int]]:
    """Plug readers, wait for their workers, then unplug them all while the probe runs: its slowest answer (s),
    and the statuses of its answers that were not the 404 it asks for."""
    for name in names:
        assert console.request("POST", READERS, {"name": name}).status == 200
    wait_for(lambda: set(names) <= console.attached_readers(), 60, "the new readers' workers reporting")
    stop, worst, other = threading.Event(), [0.0], list[int]()
    prober = threading.Thread(target=_probe, args=(console, stop, worst, other))
    prober.start()
    try:
        for name in names:
            assert console.request("DELETE", f"{READERS}/{quote(name)}").status == 200
        wait_for(lambda: not set(names) & console.attached_readers(), 60, "the readers leaving")
        time.sleep(1.0)  # a second more: the later turns that reap the exited workers are probed too
    finally:
        stop.set()
        prober.join()
    return worst[0], other


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--readers", type=int, default=5, help="readers unplugged in each round (the bench has 16)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="nhi-bench-unplug-") as scratch,
        running_console(Path(scratch) / "data") as console,
    ):
        for one in (1, args.readers):
            rounds = [
                round_of_unplugs(console, [f"Unplug {one}-{turn}-{n}" for n in range(one)])
                for turn in range(args.rounds)
            ]
            slowest = ", ".join(f"{seconds * 1000:.0f}" for seconds, _ in rounds)
            failed = [status for _, statuses in rounds for status in statuses]
            print(
                f"{one} reader(s) unplugged at once, {args.rounds} rounds: slowest probe answer per round {slowest} ms;"
                f" probe answers other than 404: {failed or 'none'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
