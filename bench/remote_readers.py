"""Remote readers (issue 23): `GET /api/hc/v1/Basic` through a local worker and through a reader agent, and how
long an agent's readers take to come back after a network cut.

One console with the bench and `--agents` on loopback, one agent process with a bench reader of its own; both
readers hold an `hc-basic` card behind the same in-process virtual reader, so the difference between the two
latencies is the agent link (TCP with CurveZMQ, no added delay), not the card. Calls go one at a time over one
kept-alive HTTPS connection, alternating blocks between the two readers so that drift hits both alike.

The reconnection runs a second agent through the tests' TCP proxy (tests/integration/agents.py, no added delay):
the proxy is cut (a black hole) for `--cut` seconds and restored, and the time is taken from the restore to the
readers' return in the console's event log (`ReaderAttached`), as a HIS would see them in `PcscReader/Readers`.

    .venv/bin/python bench/remote_readers.py [--calls 400] [--cut 30] [--cuts 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile
from tests.integration.agents import DelayProxy, console_key, enrol, init_agent, kill_agent_group, start_agent
from tests.integration.console import RunningConsole, free_port, running_console
from tests.waiting import wait_for

LOCAL = "NHI Sim Reader 0"
AGENT_READER = "Desk HC"
REMOTE = f"desk-1/{AGENT_READER}"
BLOCK = 50
WARM_UP = 20


def _default(console: RunningConsole, reader: str) -> None:
    assert console.request("POST", "/api/settings/v1/PcscReader/Default", {"readerName": reader}).body == {
        "statusCode": 0
    }


def _basic_seconds(console: RunningConsole, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        answer = console.request("GET", "/api/hc/v1/Basic", timeout=30)
        samples.append(time.perf_counter() - began)
        assert answer.body.get("statusCode") == 0, answer
    return samples


def latencies(console: RunningConsole, calls: int) -> dict[str, list[float]]:
    taken: dict[str, list[float]] = {LOCAL: [], REMOTE: []}
    for reader in taken:
        _default(console, reader)
        _basic_seconds(console, WARM_UP)
    while min(len(samples) for samples in taken.values()) < calls:
        for reader, samples in taken.items():
            _default(console, reader)
            samples += _basic_seconds(console, min(BLOCK, calls - len(samples)))
    return taken


def _attached_after(console: RunningConsole, seq: int, reader: str) -> bool:
    rows = console.database_rows("SELECT payload FROM events WHERE type = 'ReaderAttached' AND seq > ?", seq)
    return any(json.loads(payload)["reader"] == reader for (payload,) in rows)


def _last_seq(console: RunningConsole) -> int:
    [(seq,)] = console.database_rows("SELECT coalesce(max(seq), 0) FROM events")
    return int(seq)


def reconnections(console: RunningConsole, agent_port: int, scratch: Path, cut: float, cuts: int) -> list[float]:
    proxy = DelayProxy(agent_port, delay=0.0)
    agent = start_agent(
        scratch / "agent-2",
        proxy.endpoint,
        console_key(console.data_dir),
        "--no-pcsc",
        "--sim-reader",
        "Via Proxy=hc-basic",
    )
    reader = "desk-2/Via Proxy"
    times = []
    try:
        wait_for(lambda: _attached_after(console, 0, reader), 30, "the proxied agent's reader")
        for _ in range(cuts):
            proxy.cut()
            wait_for(lambda: reader not in console.attached_readers(), 15, "the reader lost")
            time.sleep(max(0.0, cut - 0.1))
            mark = _last_seq(console)
            proxy.restore()
            restored = time.monotonic()
            wait_for(functools.partial(_attached_after, console, mark, reader), 60, "the reader back", interval=0.01)
            times.append(time.monotonic() - restored)
    finally:
        agent.stop()
        kill_agent_group(agent)
        proxy.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--cut", type=float, default=30.0)
    parser.add_argument("--cuts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nhi-bench-remote-") as scratch_name:
        scratch = Path(scratch_name)
        agent_port = free_port()
        with running_console(scratch / "data", "--agents", f"tcp://127.0.0.1:{agent_port}") as console:
            enrol(console.data_dir, "desk-1", init_agent(scratch / "agent-1"))
            enrol(console.data_dir, "desk-2", init_agent(scratch / "agent-2"))
            agent = start_agent(
                scratch / "agent-1",
                f"tcp://127.0.0.1:{agent_port}",
                console_key(console.data_dir),
                "--no-pcsc",
                "--sim-reader",
                f"{AGENT_READER}=hc-basic",
            )
            try:
                wait_for(lambda: REMOTE in console.attached_readers(), 30, "the agent's reader")
                assert console.request("POST", "/api/common/v1/Initial", timeout=70).body == {"statusCode": 0}
                taken = latencies(console, args.calls)
            finally:
                agent.stop()
                kill_agent_group(agent)
            back = reconnections(console, agent_port, scratch, args.cut, args.cuts)
    print(f"GET /api/hc/v1/Basic, {args.calls} calls each, one at a time (hc-basic, in-process virtual reader):")
    for label, reader in (("local worker", LOCAL), ("reader agent over TCP + CurveZMQ", REMOTE)):
        samples = taken[reader]
        p50, p99 = statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000
        print(f"  {label:34} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    shown = ", ".join(f"{seconds:.2f}" for seconds in back)
    median = statistics.median(back)
    print(f"readers back after a {args.cut:g} s cut, from the restore (s): {shown}; median {median:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
