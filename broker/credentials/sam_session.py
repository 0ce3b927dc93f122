"""The session's secrets: the open SAM file and its DC session token. Never in the state or the log.

The state (a fold of the log) says what the session's levels are; what it
takes to act on them (the SAM's private key, the DC session token) lives only
in this object in the broker's memory, and the cloud SAM files on disk. After a
broker restart the state is replayed but the token is gone: the next DC call
logs the SAM in again, which is what a DC session that had expired would need
anyway.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from broker.credentials.cloud_sam_file import CloudSamFile, CloudSamFileInvalid, parse_cloud_sam_file
from broker.domain.state import PhysicalSamIdentity
from eventlog.durable_files import write_atomically


@dataclass
class SamSession:
    file: CloudSamFile | PhysicalSamIdentity | None = field(default=None, repr=False)
    """The open SAM: a cloud SAM's file (its key signs here), or the identity of the SAM in an NHI reader
    (which signs inside the reader)."""
    token: str | None = field(default=None, repr=False)
    token_expires: datetime.datetime | None = None
    generation: int = 0
    """Bumped whenever the session opens or closes, so a flow from an earlier session cannot act on this one."""

    def open(self, file: CloudSamFile | PhysicalSamIdentity | None) -> None:
        self.file = file
        self.token = None
        self.token_expires = None
        self.generation += 1

    def close(self) -> None:
        self.open(None)

    def drop_token(self) -> None:
        self.token = None
        self.token_expires = None

    def token_valid(self, now: datetime.datetime) -> bool:
        return self.token is not None and self.token_expires is not None and now < self.token_expires


class CloudSamStore:
    """`<data dir>/cloud-sams/<samId>.sam`, each 0600, written atomically; or in memory (tests)."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._memory: dict[str, bytes] = {}

    def _path(self, sam_id: str) -> Path:
        assert self._directory is not None
        if not (len(sam_id) == 12 and sam_id.isdigit()):
            raise ValueError("a SAM id is 12 digits")
        return self._directory / f"{sam_id}.sam"

    def save(self, sam_id: str, raw: bytes) -> None:
        if self._directory is None:
            self._memory[sam_id] = raw
            return
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(self._path(sam_id), raw)  # 0600: it holds the SAM's private key

    def load(self, sam_id: str) -> CloudSamFile | None:
        """The parsed file, or None if it is gone or no longer parses (the device cannot be opened)."""
        if self._directory is None:
            raw = self._memory.get(sam_id)
        else:
            try:
                raw = self._path(sam_id).read_bytes()
            except (OSError, ValueError):
                raw = None
        if raw is None:
            return None
        try:
            return parse_cloud_sam_file(raw)
        except CloudSamFileInvalid:
            return None

    def remove(self, sam_id: str) -> None:
        if self._directory is None:
            self._memory.pop(sam_id, None)
            return
        try:
            self._path(sam_id).unlink()
        except FileNotFoundError:
            pass
