"""Where the console keeps things: one data dir, with the IPC sockets under it.

Unix socket paths are limited to about 107 bytes; when the data dir is deep,
the sockets move to a short private directory in /tmp instead of failing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from contract.settings import SETTINGS_FILE_NAME

UNIX_PATH_LIMIT = 100


def default_data_dir() -> Path:
    configured = os.environ.get("NHI_CONSOLE_DATA_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nhi-console"


@dataclass(frozen=True)
class ConsolePaths:
    data_dir: Path
    run_dir: Path
    sim: bool = False

    @property
    def database(self) -> Path:
        """The bench keeps its own log: simulated cards never mix with a clinic's real audit trail."""
        return self.data_dir / ("sim-console.db" if self.sim else "console.db")

    @property
    def pseudonym_key(self) -> Path:
        """Shared by the real and the bench logs: one installation, one key."""
        return self.data_dir / "secrets" / "pseudonym.key"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / ("sim-archive" if self.sim else "archive")

    @property
    def cloud_sam_dir(self) -> Path:
        """Imported cloud SAM files, 0600 each; the bench's apart from a clinic's real ones."""
        return self.data_dir / ("sim-cloud-sams" if self.sim else "cloud-sams")

    @property
    def sim_dc_dir(self) -> Path:
        """The bench's DC simulator: its SQLite state, its TLS CA and the bench's SAM file."""
        return self.data_dir / "sim-dc"

    @property
    def sim_nhi_dir(self) -> Path:
        """The bench's NHI dedicated reader: where the link to its pseudo-terminal lives."""
        return self.data_dir / "sim-nhi-reader"

    @property
    def sim_nhi_link(self) -> Path:
        """A stable name for the reader's pseudo-terminal, whose own name (/dev/pts/N) changes at each replug."""
        return self.sim_nhi_dir / "ttyNHI0"

    @property
    def sim_nhi_control(self) -> str:
        """The bench NHI reader's control socket, which the control API's NhiReader and Keypad routes use."""
        return f"ipc://{self.run_dir / 'sim-nhi.sock'}"

    @property
    def settings_file(self) -> Path:
        """The settings `serve` writes once and its children read (contract/settings.py); beside serve.json."""
        return self.run_dir / SETTINGS_FILE_NAME

    @property
    def served_file(self) -> Path:
        """What a serving console tells `doctor`: its pid, port, data center and serial ports."""
        return self.run_dir / "serve.json"

    @property
    def api_endpoint(self) -> str:
        return f"ipc://{self.run_dir / 'api.sock'}"

    @property
    def worker_endpoint(self) -> str:
        return f"ipc://{self.run_dir / 'workers.sock'}"


def console_paths(data_dir: Path, sim: bool = False) -> ConsolePaths:
    data_dir = data_dir.resolve()
    run_dir = data_dir / "run"
    if len(str(run_dir / "workers.sock")) > UNIX_PATH_LIMIT:
        digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
        run_dir = Path(tempfile.gettempdir()) / f"nhi-console-{os.getuid()}-{digest}"
    return ConsolePaths(data_dir=data_dir, run_dir=run_dir, sim=sim)


def prepare(paths: ConsolePaths) -> None:
    """Create the directories, private to this user: the sockets carry card commands."""
    paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(paths.run_dir, 0o700)
