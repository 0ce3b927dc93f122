"""Windows port names through the running console (issue 21): HIS code written for the official console on Windows
names the NHI dedicated reader `COM3`. `serve --serial-port COM7=PATH` gives a port that name, the bench's reader
answers to `COM1`, an unknown `COMn` is told how to map it, and an `Initial` that fails leaves neither a worker nor
a reader behind.

Real here: every process, the bench's NHI reader on its pseudo-terminal, and pseudo-terminals of the test's own
with nothing answering on them (a serial port with no reader behind it, as a machine's built-in UART is).
"""

from __future__ import annotations

import os
import pty
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.console import RunningConsole, cmdline, running_console, wait_for
from tests.integration.test_device_names_console import post_alone

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INITIAL = "/api/common/v1/Initial"
FINALIZE = "/api/common/v1/Finalize"
STATUS = "/api/common/v1/Status"
NAME = "/api/common/v1/Name"
SAM_VERIFY = "/api/sam/v1/Verification"
HC_BASIC = "/api/hc/v1/Basic"
READERS = "/api/settings/v1/PcscReader/Readers"
BENCH_NHI = "/api/sim/v1/NhiReader"
MAPPED = "COM7"


def call(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return dict(answer.body)


def workers(console: RunningConsole) -> dict[str, int]:
    """The console's worker processes by the reader each serves (its command line's `--reader NAME`)."""
    found = {}
    for pid in console.processes()["worker"]:
        line = cmdline(pid)
        if "--reader" in line[:-1]:
            found[line[line.index("--reader") + 1]] = pid
    return found


def readers(console: RunningConsole) -> list[str]:
    return list(call(console, "GET", READERS)["readers"])


def nothing_left_of(console: RunningConsole, port: str) -> bool:
    """No worker for the port, and neither of its readers (`port`, `port#hpc`) in the readers list."""
    return port not in workers(console) and not {port, f"{port}#hpc"} & set(readers(console))


@pytest.fixture
def terminal() -> Iterator[str]:
    """A pseudo-terminal of the test's own, opened before the console starts so that it can be mapped: a serial
    port with nothing answering on it."""
    master, slave = pty.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


@pytest.fixture
def mapped(terminal: str, tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data", "--serial-port", f"{MAPPED}={terminal}") as running:
        yield running


def test_com1_is_the_benchs_reader(console: RunningConsole) -> None:
    link = str(call(console, "GET", BENCH_NHI)["port"])
    names = call(console, "GET", NAME)["names"]
    assert "COM1" in names and link not in names, "the port is listed once, by its Windows name"
    assert call(console, "POST", INITIAL, {"name": "COM1"})["statusCode"] == 0
    assert call(console, "POST", SAM_VERIFY)["statusCode"] == 0
    basic = call(console, "GET", HC_BASIC)
    assert basic["statusCode"] == 0 and basic["cardId"] == "900000000711"
    status = call(console, "GET", STATUS)["status"]
    assert (status["name"], status["readerName"], status["sam"]["type"]) == ("COM1", "COM1", 2)
    assert "COM1" in workers(console) and link in cmdline(workers(console)["COM1"]), "its worker opens the link"
    assert call(console, "POST", FINALIZE)["statusCode"] == 0
    wait_for(lambda: nothing_left_of(console, "COM1"), 15, "the port's worker and readers gone after Finalize")

    assert call(console, "POST", INITIAL, {"name": "com1"})["statusCode"] == 0, "case ignored, as on Windows"
    assert call(console, "GET", STATUS)["status"]["name"] == "COM1"
    assert call(console, "POST", FINALIZE)["statusCode"] == 0


def test_an_unknown_com_name_is_told_how_to_map_it(console: RunningConsole) -> None:
    answer = call(console, "POST", INITIAL, {"name": "COM9"})
    assert answer["statusCode"] == 1002
    assert "--serial-port COM9=/dev/ttyUSB0" in answer["message"]
    assert call(console, "POST", INITIAL, {"name": "/dev/no-such-port"}) == {
        "statusCode": 1002,
        "message": "no such device, or none that works",
    }, "any other unknown name keeps the one message"
    assert "COM9" not in workers(console)
    assert call(console, "GET", STATUS)["status"]["initialized"] is False


def test_a_mapped_port_with_no_reader_is_1202_and_leaves_nothing_behind(mapped: RunningConsole, terminal: str) -> None:
    console = mapped
    names = call(console, "GET", NAME)["names"]
    assert MAPPED in names and terminal not in names
    answer = call(console, "POST", INITIAL, {"name": MAPPED})
    assert answer["statusCode"] == 1202, answer
    assert MAPPED in answer["message"] and terminal not in answer["message"], "the port named as the HIS named it"
    wait_for(lambda: nothing_left_of(console, MAPPED), 15, "no worker and no reader of the port after the 1202")
    assert call(console, "POST", FINALIZE)["statusCode"] == 1000, "nothing was initialized"
    assert nothing_left_of(console, MAPPED)
    assert call(console, "GET", STATUS)["status"]["initialized"] is False


def test_a_worker_lost_while_initial_tries_its_port_leaves_no_reader(mapped: RunningConsole) -> None:
    """The order that left the readers for good: the port's worker goes (here: killed) while `Initial` waits on
    it, its command fails, the `Initial` lets the port go, and the pool had counted the worker lost (to be
    restarted) rather than stopped. Stopped first (SIGSTOP), so that it cannot answer before it is killed."""
    console = mapped
    answers: list[dict[str, Any]] = []
    caller = threading.Thread(target=lambda: answers.append(post_alone(console, INITIAL, {"name": MAPPED})))
    caller.start()
    try:
        wait_for(lambda: MAPPED in readers(console), 20, "the port's worker reported its readers")
        pid = workers(console)[MAPPED]
        os.kill(pid, signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
    finally:
        caller.join(timeout=90)
    assert answers and answers[0]["statusCode"] == 1202, answers
    assert "stopped during the command" in answers[0]["message"], answers
    wait_for(lambda: nothing_left_of(console, MAPPED), 15, "no reader of the port left after its worker was lost")
    assert call(console, "GET", STATUS)["status"]["initialized"] is False
