"""APDU round trip through pyscard -> pcscd -> vpcd -> our bridge, with and without re-arming TCP_QUICKACK.

Run: `make bench` (all benchmarks) or `.venv/bin/python bench/vpcd_quickack.py` (needs pcscd and vsmartcard-vpcd, and no
other pcscd running: it starts its own on the bench ports and stops it after).

Why it exists: vpcd waits for each answer with a blocking recv while our side,
without QUICKACK, delays its ACKs; Linux clears QUICKACK by itself after a
while, so setting it once at connect time is not enough.  The three modes show
what each step buys: "off" (TCP_NODELAY only), "once" (QUICKACK set at
connect, never again) and "re-armed" (after every read, what `sim.vpcd` does).
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import Row
from sim.vpcd import VpcdCardBridge
from tests.pcscd import Pcscd
from workers.pcsc_reader import PcscReader

SELECT = bytes.fromhex("00A4040010D158000001000000000000000000001100")


class EchoCard:
    atr = bytes.fromhex("3B8800018180B1FE451F03")

    def respond(self, apdu: bytes) -> bytes:
        return b"\x90\x00"

    def reset(self) -> None:
        pass


class QuickackOnceBridge(VpcdCardBridge):
    """QUICKACK set at connect time only, to show that the kernel drops it again."""

    def _arm_quickack(self, sock: socket.socket) -> None:
        if not getattr(self, "_armed_once", False):
            self._armed_once = True
            super()._arm_quickack(sock)


def measure(bridge: VpcdCardBridge, reader_name: str, apdus: int, warmup: int) -> list[float]:
    bridge.connect()
    reader = PcscReader(reader_name)
    try:
        deadline = time.monotonic() + 5
        while True:  # the card must be in before the first command
            change = reader.wait_for_change(0.2)
            if change is not None and change.atr is not None:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the bridged card never showed up in pcscd")
        samples = []
        for index in range(warmup + apdus):
            started = time.perf_counter()
            reader.transmit(SELECT)
            if index >= warmup:
                samples.append(time.perf_counter() - started)
        return samples
    finally:
        reader.close()
        bridge.disconnect()


def rows(apdus: int = 200, warmup: int = 10) -> list[Row]:
    section = "7. vpcd and TCP_QUICKACK"
    table = []
    with tempfile.TemporaryDirectory(prefix="nhi-bench-pcscd-") as scratch:
        pcscd = Pcscd(Path(scratch)).start(entries=1)
        try:
            name, port = pcscd.reader(0, 0), pcscd.port(0, 0)
            modes = {
                "off (TCP_NODELAY only)": VpcdCardBridge(EchoCard(), port=port, quickack=False),
                "set once, at connect": QuickackOnceBridge(EchoCard(), port=port),
                "re-armed after every read (sim/vpcd.py)": VpcdCardBridge(EchoCard(), port=port),
            }
            for mode, bridge in modes.items():
                samples = measure(bridge, name, apdus, warmup)
                table.append(
                    Row(
                        section,
                        f"one APDU through pyscard, QUICKACK {mode}",
                        f"median {statistics.median(samples) * 1000:.3f} ms, max {max(samples) * 1000:.1f} ms",
                    )
                )
        finally:
            pcscd.stop()
    return table


if __name__ == "__main__":
    for row in rows():
        print(row.text())
