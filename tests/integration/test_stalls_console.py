"""Stalls never kill healthy workers (issue 19, "Years unattended"): real processes, the bench's readers.

A broker stopped for 10 s, a card taking 8 s an APDU, an NHI reader whose every answer comes after the link's
2 s wait (so each frame is sent again): the readers' workers keep their pids and their card sessions, a command
past its deadline answers its code, and a PIN VERIFY reaches the card exactly once per call. The slow cards are
the bench's card lab (sim/card_lab.py): a delay file read at every APDU, a file counting PIN VERIFYs.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from deploy.paths import console_paths
from sim.card_lab import DELAY_FILE, LAB_ENV, pin_verifies
from sim.nhi_control import NhiReaderControl
from tests.integration.console import RunningConsole, cmdline, running_console
from tests.typed_secrets import PROFILE_PIN
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration]

STATUS = "/api/common/v1/Status"
INITIAL = "/api/common/v1/Initial"
VERIFY = "/api/hpc/v1/Verification/Hpc"
HPC_BASIC = "/api/hpc/v1/Basic"
SAM_VERIFY = "/api/sam/v1/Verification"
BENCH_NHI = "/api/sim/v1/NhiReader"
BENCH_READERS = "/api/sim/v1/Readers"
STAFF_READER = "NHI Sim Reader 1"
HEARTBEAT = 1.0
"""`serve`'s default heartbeat interval: the broker gives up on a worker silent for three of them."""


def call(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return dict(answer.body)


def verify_pin(console: RunningConsole) -> dict[str, Any]:
    """`POST /api/hpc/v1/Verification/Hpc` sent exactly once, on a connection of its own with the call's own
    timeout: `RunningConsole.request` reuses a connection whose socket timeout is that of the request that
    opened it (2 s for `status_ok`) and resends after a timeout, which would be a second PIN try here."""
    connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context(), timeout=70)
    try:
        body = json.dumps({"pin": PROFILE_PIN}).encode()
        connection.request("POST", VERIFY, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        return dict(json.loads(response.read()))
    finally:
        connection.close()


def hpc_status(console: RunningConsole) -> int:
    return int(call(console, "GET", STATUS)["status"]["hpc"]["status"])


def worker_of(console: RunningConsole, reader: str) -> int:
    """The pid of the worker serving `reader` (its command line names it)."""
    (pid,) = [pid for pid in console.processes()["worker"] if reader in cmdline(pid)]
    return pid


def process_state(pid: int) -> str | None:
    """A process's state letter from /proc (`T` stopped, `Z` a zombie), None once it is gone and reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0].decode()
    except (FileNotFoundError, ProcessLookupError):
        return None


def workers_lost(console: RunningConsole) -> list[dict[str, Any]]:
    return [json.loads(row[0]) for row in console.database_rows("SELECT payload FROM events WHERE type = 'WorkerLost'")]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The card lab every bench card of the console goes through; no delay until a test writes one."""
    directory = tmp_path / "lab"
    directory.mkdir()
    monkeypatch.setenv(LAB_ENV, str(directory))
    return directory


@pytest.fixture
def lab_console(lab: Path, tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data") as running:
        yield running


def slow_cards(lab: Path, seconds: float) -> None:
    (lab / DELAY_FILE).write_text(str(seconds))


@pytest.mark.timeout(60)
def test_a_broker_stopped_for_10_s_kills_no_worker_and_loses_no_session(console: RunningConsole) -> None:
    assert call(console, "POST", INITIAL)["statusCode"] == 0
    assert verify_pin(console) == {"statusCode": 0}
    assert hpc_status(console) == 3
    processes = console.processes()
    (broker,) = processes["broker"]
    workers = sorted(processes["worker"])

    os.kill(broker, signal.SIGSTOP)
    try:
        time.sleep(10)  # the fault itself: a broker that does not run for 10 s (a paused VM, a debugger)
    finally:
        os.kill(broker, signal.SIGCONT)
    wait_for(console.status_ok, 10, "the broker answering again")
    # Nothing to wait for: what is tested is that nothing happens. The broker judges its workers ten times a
    # second; five heartbeat intervals after the stall is past any judgement the stall could have swayed.
    time.sleep(5 * HEARTBEAT)

    assert sorted(console.processes()["worker"]) == workers
    assert console.processes()["broker"] == [broker]
    assert workers_lost(console) == []
    assert hpc_status(console) == 3, "the staff card's verified PIN outlived the stall"
    assert call(console, "GET", HPC_BASIC)["statusCode"] == 0, "level 3 without a new PIN"


@pytest.mark.timeout(90)
def test_a_worker_slow_to_stop_holds_no_caller_and_its_reader_waits_for_it(console: RunningConsole) -> None:
    """Unplugging a bench reader stops its worker. The broker used to wait for it, up to 3 s, in the loop that
    answers every caller (a 503 under fuzzing in CI). A worker that does not stop (SIGSTOP here: SIGTERM stays
    pending) is now let go at once, killed past its grace on a later turn, and its reader's next worker starts
    only once it is gone."""
    name = "Slow To Stop"
    path = f"{BENCH_READERS}/{quote(name)}"
    call(console, "POST", BENCH_READERS, {"name": name})
    wait_for(lambda: name in console.attached_readers(), 30, "the new reader's worker reporting")
    pid = worker_of(console, name)
    os.kill(pid, signal.SIGSTOP)
    call(console, "DELETE", path)
    wait_for(lambda: name not in console.attached_readers(), 10, "the unplugged reader leaving the state")
    assert process_state(pid) == "T", "the broker waited for the worker before it let the reader go"
    assert console.status_ok()

    call(console, "POST", BENCH_READERS, {"name": name})  # back before the old worker is gone: it waits for it
    wait_for(lambda: process_state(pid) is None, 20, "the stopped worker killed and reaped")
    wait_for(lambda: name in console.attached_readers(), 30, "the reader's next worker reporting")
    assert worker_of(console, name) != pid
    assert f"worker pid {pid} for reader {name!r} did not stop within" in console.log_path.read_text()


@pytest.mark.timeout(60)
def test_a_card_taking_8_s_an_apdu_answers_its_code_and_keeps_its_worker(
    lab: Path, lab_console: RunningConsole
) -> None:
    console = lab_console
    assert call(console, "POST", INITIAL)["statusCode"] == 0
    assert verify_pin(console) == {"statusCode": 0}
    assert pin_verifies(lab) == 1
    worker = worker_of(console, STAFF_READER)

    slow_cards(lab, 8)  # SELECT, the counter, VERIFY: 24 s in one command, past the 10 s card step deadline
    started = time.monotonic()
    answer = verify_pin(console)
    took = time.monotonic() - started
    assert answer["statusCode"] == 1402, "the step's 1119 (did not answer in time), as the staff PIN call reports it"
    assert 9 < took < 15, f"answered at the card step's 10 s deadline, not after the card ({took:.1f} s)"

    # The next call waits for the worker (still in the first command) in the broker, not in the worker's queue.
    slow_cards(lab, 0)  # the APDU under way still takes its 8 s; the rest go at once
    assert verify_pin(console) == {"statusCode": 0}
    assert pin_verifies(lab) == 3, "one PIN VERIFY per call: the late one ran once, and was never sent again"
    assert worker_of(console, STAFF_READER) == worker, "the worker outlived a 16 s command"
    assert workers_lost(console) == []
    assert hpc_status(console) == 3


@pytest.mark.timeout(60)
def test_an_nhi_reader_whose_answers_come_after_a_retransmit_keeps_its_worker(
    lab: Path, lab_console: RunningConsole
) -> None:
    console = lab_console
    port = str(call(console, "GET", BENCH_NHI)["port"])
    control = NhiReaderControl(console_paths(console.data_dir, sim=True).sim_nhi_control)
    assert call(console, "POST", INITIAL, {"name": port})["statusCode"] == 0
    assert call(console, "POST", SAM_VERIFY)["statusCode"] == 0
    assert verify_pin(console) == {"statusCode": 0}, "the staff card's slot"
    assert pin_verifies(lab) == 1
    worker = worker_of(console, port)
    repeated = int(control.call("frames")["repeated"])

    # Past the link's 2 s answer wait: every card APDU's frame is sent again, and answered from the reader's
    # cache. VerifyPin is five APDUs (SELECT, the counter, VERIFY, SELECT, the data): 11 s in one command.
    slow_cards(lab, 2.2)
    started = time.monotonic()
    answer = verify_pin(console)
    took = time.monotonic() - started
    slow_cards(lab, 0)
    assert answer["statusCode"] == 1402, "the step's 1119 (did not answer in time), as the staff PIN call reports it"
    assert 9 < took < 15, f"answered at the card step's 10 s deadline ({took:.1f} s)"

    assert verify_pin(console) == {"statusCode": 0}, "after the worker's late answer"
    assert int(control.call("frames")["repeated"]) - repeated >= 3, "the reader answered resent frames"
    assert pin_verifies(lab) == 3, "one PIN VERIFY per call: a resent frame is answered from the cache, never run"
    assert worker_of(console, port) == worker, "the worker outlived an 11 s command"
    assert workers_lost(console) == []
    assert hpc_status(console) == 3
