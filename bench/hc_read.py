"""A health card's public data block (SELECT + READ): pyscard directly vs through the console, side by side.

Both paths read the same `hc-basic` card on the same vpcd reader, interleaved
call by call in one run, so the machine's state is the same for both:
  - direct: pyscard (`workers.pcsc_reader`, the console's own back-end) in a PC/SC transaction;
  - console: a broker client sends `ReadPublicData`; broker -> reader worker -> pcscd -> card -> back.
The console path is what a HIS request costs below HTTP/TLS (the HTTP layer is measured separately).

Run: `make bench`, or `.venv/bin/python bench/hc_read.py [--calls 500]`. Needs pcscd and vpcd installed and
no other pcscd running (it starts its own, as the tests do).
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
from api.core_client import CoreClient  # noqa: E402
from deploy.paths import console_paths  # noqa: E402
from sim.profiles import make_card  # noqa: E402
from sim.vpcd import VpcdCardBridge  # noqa: E402
from tests.integration.console import start_console, wait_for  # noqa: E402
from tests.pcscd import Pcscd  # noqa: E402
from workers.apdu import HC_AID, READ_HC_PUBLIC_DATA, parse_response, select_aid  # noqa: E402
from workers.pcsc_reader import open_reader  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nhi-bench-") as scratch:
        pcscd = Pcscd(Path(scratch) / "pcscd").start(entries=1)
        try:
            reader_name = pcscd.reader(0, 0)
            with VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 0)):
                console = start_console(Path(scratch) / "data", "--pcsc", readers={reader_name})
                try:
                    wait_for(lambda: console.card_kinds().get(reader_name) == "hc", 10, "the card identified")
                    client = CoreClient(console_paths(console.data_dir, sim=True).api_endpoint, timeout=10)
                    direct = open_reader(reader_name)
                    select = select_aid(HC_AID)
                    direct_samples: list[float] = []
                    console_samples: list[float] = []
                    for index in range(args.warmup + args.calls):
                        begin = time.perf_counter()
                        with direct.transaction():
                            parse_response(direct.transmit(select))
                            answer = parse_response(direct.transmit(READ_HC_PUBLIC_DATA))
                        middle = time.perf_counter()
                        reply = client.call("ReadPublicData", {"reader": reader_name})
                        end = time.perf_counter()
                        if not answer.ok or reply.code != 0:
                            raise RuntimeError(f"read failed: direct {answer.sw:04X}, console {reply.code}")
                        if index >= args.warmup:
                            direct_samples.append(middle - begin)
                            console_samples.append(end - middle)
                    direct.close()
                finally:
                    console.stop()
        finally:
            pcscd.stop()
    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, python {platform.python_version()}")
    print(f"{args.calls} reads of hc-basic's public data block (SELECT + READ) on a vpcd reader, interleaved")
    print(f"{'path':<40} {'p50 ms':>8} {'p99 ms':>8}")
    for label, samples in (("pyscard directly", direct_samples), ("broker -> worker -> card -> back", console_samples)):
        print(f"{label:<40} {statistics.median(samples) * 1000:>8.3f} {percentile(samples, 0.99) * 1000:>8.3f}")
    overhead = statistics.median(console_samples) - statistics.median(direct_samples)
    print(f"{'console overhead (difference of medians)':<40} {overhead * 1000:>8.3f}")


if __name__ == "__main__":
    main()
