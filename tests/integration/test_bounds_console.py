"""Issue 19 through a running `serve --sim`: a huge key answered at once while Status keeps answering, and a
second `serve` on the same data dir (or port) refused without touching the first."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploy.paths import console_paths
from sim.oversized_keys import oversized_sam_file
from tests.integration.console import RunningConsole, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

STATUS = "/api/common/v1/Status"
CLOUD_SAM = "/api/settings/v1/CloudSam"
SCRIPT = Path(sys.executable).with_name("nhi-console")
ENTRY = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "deploy.cli"]


def test_an_8192_bit_key_is_1610_at_once_and_status_answers_meanwhile(console: RunningConsole) -> None:
    """Before: the broker spent seconds in OpenSSL's primality checks on the key, and every call waited."""
    sam_id = "901000000919"
    context = base64.b64encode(oversized_sam_file(8192, sam_id)).decode("ascii")
    poller = RunningConsole(console.data_dir, console.port, console.process, console.log_path)
    assert poller.status_ok()  # its connection is made before the measured window
    timings: list[tuple[float, float]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert poller.request("GET", STATUS, timeout=10).body["statusCode"] == 0
            timings.append((started, time.monotonic()))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        window_start = time.monotonic()
        for _ in range(5):
            started = time.monotonic()
            answer = console.request(
                "POST", CLOUD_SAM, {"samId": sam_id, "hospitalId": "777777777", "cloudSamContext": context}
            )
            assert answer.status == 200 and answer.body["statusCode"] == 1610
            assert time.monotonic() - started < 1.0, "the 8192-bit key was checked, not measured"
        window_end = time.monotonic()
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=10)
    during = [end - start for start, end in timings if end >= window_start and start <= window_end]
    assert during, "no Status call overlapped the imports"
    assert max(during) < 0.1, f"Status took {max(during):.3f} s during the imports"
    assert console.request("GET", CLOUD_SAM).body["sams"] == ["901000000047"]


def _fingerprint(console: RunningConsole) -> dict[str, object]:
    """What a second serve must not change: the first's processes, its log's heads, its sockets and lock file."""
    run_dir = console_paths(console.data_dir, sim=True).run_dir
    sockets = {path.name: path.stat().st_ino for path in run_dir.iterdir() if path.is_socket()}
    return {
        "processes": {role: sorted(pids) for role, pids in console.processes().items()},
        "heads": console.database_rows("SELECT name, seq, hash FROM chain_heads ORDER BY name"),
        "sockets": sockets,
        "lock": (console.data_dir / "serve.lock").read_text(),
    }


def _second_serve(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENTRY, "serve", "--sim", "--data-dir", str(data_dir), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=5,
        stdin=subprocess.DEVNULL,
    )


def test_a_second_serve_on_the_same_data_dir_or_port_exits_at_once_and_disturbs_nothing(
    console: RunningConsole, tmp_path: Path
) -> None:
    before = _fingerprint(console)
    assert before["lock"] == f"{console.process.pid}\n"
    for data_dir, port, what in (
        (console.data_dir, free_port(), "the data dir"),
        (tmp_path / "another-data-dir", console.port, f"port {console.port}"),
    ):
        started = time.monotonic()
        second = _second_serve(data_dir, port)
        assert time.monotonic() - started < 5
        assert second.returncode == 75, second
        lines = (second.stdout + second.stderr).strip().splitlines()
        assert len(lines) == 1, lines
        assert f"pid {console.process.pid} is already serving {what}" in lines[0]
    assert _fingerprint(console) == before
    assert not (tmp_path / "another-data-dir" / "tls").exists(), "the refused one made certificates"
    assert console.status_ok()
    verified = subprocess.run(
        [*ENTRY, "log", "verify", "--sim", "--data-dir", str(console.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert os.path.exists(console.data_dir / "serve.lock")
