"""`nhi-console serve` as real processes: HTTPS with the generated CA, the record, crashes, shutdown."""

from __future__ import annotations

import http.client
import os
import re
import signal
import ssl
import threading
import time
from pathlib import Path

import pytest

from tests.integration.console import RunningConsole, alive, descendants, start_console, wait_for
from tests.spec_samples import EMPTY_STATUS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

STATUS = "/api/common/v1/Status"
RECORD = "/api/common/v1/Record"


def test_status_over_https_trusted_only_through_the_generated_ca(console: RunningConsole) -> None:
    answer = console.request("GET", STATUS)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.body == {"statusCode": 0, "status": EMPTY_STATUS}
    untrusting = http.client.HTTPSConnection("localhost", console.port, context=ssl.create_default_context(), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.request("GET", STATUS)
    untrusting.close()
    key = console.data_dir / "tls" / "server-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600


def test_calls_are_recorded_and_served_newest_first(console: RunningConsole) -> None:
    uuids = []
    for path in [STATUS, "/api/common/v1/Version", STATUS]:
        answer = console.request("GET", path)
        assert answer.status == 200
        uuids.append(answer.headers["x-request-id"])
    rejected = console.request("GET", f"{RECORD}?take=abc")
    assert rejected.status == 400 and rejected.body["statusCode"] == 1704
    records = console.request("GET", RECORD).body
    # Newest first; older rows are the startup probe's. The rejected Record call is not recorded:
    # the Record endpoints never are.
    ours = [row for row in records if row["uuid"] in uuids]
    assert [row["uuid"] for row in ours] == list(reversed(uuids))
    assert [row["url"] for row in ours] == [STATUS, "/api/common/v1/Version", STATUS]
    assert all(row["statusCode"] == 0 for row in ours)
    assert records.index(ours[0]) == 0
    assert console.request("GET", f"{RECORD}?skip=1&take=1").body == records[1:2]
    assert console.request("DELETE", RECORD).status == 200
    assert console.request("GET", RECORD).body == []
    console.request("GET", STATUS)
    assert [row["url"] for row in console.request("GET", RECORD).body] == [STATUS]


def _two_workers(console: RunningConsole, without: int | None = None) -> list[int]:
    """The two workers' pids once both run (neither of them `without`); none before."""
    workers = console.processes()["worker"]
    return workers if len(workers) == 2 and without not in workers else []


def _stream_calls(console: RunningConsole, stop: threading.Event, answered: list[str]) -> None:
    """Keep calling Status; note the uuid of every call the console acknowledged (answered 200)."""
    own = RunningConsole(console.data_dir, console.port, console.process, console.log_path)  # its own connection
    while not stop.is_set():
        try:
            answer = own.request("GET", STATUS, timeout=3)
        except OSError:
            continue
        if answer.status == 200:
            answered.append(answer.headers["x-request-id"])


def _all_records(console: RunningConsole) -> set[str]:
    found: set[str] = set()
    skip = 0
    while True:
        page = console.request("GET", f"{RECORD}?skip={skip}&take=1000").body
        found |= {row["uuid"] for row in page}
        if len(page) < 1000:
            return found
        skip += 1000


def test_broker_killed_is_restarted_adopts_its_workers_and_loses_no_acknowledged_record(
    console: RunningConsole,
) -> None:
    [broker] = wait_for(lambda: console.processes()["broker"], 10, "the broker")
    workers = wait_for(lambda: _two_workers(console), 10, "2 workers")
    stop = threading.Event()
    answered: list[str] = []
    streamer = threading.Thread(target=_stream_calls, args=(console, stop, answered))
    streamer.start()
    try:
        wait_for(lambda: len(answered) >= 50, 20, "50 acknowledged calls before the kill")
        os.kill(broker, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: not alive(broker), 5, "the broker to die")
        count_at_kill = len(answered)
        wait_for(lambda: len(answered) > count_at_kill + 20, 10, "calls answered again")
    finally:
        stop.set()
        streamer.join(timeout=10)
    wait_for(console.status_ok, 5, "Status after the broker restart")
    assert time.monotonic() - killed_at < 10
    [new_broker] = console.processes()["broker"]
    assert new_broker != broker
    # The workers survived the broker's death and re-registered with the new one.
    assert sorted(console.processes()["worker"]) == sorted(workers)
    missing = set(answered) - _all_records(console)
    assert not missing, f"{len(missing)} acknowledged calls missing from the record"
    integrity = console.database_rows("PRAGMA integrity_check")
    assert integrity == [("ok",)]


def test_status_answers_within_5s_of_a_broker_kill(console: RunningConsole) -> None:
    [broker] = wait_for(lambda: console.processes()["broker"], 10, "the broker")
    os.kill(broker, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: not alive(broker), 5, "the broker to die")
    wait_for(console.status_ok, 5, "Status within 5 s of the kill")
    assert time.monotonic() - killed_at <= 5


def test_worker_killed_is_restarted_and_its_loss_logged(console: RunningConsole) -> None:
    workers = wait_for(lambda: _two_workers(console), 10, "2 workers")
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    replaced = wait_for(
        lambda: _two_workers(console, without=victim),
        5,
        "a replacement worker",
    )
    assert victim not in replaced
    wait_for(console.status_ok, 5 - (time.monotonic() - killed_at), "Status after the worker restart")
    lost = wait_for(
        lambda: console.database_rows("SELECT payload FROM events WHERE type = 'WorkerLost'"), 5, "a WorkerLost event"
    )
    assert len(lost) == 1
    # The card was lost with its worker; the bench puts it back, as a card that stayed in a real reader.
    wait_for(
        lambda: console.card_kinds() == {"NHI Sim Reader 0": "hc", "NHI Sim Reader 1": "hpc"},
        5,
        "the bench's cards back in their readers",
    )


def test_sigterm_stops_every_process_it_started(tmp_path: Path) -> None:
    console = start_console(tmp_path / "data")
    wait_for(lambda: len(console.processes()["worker"]) == 2, 10, "2 workers")
    roles = console.processes()
    assert len(roles["broker"]) == 1 and len(roles["api"]) >= 2
    everything = descendants(console.process.pid)
    assert console.stop(timeout=30) == 0
    # stop() returned once the supervisor exited, and it exits only after its descendants did.
    orphans = [pid for pid in everything if alive(pid)]
    assert not orphans, f"orphans left: {orphans}"


def test_a_hung_worker_is_noticed_within_3_heartbeats_and_replaced(console: RunningConsole) -> None:
    workers = wait_for(lambda: _two_workers(console), 10, "2 workers")
    victim = workers[1]
    os.kill(victim, signal.SIGSTOP)  # alive as a process, silent as a worker
    stopped_at = time.monotonic()
    try:
        wait_for(lambda: not alive(victim), 3 * 1.0 + 2, "the broker to kill the silent worker")
        noticed_after = time.monotonic() - stopped_at
    finally:
        if alive(victim):
            os.kill(victim, signal.SIGKILL)
    assert noticed_after >= 3 * 1.0 * 0.9, "killed before 3 heartbeat intervals of silence"
    wait_for(lambda: len(console.processes()["worker"]) == 2, 5, "a replacement worker")
    reasons = console.database_rows("SELECT payload FROM events WHERE type = 'WorkerLost'")
    assert any("stopped answering" in payload.decode() for (payload,) in reasons)


def test_the_api_killed_is_restarted(console: RunningConsole) -> None:
    api_master = min(console.processes()["api"])  # gunicorn's master starts before its workers
    os.kill(api_master, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: api_master not in console.processes()["api"] and console.status_ok(), 15, "the API back")
    print(f"API answered again {time.monotonic() - killed_at:.2f}s after kill -9 of its master")


def test_status_and_cert_commands(console: RunningConsole, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).with_name("nhi-console")
    shown = subprocess.run(
        [str(script), "status", "--data-dir", str(console.data_dir), "--port", str(console.port)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert shown.returncode == 0, shown.stderr
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.stdout.splitlines())
    assert lines["initialized"].strip() == "no"
    assert lines["SAM"].strip().startswith("0 (none)")
    exported = subprocess.run(
        [str(script), "cert", "--data-dir", str(console.data_dir), "--export", str(tmp_path / "ca.pem")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "ca.pem").read_bytes() == console.ca_file.read_bytes()
    stopped = subprocess.run(
        [
            str(script),
            "status",
            "--data-dir",
            str(console.data_dir),
            "--port",
            str(console.port + 1 if console.port < 65535 else 1),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert stopped.returncode == 1 and "not answering" in stopped.stderr
