"""fsync for files and for the directory entries that name them: what makes a write survive a power cut.

A file fsynced and then renamed into place is still lost on power loss if the
directory holding the new name is not fsynced too: the data is on disk, the name
is not. The archive segments, the cloud SAM files and the pseudonym key all need
both steps.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(path: Path) -> None:
    """Make a rename, link or new file in `path` durable; not possible (nor needed) on Windows."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write-then-rename, created with its final mode and made durable with its name: a reader (or a power cut)
    sees the old file or the new one, never half of one, and never a private file readable by others."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(descriptor, mode)  # the umask must not change the mode either way
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
