"""How many commands (APDUs) reached the cards of each bench PC/SC reader: `cardCommands` of GET /api/sim/v1/Readers.

SIMULATION ONLY. A test that says "a refused call ran nothing" must count at the card, not assume: the count is
taken where the APDU is handed to the virtual card (`sim.virtual_reader.VirtualReader.transmit`). That is in the
reader's worker process, while the control API that reports it runs in gunicorn's, so the count crosses through a
file per reader, in a directory of the data dir:

- the broker's bench (`sim.bench.install`) names the directory in the environment its workers inherit
  (`COUNTS_ENV`), and empties it on a fresh start, so a count is cumulative per reader *name* since this
  `serve --sim` started: across the cards put in and taken out, a worker's restart (the new worker goes on from
  the file) and a broker's restart (its workers live on);
- the worker adds one for every APDU its card was handed (a transmit to an empty reader reached no card: not
  counted), as an 8-byte little-endian integer written in place (`os.pwrite`, one system call an APDU; binary, so
  no count ever reads like a PIN in the end-of-run secret scan);
- the control API reads it (`read_count`), twice until two reads agree, so a read racing a write is not torn.

A reader that never got a worker, or whose card never got an APDU, counts 0.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import threading
from pathlib import Path

log = logging.getLogger(__name__)

COUNTS_ENV = "NHI_CONSOLE_SIM_CARD_COUNTS"
"""The directory of the counts, for the bench readers' workers (set by the broker's bench, inherited)."""
COUNTS_DIR_NAME = "sim-card-commands"
"""Under the data dir, beside the bench's other `sim-` state."""
_COUNT = struct.Struct("<Q")
_MAX_READS = 5


def counts_dir(data_dir: Path) -> Path:
    """Where the counts of a data dir's bench live (the broker names it, the control API reads it)."""
    return data_dir / COUNTS_DIR_NAME


def count_file(directory: Path, reader: str) -> Path:
    """A reader's file: named by a hash of the reader's name, which may hold any character (`/` included)."""
    return directory / (hashlib.sha256(reader.encode("utf-8")).hexdigest()[:32] + ".count")


def read_count(directory: Path, reader: str) -> int:
    """The reader's count so far; 0 if nothing was counted yet."""
    path = count_file(directory, reader)
    previous: bytes | None = None
    for _ in range(_MAX_READS):
        try:
            raw = path.read_bytes()[: _COUNT.size]
        except FileNotFoundError:
            return 0
        if raw == previous:
            break
        previous = raw
    if previous is None or len(previous) < _COUNT.size:
        return 0
    return int(_COUNT.unpack(previous)[0])


def clear(directory: Path) -> None:
    """A fresh bench counts from 0: the previous run's counts go. Never fails the broker's start (a full disk, say):
    the readers' workers make the directory again, or count without it."""
    shutil.rmtree(directory, ignore_errors=True)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        log.warning("cannot make the bench's card command counts directory: %s", type(error).__name__)


class CommandCounter:
    """One reader's count, kept by its worker: goes on from what the file says (a restarted worker's reader)."""

    def __init__(self, directory: Path, reader: str) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.count = read_count(directory, reader)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(count_file(directory, reader), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:  # the bench works on; only its count is lost, and said so once
            log.warning("cannot keep the card command count of a bench reader: %s", type(error).__name__)

    def add(self) -> None:
        with self._lock:
            self.count += 1
            if self._fd is not None:
                try:
                    os.pwrite(self._fd, _COUNT.pack(self.count), 0)
                except OSError as error:
                    log.warning("cannot write the card command count of a bench reader: %s", type(error).__name__)
                    os.close(self._fd)
                    self._fd = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def counter_from_environment(reader: str) -> CommandCounter | None:
    """The worker's counter for `reader`, if the bench named a directory (only `serve --sim` does)."""
    named = os.environ.get(COUNTS_ENV)
    return CommandCounter(Path(named), reader) if named else None
