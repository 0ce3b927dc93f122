"""`POST /api/common/v1/Initial`'s device name from a hostile caller (issue 20), through the running console.

A name is a serial port only if the console lists it, resolves to a listed port's device, or resolves to a
terminal's character device under /dev (contract/serial_port_names.py). Anything else is 1002 with one message,
whatever the file system holds there, and no worker is started for it; aliases of one device share one worker,
which goes by the device's one name.

Real here: every process, the file system the names point into, the bench's NHI reader on its pseudo-terminal.
"""

from __future__ import annotations

import http.client
import json
import os
import pty
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.console import RunningConsole, cmdline, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INITIAL = "/api/common/v1/Initial"
FINALIZE = "/api/common/v1/Finalize"
STATUS = "/api/common/v1/Status"
NAME = "/api/common/v1/Name"
SAM_VERIFY = "/api/sam/v1/Verification"
HC_BASIC = "/api/hc/v1/Basic"
BENCH_NHI = "/api/sim/v1/NhiReader"

NOT_A_DEVICE = {"statusCode": 1002, "message": "no such device, or none that works"}
BENCH_PORT_NAME = "COM1"
"""The Windows name the bench's NHI reader answers to: its port's one name (issue 21)."""
FILE_SYSTEM_WORDS = ("errno", "denied", "exist", "no such file", "permission", "directory", "oserror", "eacces")


def call(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return dict(answer.body)


def post_alone(console: RunningConsole, path: str, body: Any) -> dict[str, Any]:
    """One POST on a connection of its own, as another HIS program would send it at the same moment."""
    connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context(), timeout=70)
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        return dict(json.loads(response.read()))
    finally:
        connection.close()


def worker_readers(console: RunningConsole) -> list[str]:
    """The reader each of the console's worker processes serves, from its command line (`--reader NAME`)."""
    readers = []
    for pid in console.processes()["worker"]:
        line = cmdline(pid)
        if "--reader" in line[:-1]:
            readers.append(line[line.index("--reader") + 1])
    return readers


def new_log_text(console: RunningConsole, offset: int) -> str:
    return console.log_path.read_bytes()[offset:].decode(errors="replace")


def test_files_and_links_to_files_are_1002_and_say_nothing_of_the_file_system(
    console: RunningConsole, tmp_path: Path
) -> None:
    existing = tmp_path / "x"
    existing.write_bytes(b"not a port\n")
    before = existing.stat()
    (tmp_path / "link").symlink_to(existing)
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    names = [
        "/dev/../etc/shadow",  # exists, unreadable
        "/dev/../etc/no-such-file-here",
        f"/dev/..{existing}",  # exists, ours: was opened read-write by a worker before
        f"/dev/..{tmp_path}/missing",
        str(tmp_path / "link"),
        str(tmp_path / "dangling"),
        str(tmp_path),
        "/dev/shm",
    ]
    offset = console.log_path.stat().st_size
    answers = {name: call(console, "POST", INITIAL, {"name": name}) for name in names}
    for name, answer in answers.items():
        assert answer == NOT_A_DEVICE, name  # the same answer whether the path exists, is readable, or not
        assert not any(word in answer["message"].lower() for word in FILE_SYSTEM_WORDS)
    assert call(console, "GET", STATUS)["status"]["initialized"] is False
    assert worker_readers(console) and not set(worker_readers(console)) & set(names), "no worker for a file"
    log = new_log_text(console, offset)
    assert not any(name in log for name in names), "the console's log does not repeat a caller's path"
    assert not any(word in log.lower() for word in ("errno", "denied", "no such file")), log
    after = existing.stat()
    assert existing.read_bytes() == b"not a port\n" and (after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_mtime_ns,
        before.st_ctime_ns,
    )


def _initial_together(
    console: RunningConsole, names: list[str], device: str
) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """`Initial` with each name at the same moment, each on a connection of its own, while a watcher lists, every
    few milliseconds, the workers whose reader resolves to `device`."""
    answers: list[dict[str, Any]] = []
    seen: list[list[str]] = []
    start = threading.Barrier(len(names) + 1)
    done = threading.Event()

    def initial(name: str) -> None:
        start.wait()
        answers.append(post_alone(console, INITIAL, {"name": name}))

    def watch() -> None:
        start.wait()
        while not done.wait(0.005):
            seen.append([reader for reader in worker_readers(console) if os.path.realpath(reader) == device])

    callers = [threading.Thread(target=initial, args=(name,)) for name in names]
    watcher = threading.Thread(target=watch)
    for thread in [*callers, watcher]:
        thread.start()
    for thread in callers:
        thread.join(timeout=120)
    done.set()
    watcher.join(timeout=10)
    assert len(answers) == len(names)
    return answers, seen


def test_aliases_of_a_device_that_is_no_terminal_start_no_worker(console: RunningConsole, tmp_path: Path) -> None:
    """/dev/null is a character device under /dev, but no terminal: like /dev/watchdog or /dev/mem, never opened."""
    (tmp_path / "null").symlink_to("/dev/null")
    names = ["/dev/./null"] * 25 + [
        "/dev/././null",
        "/dev/../dev/null",
        str(tmp_path / "null"),
        "/dev//null",
        "/dev/null",
    ]
    answers, seen = _initial_together(console, names, "/dev/null")
    assert all(answer == NOT_A_DEVICE for answer in answers), answers[:3]
    assert not any(seen), "no worker was ever started for /dev/null"
    assert call(console, "GET", STATUS)["status"]["initialized"] is False


def test_aliases_of_one_terminal_started_together_share_one_worker(console: RunningConsole, tmp_path: Path) -> None:
    """A pseudo-terminal of the test's own, with nothing answering on it: a serial port with no reader behind."""
    master, slave = pty.openpty()
    try:
        terminal = os.ttyname(slave)
        (tmp_path / "link").symlink_to(terminal)
        directory, name = os.path.split(terminal)
        aliases = [terminal, f"{directory}/./{name}", f"{directory}/../pts/{name}", str(tmp_path / "link")]
        names = [f"{directory}/./{name}"] * 26 + aliases
        answers, seen = _initial_together(console, names, terminal)
    finally:
        os.close(slave)
    try:
        assert {answer["statusCode"] for answer in answers} == {1202}, answers[:3]  # no reader answers there
        assert all(terminal in answer["message"] for answer in answers), "named by the device, not the alias"
        assert any(seen), "the watcher saw the worker"
        assert max(len(readers) for readers in seen) <= 1, "at most one worker for the terminal at any time"
        assert {reader for readers in seen for reader in readers} <= {terminal}, "the worker goes by one name"
        wait_for(lambda: terminal not in worker_readers(console), 15, "the worker let go once no Initial tries it")
        assert call(console, "GET", STATUS)["status"]["initialized"] is False
    finally:
        os.close(master)


def test_the_benchs_reader_by_its_listed_name_and_by_aliases(console: RunningConsole) -> None:
    """The bench's port is listed by its Windows name, COM1 (issue 21): its link and pty are aliases of it."""
    port = str(call(console, "GET", BENCH_NHI)["port"])
    names = call(console, "GET", NAME)["names"]
    assert BENCH_PORT_NAME in names and port not in names, "the console lists the bench's port, once"
    device = os.path.realpath(port)
    assert device.startswith("/dev/pts/")
    for name in (f"{os.path.dirname(port)}/./{os.path.basename(port)}", device, port, BENCH_PORT_NAME):
        assert call(console, "POST", INITIAL, {"name": name})["statusCode"] == 0, name
        status = call(console, "GET", STATUS)["status"]
        assert (status["name"], status["sam"]["type"]) == (BENCH_PORT_NAME, 2), "the session goes by the listed name"
        assert call(console, "POST", SAM_VERIFY)["statusCode"] == 0
        assert call(console, "GET", HC_BASIC)["statusCode"] == 0
        assert call(console, "GET", STATUS)["status"]["readerName"] == BENCH_PORT_NAME
        serving = [r for r in worker_readers(console) if r == BENCH_PORT_NAME or os.path.realpath(r) == device]
        assert serving == [BENCH_PORT_NAME], "one worker for the reader, under the listed name"
        assert call(console, "POST", FINALIZE)["statusCode"] == 0
        wait_for(lambda: BENCH_PORT_NAME not in worker_readers(console), 15, "the port's worker stopped after Finalize")
