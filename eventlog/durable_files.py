"""fsync for files and for the directory entries that name them: what makes a write survive a power cut.

A file fsynced and then renamed into place is still lost on power loss if the
directory holding the new name is not fsynced too: the data is on disk, the name
is not. The archive segments, the cloud SAM files and the pseudonym key all need
both steps.
"""

from __future__ import annotations

import os
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
