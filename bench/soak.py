"""A soak: mixed calls from 8 clients with card churn, for `--minutes`; every answer counted, RSS every minute.

Why: issue 19 ("years unattended") found a bench reader's worker growing linearly (31 to 73 MB in 250,000
calls: the bench card kept every APDU). A soak is how such growth shows: this one runs `serve --sim`, sends
a mix of calls (Status, Record, the readers, the health card's and the staff card's basic data, the SAM,
the server time) over HTTPS from `--clients` processes, and every second puts a card into, or takes it out
of, a bench reader of its own through the bench's control API. With `--pcsc` the console also serves pcscd
with two vpcd readers (one holding a card the clients read, one whose card is connected and disconnected
every second): it starts its own pcscd, so no other may run on the machine.

    .venv/bin/python bench/soak.py --minutes 10
    .venv/bin/python bench/soak.py --minutes 5 --pcsc

It prints each process's RSS (KiB) at the start and every minute, and at the end the answers by route and
status (HTTP status / statusCode, or the exception a call died with) and each process's growth.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import multiprocessing
import random
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.footprint import processes  # noqa: E402 - after the path is set
from tests.integration.console import RunningConsole, start_console  # noqa: E402

Counter = collections.Counter[str]
CHURN_READER = "Soak Churn"
MIX: list[tuple[int, str, str]] = [
    (3, "GET", "/api/common/v1/Status"),
    (3, "GET", "/api/hc/v1/Basic"),
    (2, "GET", "/api/hpc/v1/Basic"),
    (1, "GET", "/api/common/v1/Record?skip=0&take=20"),
    (1, "GET", "/api/common/v1/Version"),
    (1, "GET", "/api/settings/v1/PcscReader/Readers"),
    (1, "GET", "/api/common/v1/ServerDateTime"),
    (1, "GET", "/api/sam/v1/Basic"),
]
"""(weight, method, path): what a HIS does most (Status, the health card), and some of everything else."""


def _client(port: int, ca_file: str, stop: Any, results: Any, seed: int) -> None:
    """One HIS: calls from the mix on a kept-alive connection until told to stop; counts every outcome."""
    context = ssl.create_default_context(cafile=ca_file)
    rng = random.Random(seed)
    choices = [(method, path) for weight, method, path in MIX for _ in range(weight)]
    counts: collections.Counter[str] = collections.Counter()
    connection: http.client.HTTPSConnection | None = None
    slowest = 0.0
    while not stop.is_set():
        method, path = rng.choice(choices)
        route = path.split("?", 1)[0]
        started = time.monotonic()
        try:
            if connection is None:
                connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=90)
            connection.request(method, path)
            response = connection.getresponse()
            raw = response.read()
            body = json.loads(raw) if raw else None
            code = body.get("statusCode") if isinstance(body, dict) else "list" if isinstance(body, list) else None
            counts[f"{route} {response.status}/{code}"] += 1
        except (OSError, http.client.HTTPException, ValueError) as error:
            counts[f"{route} {type(error).__name__}"] += 1
            if connection is not None:
                connection.close()
            connection = None
        slowest = max(slowest, time.monotonic() - started)
    results.put((dict(counts), slowest))


def _churn(console: RunningConsole, stop: threading.Event, extra: Callable[[bool], None] | None) -> Counter:
    """Every second, a card into the churn reader or out of it (and `extra(inserted)`): the answers, counted."""
    counts: Counter = collections.Counter()
    path = f"/api/sim/v1/Readers/{CHURN_READER.replace(' ', '%20')}/Card"
    inserted = False
    while not stop.wait(1.0):
        inserted = not inserted
        try:
            if inserted:
                answer = console.request("PUT", path, {"profile": "hc-basic"}, timeout=30)
            else:
                answer = console.request("DELETE", path, timeout=30)
            code = answer.body.get("statusCode") if isinstance(answer.body, dict) else None
            counts[f"churn {'PUT' if inserted else 'DELETE'} {answer.status}/{code}"] += 1
        except OSError as error:
            counts[f"churn {type(error).__name__}"] += 1
        if extra is not None:
            extra(inserted)
            counts[f"vpcd {'connect' if inserted else 'disconnect'}"] += 1
    return counts


def _rss_line(console: RunningConsole, elapsed: float, pcscd_pid: int | None) -> dict[str, int]:
    found = {f"{process.role} [{process.pid}]": process.rss_kib for process in processes(console)}
    if pcscd_pid is not None:
        try:
            for line in Path(f"/proc/{pcscd_pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found[f"pcscd [{pcscd_pid}]"] = int(line.split()[1])
        except OSError:
            pass
    shown = ", ".join(f"{name} {kib}" for name, kib in sorted(found.items()))
    print(f"[{elapsed / 60:5.1f} min] RSS KiB: {shown}", flush=True)
    return found


@contextmanager
def _console(scratch: Path, pcsc: bool) -> Iterator[tuple[RunningConsole, int | None, Callable[[bool], None] | None]]:
    """The console (with pcscd and two vpcd readers under `--pcsc`), initialized, with the churn reader added."""
    with ExitStack() as stack:
        pcscd_pid: int | None = None
        extra: Callable[[bool], None] | None = None
        arguments: tuple[str, ...] = ()
        readers: set[str] | None = None
        if pcsc:
            from sim.profiles import make_card
            from sim.vpcd import VpcdCardBridge
            from tests.pcscd import Pcscd

            pcscd = Pcscd(scratch / "pcscd").start(entries=1)
            stack.callback(pcscd.stop)
            pcscd_pid = getattr(getattr(pcscd, "process", None), "pid", None)
            vpcd_readers = [pcscd.reader(0, 0), pcscd.reader(0, 1)]
            kept = VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 0)).connect()
            stack.callback(kept.disconnect)
            churned = VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 1)).connect()
            stack.callback(lambda: churned.disconnect() if churned.connected else None)

            def extra(inserted: bool) -> None:
                if inserted and not churned.connected:
                    churned.connect()
                elif not inserted and churned.connected:
                    churned.disconnect()

            arguments = ("--pcsc",)
            readers = {"NHI Sim Reader 0", "NHI Sim Reader 1", *vpcd_readers}
        console = start_console(scratch / "data", *arguments, readers=readers)
        stack.callback(console.stop)
        if pcsc:
            default = {"readerName": vpcd_readers[0]}
            if console.request("POST", "/api/settings/v1/PcscReader/Default", default).body["statusCode"] != 0:
                raise RuntimeError("could not make the vpcd reader the default")
        if console.request("POST", "/api/common/v1/Initial", timeout=60).body["statusCode"] != 0:
            raise RuntimeError("Initial failed")
        if console.request("POST", "/api/sim/v1/Readers", {"name": CHURN_READER}).status >= 300:
            raise RuntimeError("could not add the churn reader")
        yield console, pcscd_pid, extra


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--minutes", type=float, default=60.0)
    options.add_argument("--clients", type=int, default=8)
    options.add_argument("--pcsc", action="store_true", help="also through pcscd and vpcd (starts its own pcscd)")
    args = options.parse_args()
    with tempfile.TemporaryDirectory(prefix="nhi-soak-") as scratch, _console(Path(scratch), args.pcsc) as setup:
        console, pcscd_pid, extra = setup
        began = time.monotonic()
        first = _rss_line(console, 0.0, pcscd_pid)
        stop = multiprocessing.Event()
        results: multiprocessing.Queue[tuple[dict[str, int], float]] = multiprocessing.Queue()
        clients = [
            multiprocessing.Process(target=_client, args=(console.port, str(console.ca_file), stop, results, seed))
            for seed in range(args.clients)
        ]
        for client in clients:
            client.start()
        churn_stop = threading.Event()
        churn_counts: list[Counter] = []
        churner = threading.Thread(
            target=lambda: churn_counts.append(_churn(console, churn_stop, extra)), name="churn", daemon=True
        )
        churner.start()
        deadline = began + args.minutes * 60
        last = first
        while (now := time.monotonic()) < deadline:
            time.sleep(min(60.0 - (now - began) % 60.0, deadline - now))
            last = _rss_line(console, time.monotonic() - began, pcscd_pid)
        stop.set()
        churn_stop.set()
        totals: Counter = collections.Counter()
        slowest = 0.0
        for _ in clients:
            counts, slow = results.get(timeout=120)
            totals.update(counts)
            slowest = max(slowest, slow)
        for client in clients:
            client.join(timeout=30)
        churner.join(timeout=60)
        for counts in churn_counts:
            totals.update(counts)
        elapsed = time.monotonic() - began
        calls = sum(count for name, count in totals.items() if not name.startswith(("churn", "vpcd")))
        print(f"\n{calls:,} calls in {elapsed / 60:.1f} min ({calls / elapsed:.0f}/s), slowest {slowest:.2f} s")
        print("answers by route and HTTP status/statusCode (or the error a call died with):")
        for name, count in sorted(totals.items()):
            print(f"  {count:>9,}  {name}")
        print("RSS growth (KiB, first minute's reading to the last):")
        for name in sorted(last):
            if name in first:
                print(f"  {name:<48} {first[name]:>8} -> {last[name]:>8} ({last[name] - first[name]:+})")
            else:
                print(f"  {name:<48} (new since the start) {last[name]:>8}")


if __name__ == "__main__":
    main()
