"""`GET /api/hc/v1/Basic` through the console vs the same APDUs through pyscard directly, on one vpcd card.

The floor is the card: the console's hc/v1/Basic sends SELECT, READ BINARY of the public data block and READ of
the identity status (three APDUs: the identity status is a read of its own). The direct path sends those three
with pyscard in a PC/SC transaction, as the console's worker does. The two alternate call by call in one run, so
the machine is in the same state for both; the overhead is each console call minus the direct call beside it.

Run alone: `.venv/bin/python bench/overhead.py [--calls 1000]` (needs pcscd and vpcd, no other pcscd running).
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.footprint import cpu_seconds, role_of
from bench.percentiles import percentile
from bench.report import Row
from deploy.tls import ensure_certificates
from sim.cards.base import VirtualCard
from sim.profiles import make_card
from sim.vpcd import VpcdCardBridge
from tests.integration.console import RunningConsole, descendants, free_port, start_console
from tests.pcscd import Pcscd
from workers.apdu import HC_AID, READ_HC_IDENTITY_STATUS, READ_HC_PUBLIC_DATA, parse_response, select_aid
from workers.pcsc_reader import open_reader

HC_BASIC = "/api/hc/v1/Basic"


class SlowCard:
    """A bench card that takes `seconds` for each APDU, as a real card does (the bridge thread sleeps)."""

    def __init__(self, card: VirtualCard, seconds: float) -> None:
        self._card = card
        self._seconds = seconds

    def respond(self, apdu: bytes) -> bytes:
        time.sleep(self._seconds)
        return self._card.respond(apdu)

    def reset(self) -> None:
        self._card.reset()

    @property
    def atr(self) -> bytes:
        return self._card.atr


@contextmanager
def console_on_a_vpcd_card(
    scratch: Path,
    cards: int = 1,
    *extra: str,
    card_seconds: float = 0.0,
) -> Iterator[tuple[RunningConsole, Pcscd, list[str]]]:
    """pcscd with `cards` vpcd readers holding hc-basic, and `serve --sim --pcsc` serving them (default: the first).

    `card_seconds`: time each APDU takes on the card (0: the bench card answers at once)."""
    pcscd = Pcscd(scratch / "pcscd").start(entries=max(1, (cards + 1) // 2))
    readers = [pcscd.reader(index // 2, index % 2) for index in range(cards)]
    bridges = [
        VpcdCardBridge(
            SlowCard(make_card("hc-basic"), card_seconds) if card_seconds else make_card("hc-basic"),
            port=pcscd.port(index // 2, index % 2),
        ).connect()
        for index in range(cards)
    ]
    try:
        console = start_console(scratch / "data", "--pcsc", *extra, readers=set(readers))
        try:
            for reader in readers:
                deadline = time.monotonic() + 10
                while console.card_kinds().get(reader) != "hc":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{reader}: the card was not identified")
                    time.sleep(0.02)
            answer = console.request("POST", "/api/settings/v1/PcscReader/Default", {"readerName": readers[0]})
            if (
                answer.body["statusCode"] != 0
                or console.request("POST", "/api/common/v1/Initial").body["statusCode"] != 0
            ):
                raise RuntimeError("could not set the default reader or initialize")
            yield console, pcscd, readers
        finally:
            console.stop()
    finally:
        for bridge in bridges:
            bridge.disconnect()
        pcscd.stop()


def cpu_by_role(console: RunningConsole, pcscd: Pcscd) -> dict[str, float]:
    """CPU seconds so far of the processes a console call goes through (API processes summed)."""
    totals: dict[str, float] = {}
    for pid in descendants(console.process.pid):
        role = role_of(pid, console.process.pid)
        if role.startswith(("API", "reader worker (Virtual")) or role == "broker":
            name = "API processes" if role.startswith("API") else role
            totals[name] = totals.get(name, 0.0) + cpu_seconds(pid)
    totals["pcscd"] = cpu_seconds(pcscd.process.pid) if pcscd.process is not None else 0.0
    return totals


def measure(calls: int, warmup: int = 50, *extra: str) -> tuple[list[float], list[float], dict[str, float]]:
    """The interleaved samples, and the CPU each process spent per console call in a run of console calls alone."""
    with (
        tempfile.TemporaryDirectory(prefix="nhi-bench-") as scratch,
        console_on_a_vpcd_card(Path(scratch), 1, *extra) as (console, pcscd, [reader]),
    ):
        connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context())
        connection.request("GET", HC_BASIC)  # SAM and card to level 2, outside the measurement
        if connection.getresponse().read().find(b'"statusCode": 0') < 0:
            raise RuntimeError("hc/v1/Basic did not reach level 2")
        direct = open_reader(reader)
        select = select_aid(HC_AID)
        direct_samples, console_samples = [], []
        try:
            for index in range(warmup + calls):
                begin = time.perf_counter()
                with direct.transaction():
                    answers = [
                        parse_response(direct.transmit(apdu))
                        for apdu in (select, READ_HC_PUBLIC_DATA, READ_HC_IDENTITY_STATUS)
                    ]
                middle = time.perf_counter()
                connection.request("GET", HC_BASIC)
                body = connection.getresponse().read()
                end = time.perf_counter()
                if not all(answer.ok for answer in answers) or b'"statusCode": 0' not in body:
                    raise RuntimeError(f"a read failed: {[hex(a.sw) for a in answers]} {body[:80]!r}")
                if index >= warmup:
                    direct_samples.append(middle - begin)
                    console_samples.append(end - middle)
            before = cpu_by_role(console, pcscd)
            for _ in range(calls):
                connection.request("GET", HC_BASIC)
                connection.getresponse().read()
            after = cpu_by_role(console, pcscd)
            per_call = {role: (after[role] - before.get(role, 0.0)) / calls for role in after}
        finally:
            direct.close()
            connection.close()
    return direct_samples, console_samples, per_call


def rows(calls: int) -> list[Row]:
    direct, through, per_call = measure(calls)
    overhead = [console - floor for floor, console in zip(direct, through, strict=True)]
    section = "1. hc/v1/Basic vs pyscard"
    floor = gunicorn_floor()
    normal_direct, normal_through, _ = measure(max(200, calls // 2), 50, "--durability", "normal")
    normal = [console - floor for floor, console in zip(normal_direct, normal_through, strict=True)]
    cpu = ", ".join(f"{role} {seconds * 1e6:.0f} µs" for role, seconds in sorted(per_call.items()) if seconds > 0)
    return [
        Row(section, "pyscard directly, SELECT + 2 READs", f"p50 {_ms(direct, 0.5)}, p99 {_ms(direct, 0.99)}"),
        Row(section, "GET /api/hc/v1/Basic (HTTPS keep-alive)", f"p50 {_ms(through, 0.5)}, p99 {_ms(through, 0.99)}"),
        Row(
            section,
            f"overhead, {calls} interleaved pairs: p50",
            _ms(overhead, 0.5),
            "≤ 1.5 ms",
            percentile(overhead, 0.5) <= 0.0015,
        ),
        Row(section, "overhead: p99", _ms(overhead, 0.99), "≤ 5 ms", percentile(overhead, 0.99) <= 0.005),
        Row(section, "CPU per console call, by process", cpu),
        Row(
            section,
            "overhead with --durability normal (no fsync before the answer)",
            f"p50 {_ms(normal, 0.5)}, p99 {_ms(normal, 0.99)}",
        ),
        Row(section, "floor: gunicorn + TLS, a WSGI app that only answers {}", floor),
    ]


FLOOR_APP = (
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', '2')])\n"
    "    return [b'{}']\n"
)


def gunicorn_floor(calls: int = 2000) -> str:
    """gunicorn as the console runs it (gthread, 24 threads, TLS) serving a do-nothing app: what HTTP costs
    before the console does anything (p50 of a keep-alive request, and the gunicorn worker's CPU per request)."""
    with tempfile.TemporaryDirectory(prefix="nhi-bench-floor-") as scratch:
        folder = Path(scratch)
        (folder / "floor_app.py").write_text(FLOOR_APP)
        tls = ensure_certificates(folder)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--chdir",
                str(folder),
                "-w",
                "1",
                "-k",
                "gthread",
                "--threads",
                "24",
                "--certfile",
                str(tls.server_cert),
                "--keyfile",
                str(tls.server_key),
                "-b",
                f"127.0.0.1:{port}",
                "floor_app:app",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            context = ssl.create_default_context(cafile=str(tls.ca_cert))
            deadline = time.monotonic() + 15
            while True:
                try:
                    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=5)
                    connection.request("GET", "/")
                    connection.getresponse().read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            [worker] = list(descendants(server.pid))
            for _ in range(200):
                connection.request("GET", "/")
                connection.getresponse().read()
            samples, before = [], cpu_seconds(worker)
            for _ in range(calls):
                begin = time.perf_counter()
                connection.request("GET", "/")
                connection.getresponse().read()
                samples.append(time.perf_counter() - begin)
            cpu = (cpu_seconds(worker) - before) / calls
            connection.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    return f"p50 {_ms(samples, 0.5)}, gunicorn worker CPU {cpu * 1e6:.0f} µs a request"


def _ms(samples: list[float], fraction: float) -> str:
    return f"{percentile(samples, fraction) * 1000:.2f} ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--durability", default="full")
    args = parser.parse_args()
    direct, through, _ = measure(args.calls, 50, "--durability", args.durability)
    overhead = [console - floor for floor, console in zip(direct, through, strict=True)]
    print(
        f"direct p50 {_ms(direct, 0.5)} p99 {_ms(direct, 0.99)};"
        f" console p50 {_ms(through, 0.5)} p99 {_ms(through, 0.99)};"
        f" overhead p50 {_ms(overhead, 0.5)} p99 {_ms(overhead, 0.99)}"
    )
