"""The data dir's writability and free space: what `serve`, the broker and `doctor` try before they rely on it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from deploy.doctor import FAIL, OK, WARN, check_disk_space
from eventlog.writable import is_permanent, unwritable_reason, write_probe

pytestmark = pytest.mark.timeout(30)


def test_a_writable_dir_passes_and_leaves_nothing(tmp_path: Path) -> None:
    assert write_probe(tmp_path) is None
    assert unwritable_reason(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_missing_dir_is_named_with_the_systems_words(tmp_path: Path) -> None:
    error = write_probe(tmp_path / "absent")
    assert error is not None and error.errno == errno.ENOENT
    assert unwritable_reason(tmp_path / "absent") == "No such file or directory"


def test_read_only_and_forbidden_are_permanent_a_full_disk_is_not() -> None:
    assert is_permanent(OSError(errno.EROFS, "Read-only file system"))
    assert is_permanent(OSError(errno.EACCES, "Permission denied"))
    assert not is_permanent(OSError(errno.ENOSPC, "No space left on device"))


def test_doctor_free_space_thresholds(tmp_path: Path) -> None:
    assert check_disk_space(tmp_path, 10 * 1024**3).verdict == OK
    assert check_disk_space(tmp_path, 200 * 1024**2).verdict == WARN
    low = check_disk_space(tmp_path, 10 * 1024**2)
    assert low.verdict == FAIL and "free space" in low.line()
    assert check_disk_space(tmp_path, None).verdict == WARN
