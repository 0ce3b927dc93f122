"""The private run dir of a deep data dir, and `serve --host` beyond loopback (issue 20)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from contract.exit_codes import EXPOSURE_NOT_CONFIRMED
from deploy.doctor import OK, WARN, check_exposure
from deploy.exposure import EXPOSE_FLAG, exposes_beyond_loopback
from deploy.paths import RUN_DIR_POINTER, console_paths, is_private_dir, prepare

ROOT = Path(__file__).resolve().parents[2]


def _deep(tmp_path: Path) -> Path:
    return tmp_path / ("d" * 60) / ("e" * 60)


def test_a_short_data_dir_keeps_its_run_dir_inside(tmp_path: Path) -> None:
    paths = prepare(console_paths(tmp_path / "data"))
    assert paths.run_dir == (tmp_path / "data" / "run").resolve()
    assert is_private_dir(paths.run_dir)


def test_a_deep_data_dir_gets_an_unguessable_private_run_dir_and_keeps_it(tmp_path: Path) -> None:
    data = _deep(tmp_path)
    paths = prepare(console_paths(data))
    assert paths.run_dir.parent == Path(tempfile.gettempdir()).resolve()
    assert len(str(paths.run_dir / "workers.sock")) <= 100
    assert is_private_dir(paths.run_dir)
    assert console_paths(data).run_dir == paths.run_dir, "doctor and the tests find it from the data dir alone"
    assert prepare(console_paths(data)).run_dir == paths.run_dir, "a restart uses it again"
    other = prepare(console_paths(_deep(tmp_path / "other")))
    assert other.run_dir != paths.run_dir
    os.rmdir(paths.run_dir)
    os.rmdir(other.run_dir)


def test_a_remembered_run_dir_that_is_no_longer_private_is_replaced(tmp_path: Path) -> None:
    data = _deep(tmp_path)
    first = prepare(console_paths(data))
    os.chmod(first.run_dir, 0o777)  # opened up (or made by someone else): never used again
    assert not is_private_dir(first.run_dir)
    second = prepare(console_paths(data))
    assert second.run_dir != first.run_dir and is_private_dir(second.run_dir)
    link = tmp_path / "link"
    link.symlink_to(second.run_dir)
    (data / RUN_DIR_POINTER).write_text(str(link))
    third = prepare(console_paths(data))
    assert third.run_dir not in (link, second.run_dir.parent), "a link is never a run dir"
    assert is_private_dir(third.run_dir)
    for made in (first.run_dir, second.run_dir, third.run_dir):
        os.rmdir(made)


def test_a_directory_of_another_owner_is_not_private(tmp_path: Path) -> None:
    made = tmp_path / "x"
    made.mkdir(mode=0o700)
    assert is_private_dir(made)
    assert not is_private_dir(made, uid=os.geteuid() + 1)
    assert not is_private_dir(tmp_path / "missing")


@pytest.mark.parametrize(
    ("host", "exposed"),
    [
        (None, False),
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("::1", False),
        ("[::1]", False),
        ("localhost", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.20", True),
        ("clinic-pc.local", True),
    ],
)
def test_exposes_beyond_loopback(host: str | None, exposed: bool) -> None:
    assert exposes_beyond_loopback(host) is exposed


def test_doctor_warns_about_a_console_serving_beyond_loopback() -> None:
    assert check_exposure(None).verdict == OK
    finding = check_exposure("0.0.0.0")
    assert finding.verdict == WARN and "0.0.0.0" in finding.line()


@pytest.mark.timeout(60)
def test_serve_beyond_loopback_without_the_flag_refuses_and_touches_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from deploy.cli import main; sys.exit(main())",
            "serve",
            "--sim",
            "--data-dir",
            str(data),
            "--host",
            "0.0.0.0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == EXPOSURE_NOT_CONFIRMED
    assert EXPOSE_FLAG in result.stderr and result.stderr.count("\n") == 1
    assert not data.exists(), "refused before any file was made"
