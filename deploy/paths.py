"""Where the console keeps things: one data dir, with the IPC sockets under it.

Unix socket paths are limited to about 107 bytes; when the data dir is deep,
the sockets move to a short private directory in /tmp instead of failing. That directory is made as mkdtemp makes
one (a name no other user can guess, 0700, ours) and the data dir remembers it (`run-dir`); a remembered one is used
again only while it is still a directory of ours that no one else may enter. A name derived from the data dir alone
could be made first by another local user, who would then own the sockets that carry card commands.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from contract.agent_link import CONSOLE_KEY_NAME
from contract.settings import SETTINGS_FILE_NAME
from eventlog.durable_files import write_atomically

UNIX_PATH_LIMIT = 100
RUN_DIR_POINTER = "run-dir"
"""In the data dir: the path of the private directory in /tmp that holds the sockets of a deep data dir."""


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
    def checkpoint_key(self) -> Path:
        """The Ed25519 key that signs checkpoints (eventlog/checkpoint_key.py): one per installation, like the
        pseudonym key; a checkpoint of the bench's log never verifies against a clinic's log (other hashes)."""
        return self.data_dir / "secrets" / "checkpoint.key"

    @property
    def agent_link_key(self) -> Path:
        """The console's Curve key pair for reader agents (contract/agent_link.py), made by the first
        `serve --agents` or `agents console-key`; its public half is what an agent is told to trust."""
        return self.data_dir / "secrets" / f"{CONSOLE_KEY_NAME}.key_secret"

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


def _run_dir_fits(data_dir: Path) -> bool:
    return len(str(data_dir / "run" / "workers.sock")) <= UNIX_PATH_LIMIT


def console_paths(data_dir: Path, sim: bool = False) -> ConsolePaths:
    """Where a console on `data_dir` keeps things. For a deep data dir, the run dir is the one `prepare` made and
    remembered; before there is one (nothing has served from it), `data_dir/run`, where nothing will be found."""
    data_dir = data_dir.resolve()
    run_dir = data_dir / "run"
    if not _run_dir_fits(data_dir):
        run_dir = remembered_run_dir(data_dir) or run_dir
    return ConsolePaths(data_dir=data_dir, run_dir=run_dir, sim=sim)


def is_private_dir(path: Path, uid: int | None = None) -> bool:
    """A directory itself (not a link to one), owned by `uid` (this process's), that no one else may enter."""
    try:
        status = os.lstat(path)
    except OSError:
        return False
    owner = os.geteuid() if uid is None else uid
    return stat.S_ISDIR(status.st_mode) and status.st_uid == owner and status.st_mode & 0o077 == 0


def remembered_run_dir(data_dir: Path) -> Path | None:
    """The run dir the data dir remembers, if it still is a private directory of ours."""
    try:
        remembered = Path((data_dir / RUN_DIR_POINTER).read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return None
    if not remembered.is_absolute() or not is_private_dir(remembered):
        return None
    return remembered


def prepare(paths: ConsolePaths) -> ConsolePaths:
    """Create the directories, private to this user: the sockets carry card commands. Returns the paths to use:
    for a deep data dir, with the run dir made (or found) in /tmp."""
    paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _run_dir_fits(paths.data_dir):
        paths.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(paths.run_dir, 0o700)
        return paths
    run_dir = remembered_run_dir(paths.data_dir)
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix=f"nhi-console-{os.geteuid()}-"))
        write_atomically(paths.data_dir / RUN_DIR_POINTER, str(run_dir).encode("utf-8"))
    return replace(paths, run_dir=run_dir)
