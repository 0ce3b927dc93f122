"""A full disk and a read-only data dir, for real (issue 19): the console answers 1098 and recovers by itself,
or refuses to start in one line without a restart loop.

The data dir is a size-limited tmpfs mounted for the test (the tests run as root); a full disk is that file
system filled by a file, so SQLite's own writes fail with ENOSPC (SQLITE_FULL), as they would on a clinic's
disk. Without root a read-only dir is one without write permission (EACCES, which is also permanent); the
full disk needs the mount, and says so when it cannot have it.
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contract.exit_codes import DATA_DIR_UNWRITABLE
from contract.status_codes import StatusCode
from deploy.paths import console_paths
from tests.integration.console import Answer, RunningConsole, free_port, running_console, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STATUS = "/api/common/v1/Status"
RECORD = "/api/common/v1/Record?take=1000"
INITIAL = "/api/common/v1/Initial"
ROOT = os.geteuid() == 0


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write a file until the file system has no block left (1 MiB pieces, then 4 KiB ones)."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for piece in (1 << 20, 4096):
            while True:
                try:
                    handle.write(b"\0" * piece)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    break
    return filler


def _record_uuids(console: RunningConsole) -> Counter[str]:
    answer = console.request("GET", RECORD)
    assert answer.status == 200, answer.body
    return Counter(row["uuid"] for row in answer.body)


def _is_not_recorded(answer: Answer) -> bool:
    return answer.status == 503 and answer.body["statusCode"] == StatusCode.NOT_RECORDED


@pytest.mark.skipif(not ROOT, reason="a full disk needs a size-limited tmpfs, which only root can mount")
def test_a_full_disk_answers_1098_keeps_the_broker_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    acknowledged: list[str] = []
    refused: list[str] = []

    def status(console: RunningConsole) -> Answer:
        answer = console.request("GET", STATUS)
        uuid = answer.headers["x-request-id"]
        if _is_not_recorded(answer):
            assert answer.headers.get("retry-after") == "5"  # nothing ran: a retry is safe
            assert "nothing was recorded" in answer.body["message"]
            refused.append(uuid)
        else:
            assert answer.status == 200 and answer.body["statusCode"] == 0, answer.body
            acknowledged.append(uuid)
        return answer

    with tmpfs(tmp_path / "data", "48m") as data, running_console(data) as console:
        (broker,) = console.processes()["broker"]
        for _ in range(5):
            status(console)
        filler = fill(data)
        for _ in range(500):
            if _is_not_recorded(status(console)):
                break
        else:
            pytest.fail("500 calls on a full disk were all recorded")
        for _ in range(5):
            status(console)
        initial = console.request("POST", INITIAL, {})
        assert _is_not_recorded(initial), initial.body  # a card/DC command is not started (or not acknowledged)
        refused.append(initial.headers["x-request-id"])
        assert console.processes()["broker"] == [broker]  # no crash, no restart

        filler.unlink()  # space returns: the console recovers by itself
        wait_for(lambda: status(console).status == 200, 10, "a recorded Status after space returned")
        for _ in range(5):
            status(console)
        assert console.processes()["broker"] == [broker]
        recorded = _record_uuids(console)
    assert refused and acknowledged
    assert all(recorded[uuid] == 1 for uuid in acknowledged), "an acknowledged call is missing or doubled"
    assert not any(recorded[uuid] for uuid in refused), "a call answered 1098 is in the record"


@contextmanager
def read_only_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir a console wrote once (its certificates, its log), then made read-only."""
    with tmpfs(tmp_path / "data", "16m") if ROOT else _plain(tmp_path / "data") as data:
        with running_console(data, readers=set()):
            shutil.copy(console_paths(data).settings_file, tmp_path / "settings.json")
        if ROOT:  # once the last of its processes has closed its files
            wait_for(lambda: _remount_read_only(data), 15, "the data dir's mount to be free")
        else:
            data.chmod(0o500)
        try:
            yield data
        finally:
            if not ROOT:
                data.chmod(0o700)


def _remount_read_only(path: Path) -> bool:
    """Remount once nothing writes there: the test's own read-only SQLite connections (console.database_rows)
    hold the -shm open read-write until the garbage collector closes them."""
    gc.collect()
    return subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, check=False).returncode == 0


@contextmanager
def _plain(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True)
    yield path


def test_a_read_only_data_dir_stops_serve_in_one_line_and_nothing_restarts(tmp_path: Path) -> None:
    with read_only_data_dir(tmp_path) as data:
        # `serve`: one line, the status that the unit and our supervisor do not restart, before any child.
        done = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "serve", "--data-dir", str(data), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == DATA_DIR_UNWRITABLE
        lines = (done.stdout + done.stderr).splitlines()
        assert len(lines) == 1, lines
        assert "cannot write the data dir" in lines[0] and str(data) in lines[0]

        # The broker under the supervisor (a dir that turned read-only while serving, then a broker restart):
        # it exits DATA_DIR_UNWRITABLE once, and the supervisor stops instead of restarting it.
        settings = tmp_path / "settings.json"
        script = textwrap.dedent(
            f"""
            import logging, sys
            from deploy.supervisor import ChildSpec, Supervisor
            logging.basicConfig(level=logging.INFO, format="supervisor %(message)s")
            argv = [sys.executable, "-m", "broker", "--settings", {str(settings)!r}]
            sys.exit(Supervisor([ChildSpec("broker", lambda restarted: argv)]).run())
            """
        )
        supervised = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
        )
        output = supervised.stdout + supervised.stderr
        assert supervised.returncode == DATA_DIR_UNWRITABLE, output
        assert output.count("broker started") == 1, output  # started once, never again
        assert "cannot be written" in output and "Traceback" not in output, output
