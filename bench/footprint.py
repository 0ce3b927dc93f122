"""Memory of every process of a running console, and its startup time to the first Status answer.

Memory is read from /proc: RSS (what `ps` shows) and PSS (each shared page divided among the processes that
share it, so the API processes forked from gunicorn's master are not counted three times). "All processes
together" is the sum of PSS: what the console really takes from the machine. The bench's own simulators (the DC
simulator, the virtual NHI reader) are listed apart: a clinic does not run them.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import Row
from tests.integration.console import RunningConsole, cmdline, descendants, start_console

BENCH_ROLES = ("dc-simulator", "nhi-reader (bench)")


@dataclass(frozen=True)
class Process:
    pid: int
    role: str
    rss_kib: int
    pss_kib: int


def role_of(pid: int, supervisor: int) -> str:
    line = " ".join(cmdline(pid))
    if pid == supervisor:
        return "supervisor"
    if "-m broker" in line:
        return "broker"
    if "-m workers" in line:
        reader = line.split("--reader ", 1)[1].split(" --", 1)[0] if "--reader " in line else "?"
        return f"reader worker ({reader})"
    if "gunicorn" in line:
        return "API (gunicorn master)" if "api.app" in line and _is_master(pid, supervisor) else "API worker"
    if "-m sim.dc" in line:
        return "dc-simulator"
    if "sim.nhi_reader_service" in line:
        return "nhi-reader (bench)"
    return line[:40]


def _is_master(pid: int, supervisor: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return int(fields[1]) == supervisor


def _memory(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process has used so far, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes(console: RunningConsole) -> list[Process]:
    supervisor = console.process.pid
    found = []
    for pid in sorted({supervisor, *descendants(supervisor)}):
        rss, pss = _memory(pid)
        if rss:
            found.append(Process(pid, role_of(pid, supervisor), rss, pss))
    return found


def memory_rows(section: str, label: str, found: list[Process], target_mib: float | None = None) -> list[Row]:
    rows = []
    for process in sorted(found, key=lambda p: (p.role in BENCH_ROLES, p.role)):
        rows.append(
            Row(
                section,
                f"{label}: {process.role}",
                f"RSS {process.rss_kib / 1024:.0f} MiB, PSS {process.pss_kib / 1024:.0f} MiB",
            )
        )
    console = [p for p in found if p.role not in BENCH_ROLES]
    total = sum(p.pss_kib for p in console) / 1024
    rss_total = sum(p.rss_kib for p in console) / 1024
    rows.append(
        Row(
            section,
            f"{label}: the console's {len(console)} processes together",
            f"PSS {total:.0f} MiB (RSS summed {rss_total:.0f} MiB)",
            "" if target_mib is None else f"≤ {target_mib:.0f} MB",
            None if target_mib is None else total * 1.048576 <= target_mib,
        )
    )
    return rows


def startup_seconds(sim: bool, runs: int = 3) -> list[float]:
    """From spawning `serve` on a fresh data dir (so including the new CA) to its first Status answer."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="nhi-bench-start-") as scratch:
            begin = time.perf_counter()
            extra = () if sim else ("--no-pcsc",)
            console = start_console(Path(scratch) / "data", *extra, sim=sim, readers=set())
            times.append(time.perf_counter() - begin)
            console.stop()
    return times


def startup_rows(section: str) -> list[Row]:
    rows = []
    for sim, label in ((False, "serve (a clinic's: no bench)"), (True, "serve --sim (with the bench)")):
        times = startup_seconds(sim)
        median = statistics.median(times)
        rows.append(
            Row(
                section,
                f"startup to the first Status answer, {label}",
                f"median {median:.2f} s of {len(times)} (max {max(times):.2f} s)",
                "≤ 3 s",
                median <= 3.0,
            )
        )
    return rows
