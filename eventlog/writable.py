"""Can a directory be written right now? Tried, not judged from mode bits.

Why try: a read-only mount, a full disk or an immutable flag defeats the mode bits (and root passes every mode
check), and the event log needs to create and grow files (its -wal and -shm beside it), not only to open one.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Final

PROBE_BYTES: Final = 4096
"""One page: a disk with no free block refuses it, where an empty file would still be created."""


PERMANENT: Final = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
"""Failures that waiting does not cure (a read-only mount, permissions); a full disk (ENOSPC) may clear."""


def write_probe(directory: Path) -> OSError | None:
    """None if a file can be created, written, fsynced and removed in `directory`; otherwise the error."""
    probe = directory / f".nhi-console-write-probe-{os.getpid()}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        return error
    try:
        os.write(descriptor, b"\0" * PROBE_BYTES)
        os.fsync(descriptor)
    except OSError as error:
        return error
    finally:
        os.close(descriptor)
        try:
            probe.unlink()
        except OSError:
            pass
    return None


def is_permanent(error: OSError) -> bool:
    return error.errno in PERMANENT


def unwritable_reason(directory: Path) -> str | None:
    """None if `directory` can be written now; otherwise why not, in a few words (the OS's)."""
    error = write_probe(directory)
    if error is None:
        return None
    return error.strerror or str(error)


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on `directory`'s file system."""
    return shutil.disk_usage(directory).free
