"""Card-level throughput of two readers used in parallel vs one: the ratio.

Two vpcd readers, each with an `hc-basic` card. Client processes keep each reader's queue full with card
commands (`ReadPublicData`: SELECT + READ BINARY on the card, through broker -> the reader's worker -> pcscd ->
vpcd -> the card and back), first all on one reader, then split over both. Commands to one reader run one at a
time, so one reader's throughput is bounded by its round trip; two readers run in parallel, so the ratio says
how much the broker (one process for all readers) and the 2 cores let them. On vpcd cards, which answer at
once, a command is nothing but CPU (the clients', the broker's, the worker's, pcscd's), so on 2 cores two readers
can only be as much faster as there is idle CPU left by one; the second run gives each APDU a few milliseconds of
card time, as a real card takes, so that the card is what commands wait for.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.core_client import CoreClient
from bench.footprint import cpu_seconds
from bench.overhead import console_on_a_vpcd_card
from bench.report import Row
from deploy.paths import console_paths

CLIENTS_PER_READER = 2
"""Enough to keep a reader busy: while one command runs, the next is already queued at the broker."""
CARD_SECONDS = 0.005
"""A second run gives each APDU this much card time (a real card over T=1 takes several ms an APDU), labelled as
such: what the ratio is when the card, not the console's CPU, is what a command waits for."""


def _hammer(endpoint: str, reader: str, seconds: float, counts: multiprocessing.Queue[int]) -> None:
    client = CoreClient(endpoint, timeout=10)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.call("ReadPublicData", {"reader": reader}).code == 0:
            done += 1
    counts.put(done)


def _throughput(
    endpoint: str, readers: list[str], seconds: float, watched: dict[str, int]
) -> tuple[float, dict[str, float]]:
    """Card commands per second, and the share of one core each watched process used meanwhile."""
    counts: multiprocessing.Queue[int] = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(target=_hammer, args=(endpoint, reader, seconds, counts))
        for reader in readers
        for _ in range(CLIENTS_PER_READER)
    ]
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    began = time.monotonic()
    for client in clients:
        client.start()
    total = sum(counts.get(timeout=seconds + 30) for _ in clients)
    for client in clients:
        client.join()
    elapsed = time.monotonic() - began
    busy = {name: (cpu_seconds(pid) - before[name]) / elapsed for name, pid in watched.items()}
    return total / seconds, busy


def rows(seconds: float = 8.0) -> list[Row]:
    section = "3. two readers vs one"
    table = []
    for latency, label in (
        (0.0, "vpcd cards (no card time)"),
        (CARD_SECONDS, f"cards taking {CARD_SECONDS * 1000:.0f} ms an APDU"),
    ):
        with (
            tempfile.TemporaryDirectory(prefix="nhi-bench-") as scratch,
            console_on_a_vpcd_card(Path(scratch), 2, card_seconds=latency) as (console, pcscd, readers),
        ):
            endpoint = console_paths(console.data_dir, sim=True).api_endpoint
            roles = console.processes()
            assert pcscd.process is not None, "console_on_a_vpcd_card started it"
            watched = {"broker": roles["broker"][0], "pcscd": pcscd.process.pid}
            _throughput(endpoint, readers[:1], 1.0, watched)  # warm up
            one, _ = _throughput(endpoint, readers[:1], seconds, watched)
            two, busy = _throughput(endpoint, readers, seconds, watched)
        ratio = two / one
        cores = ", ".join(f"{name} {share:.0%} of a core" for name, share in busy.items())
        table += [
            Row(section, f"{label}: one reader, card commands/s", f"{one:,.0f}/s"),
            Row(section, f"{label}: two readers in parallel", f"{two:,.0f}/s ({cores})"),
            Row(section, f"{label}: ratio", f"{ratio:.2f}×", "≥ 1.7×", ratio >= 1.7),
        ]
    return table


if __name__ == "__main__":
    for row in rows():
        print(row.text())
