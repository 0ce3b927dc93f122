"""Years unattended (issue 19), with real processes and real files: a console over a log of 1,000,000 events
starts from its snapshot and answers as a full replay does; a truncated, deleted or old-schema snapshot is
ignored (the start says why) and the log replayed; a moved archive never stops a start, and `log verify` names
it.

The million-event log is built once per module with the console's own writer and started once without a
snapshot (the full replay, which also writes the snapshot); each test then works on a copy of that data dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.core_client import CoreClient
from bench.realistic_log import make_realistic_log
from broker.domain.replay import replayed_snapshot
from broker.domain.snapshots import decode_snapshot
from broker.snapshot_files import snapshot_path
from deploy.paths import console_paths
from eventlog.sqlite_store import SqliteEventStore
from tests.integration.console import RunningConsole, descendants, start_console

pytestmark = [pytest.mark.integration]

SCRIPT = Path(sys.executable).with_name("nhi-console")
EVENTS = 1_000_000
STATUS = "/api/common/v1/Status"


@dataclass(frozen=True)
class Seen:
    """What a started console answered: its Status and its whole state (with the event it includes)."""

    status: Any
    state: Any
    through_seq: int


def start(data_dir: Path) -> RunningConsole:
    return start_console(data_dir, "--no-pcsc", sim=False, readers=set(), startup_timeout=90)


def seen(console: RunningConsole) -> Seen:
    answer = console.request("GET", STATUS)
    assert answer.status == 200
    state = CoreClient(console_paths(console.data_dir, sim=False).api_endpoint, timeout=5).call("GetStateSnapshot")
    return Seen(answer.body, state.body["state"], int(state.body["throughSeq"]))


def stop(console: RunningConsole) -> None:
    """Stop it (the broker finishes writing a snapshot it began) and leave no process of it behind."""
    started = descendants(console.process.pid)
    console.stop(timeout=60)
    for pid in started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Seen]]:
    """A data dir whose log holds 1,000,000 events and the snapshot its first (full-replay) start wrote."""
    data_dir = tmp_path_factory.mktemp("million") / "data"
    data_dir.mkdir()
    make_realistic_log(data_dir / "console.db", EVENTS)
    console = start(data_dir)
    try:
        full = seen(console)
    finally:
        stop(console)
    assert snapshot_path(data_dir / "console.db").exists()
    yield data_dir, full
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def copy(million: tuple[Path, Seen], tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    shutil.copytree(million[0], data_dir, ignore=shutil.ignore_patterns("*.sock"))
    yield data_dir
    for big in data_dir.glob("console.db*"):  # 200 MB a copy: gone before the next test makes its own
        big.unlink()


@pytest.mark.timeout(300)  # includes the module's log and its full-replay start (~50 s each on 2 busy cores)
def test_a_console_over_a_million_events_starts_from_its_snapshot_and_answers_as_a_full_replay(
    million: tuple[Path, Seen], copy: Path
) -> None:
    console = start(copy)
    try:
        from_snapshot = seen(console)
    finally:
        stop(console)
    assert "state loaded from the snapshot at event" in console.log_path.read_text(errors="replace")
    assert from_snapshot.through_seq >= EVENTS
    replayed = replayed_snapshot(copy / "console.db", from_snapshot.through_seq)  # the full replay, offline
    assert from_snapshot.state == replayed
    assert from_snapshot.status["status"] == replayed["status"]
    assert from_snapshot.status == million[1].status


@pytest.mark.timeout(120)  # a full replay of 1,000,000 events: 25 to 45 s, by the machine's load
@pytest.mark.parametrize(
    ("damage", "why"),
    [("truncated", "not JSON"), ("deleted", "no snapshot to start from"), ("old schema", "schema version 0")],
)
def test_a_damaged_snapshot_is_ignored_with_a_reason_and_the_log_replayed(
    million: tuple[Path, Seen], copy: Path, damage: str, why: str
) -> None:
    path = snapshot_path(copy / "console.db")
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 3])
    elif damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(_with_schema(raw, 0))
    console = start(copy)
    try:
        replayed = seen(console)
    finally:
        stop(console)
    text = console.log_path.read_text(errors="replace")
    assert why in text
    assert "state loaded from an empty state plus" in text
    assert replayed.status == million[1].status  # what the module's first, full-replay start answered
    assert replayed.through_seq >= EVENTS
    assert decode_snapshot(path.read_bytes()).seq >= EVENTS  # and a good one was written again


def _with_schema(raw: bytes, schema: int) -> bytes:
    """The snapshot as an older console would have written it: its own schema number, a valid checksum."""
    body = json.loads(raw)
    body.pop("checksum")
    body["schema"] = schema
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    body["checksum"] = hashlib.sha256(canonical).hexdigest()
    return json.dumps(body).encode()


def log_command(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "log", args[0], "--data-dir", str(data_dir), *args[1:]],
        capture_output=True,
        text=True,
        timeout=50,
    )


@pytest.mark.timeout(60)
def test_a_moved_archive_segment_neither_stops_the_console_nor_passes_verify(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / "console.db"
    make_realistic_log(database, 3_000)
    store = SqliteEventStore(database)
    try:
        assert store.seal(1_000, 0, data_dir / "archive") is not None
        assert store.seal(2_000, 0, data_dir / "archive") is not None
    finally:
        store.close()
    stop(start(data_dir))  # folds everything, archives included, and leaves its snapshot
    verify = log_command(data_dir, "verify")
    assert verify.returncode == 0, verify.stdout
    assert "snapshot: ok, the state at event" in verify.stdout

    archive = data_dir / "archive" / "segment-000002.db"
    archive.rename(tmp_path / "elsewhere.db")
    console = start(data_dir)  # from the snapshot: the archive is not needed
    try:
        assert console.request("GET", STATUS).body["statusCode"] == 0
    finally:
        stop(console)
    assert "state loaded from the snapshot at event" in console.log_path.read_text(errors="replace")

    verify = log_command(data_dir, "verify")
    assert verify.returncode == 1, verify.stdout
    assert f"segment 2: events 1001..2000, expected at {archive}" in verify.stdout
    stats = log_command(data_dir, "stats")
    assert stats.returncode == 0, stats.stderr
    assert f"expected at {archive}: MISSING" in stats.stdout
    assert f"expected at {data_dir / 'archive' / 'segment-000001.db'}: present" in stats.stdout
    assert "snapshot      events 1.." in stats.stdout

    snapshot_path(database).unlink()  # the hardest case: no snapshot covers the missing segment either
    console = start(data_dir)
    try:
        assert console.request("GET", STATUS).body["statusCode"] == 0
    finally:
        stop(console)
    text = console.log_path.read_text(errors="replace")
    assert "archive of segment 2 (events 1001..2000) is missing, expected at" in text
