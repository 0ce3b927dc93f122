"""Export of a 1,000,000-event log in constant memory (peak RSS of the exporting process, measured)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.make_log import make_log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SCRIPT = Path(sys.executable).with_name("nhi-console")


def export_peak_rss_kib(data_dir: Path) -> tuple[int, int]:
    """Run `nhi-console log export` to /dev/null; return (exit status, the child's peak RSS in KiB)."""
    process = subprocess.Popen(
        [str(SCRIPT), "log", "export", "--sim", "--data-dir", str(data_dir), "--output", os.devnull],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss


def test_exporting_a_million_events_takes_no_more_memory_than_a_hundred_thousand(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    make_log(small / "sim-console.db", 100_000)
    make_log(large / "sim-console.db", 1_000_000)
    small_status, small_rss = export_peak_rss_kib(small)
    large_status, large_rss = export_peak_rss_kib(large)
    print(f"peak RSS exporting 100k events: {small_rss / 1024:.1f} MiB, 1M events: {large_rss / 1024:.1f} MiB")
    assert small_status == large_status == 0
    # Held in memory, a million events would take hundreds of MiB; streamed, the peak barely moves.
    assert large_rss - small_rss < 20 * 1024
    assert large_rss < 150 * 1024
