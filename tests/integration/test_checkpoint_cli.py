"""`nhi-console log checkpoint` and `log verify --since`, run as an auditor runs them, on logs written by the real
store (and, last, by a running console that seals): the log extended after checkpoints verifies, archives
included; a copy with one old row altered, one row removed, or its tail truncated and rebuilt with a consistent
chain fails, naming the first diverging seq as exactly as the chain and the checkpoints allow."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from eventlog import checkpoints
from eventlog.sqlite_store import SqliteEventStore
from tests.integration.console import start_console, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SCRIPT = Path(sys.executable).with_name("nhi-console")
TS = "2024-05-23T15:38:00.2514272+08:00"


def log(data_dir: Path, command: str, *args: str, sim: bool = False) -> subprocess.CompletedProcess[str]:
    entry = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "deploy.cli"]
    simulated = ["--sim"] if sim else []
    return subprocess.run(
        [*entry, "log", command, *simulated, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


class Log:
    """A console's log written by the real store in a data dir of its own, appended to between checkpoints."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.database = data_dir / "console.db"
        self.events = self.calls = 0

    def append(self, events: int, calls: int = 0, tag: str = "original") -> None:
        store = SqliteEventStore(self.database, durability="normal")
        try:
            for _ in range(events):
                self.events += 1
                payload = json.dumps({"n": self.events, "tag": tag}).encode()
                store.append_event("t", 1, payload, TS)
            for _ in range(calls):
                self.calls += 1
                store.append_call(f"/api/x/{self.calls}", f"uuid-{self.calls}-{tag}", TS, 200)
            store.commit()
        finally:
            store.close()

    def checkpoint(self, file: Path) -> str:
        made = log(self.data_dir, "checkpoint", "--append", str(file))
        assert made.returncode == 0, made.stdout + made.stderr
        return made.stdout.strip()

    def seal(self, events: int, calls: int) -> None:
        store = SqliteEventStore(self.database, durability="normal")
        try:
            assert store.seal(events, calls, self.data_dir / "archive") is not None
        finally:
            store.close()

    def copy(self, target: Path) -> Path:
        """The data dir as an attacker would take it (the database by SQLite's backup, the archives as files)."""
        target.mkdir(parents=True)
        with sqlite3.connect(self.database) as source, sqlite3.connect(target / "console.db") as copy:
            source.backup(copy)
        if (self.data_dir / "archive").exists():
            shutil.copytree(self.data_dir / "archive", target / "archive")
        return target


@pytest.fixture
def kept(tmp_path: Path) -> tuple[Log, Path, Path]:
    """A log with checkpoints at events 10, 20 and 30 (calls 5, 10, 15) kept in a file, the public key beside it,
    and more appended since."""
    written = Log(tmp_path / "data")
    file = tmp_path / "auditor" / "checkpoints.txt"
    file.parent.mkdir()
    for _ in range(3):
        written.append(10, 5)
        written.checkpoint(file)
    written.append(7, 4)
    public = log(written.data_dir, "checkpoint", "--public-key")
    assert public.returncode == 0 and "BEGIN PUBLIC KEY" in public.stdout
    (tmp_path / "auditor" / "checkpoint.pub").write_text(public.stdout)
    return written, file, tmp_path / "auditor" / "checkpoint.pub"


def verify_since(data_dir: Path, since: str | Path, public: Path | None) -> subprocess.CompletedProcess[str]:
    key = ["--public-key", str(public)] if public is not None else []
    return log(data_dir, "verify", "--since", str(since), *key)


def test_checkpoint_prints_one_signed_line_and_appends_it(kept: tuple[Log, Path, Path]) -> None:
    written, file, public = kept
    lines = file.read_text().splitlines()
    assert len(lines) == 3
    parsed = [checkpoints.parse(text) for text in lines]
    key = checkpoints.load_public_key(public.read_text())
    for signed in parsed:
        checkpoints.verify_signature(signed, key)
    assert [(s.statement.events.seq, s.statement.calls.seq) for s in parsed] == [(10, 5), (20, 10), (30, 15)]
    key_file = written.data_dir / "secrets" / "checkpoint.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert checkpoints.key_id(key) in public.read_text()


def test_verify_passes_on_the_log_extended_after_the_checkpoints_archives_included(
    kept: tuple[Log, Path, Path],
) -> None:
    written, file, public = kept
    written.seal(25, 12)  # checkpoints 10 and 20 (events) now point into an archive
    written.append(5, 5)
    with sqlite3.connect(written.database) as conn:
        (live_from,) = conn.execute("SELECT min(seq) FROM events").fetchone()
    assert live_from == 26
    passed = verify_since(written.data_dir, file, public)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "ok: 42 events and 24 calls, hash chains intact" in passed.stdout
    assert "ok: the log extends all 3 checkpoint(s)" in passed.stdout
    assert "events through seq 30, calls through seq 15" in passed.stdout
    one = verify_since(written.data_dir, file.read_text().splitlines()[0], public)  # the line itself
    assert one.returncode == 0, one.stdout
    own = verify_since(written.data_dir, file, None)  # the installation's own key, said to be weaker
    assert own.returncode == 0 and "this installation's own key" in own.stdout


def test_without_since_verify_is_unchanged(kept: tuple[Log, Path, Path]) -> None:
    written, _, _ = kept
    plain = log(written.data_dir, "verify")
    assert plain.returncode == 0 and plain.stdout.startswith("ok: 37 events and 19 calls"), plain.stdout
    assert "checkpoint" not in plain.stdout


def test_one_old_row_altered_is_named_by_the_walk(kept: tuple[Log, Path, Path], tmp_path: Path) -> None:
    written, file, public = kept
    copy = written.copy(tmp_path / "altered")
    with sqlite3.connect(copy / "console.db") as conn:
        conn.execute("UPDATE events SET payload = CAST(replace(payload, 'original', 'forged') AS BLOB) WHERE seq = 5")
    failed = verify_since(copy, file, public)
    assert failed.returncode == 1, failed.stdout
    assert "TAMPERED: first problem in events at seq 5: row edited" in failed.stdout
    assert "the log is not the one checkpointed" in failed.stdout


def test_one_row_removed_is_named_by_the_walk(kept: tuple[Log, Path, Path], tmp_path: Path) -> None:
    written, file, public = kept
    copy = written.copy(tmp_path / "removed")
    with sqlite3.connect(copy / "console.db") as conn:
        conn.execute("DELETE FROM calls WHERE seq = 7")
    failed = verify_since(copy, file, public)
    assert failed.returncode == 1, failed.stdout
    assert "TAMPERED: first problem in calls at seq 7: row missing" in failed.stdout


def _truncate(database: Path, chain: str, after: int) -> None:
    """What an attacker with the file does to leave a consistent chain: drop the rows and move the head back."""
    with sqlite3.connect(database) as conn:
        conn.execute(f"DELETE FROM {chain} WHERE seq > ?", (after,))
        conn.execute(
            f"UPDATE chain_heads SET seq = ?, hash = (SELECT hash FROM {chain} WHERE seq = ?) WHERE name = ?",
            (after, after, chain),
        )


def test_a_tail_truncated_and_rebuilt_is_bounded_by_the_checkpoints(
    kept: tuple[Log, Path, Path], tmp_path: Path
) -> None:
    written, file, public = kept
    copy = Log(written.copy(tmp_path / "rebuilt"))
    copy.events, copy.calls = 25, written.calls
    _truncate(copy.database, "events", 25)
    copy.append(20, tag="rewritten")  # the store chains them on: a consistent chain, through seq 45
    plain = log(copy.data_dir, "verify")
    assert plain.returncode == 0, plain.stdout  # the chain alone cannot tell
    failed = verify_since(copy.data_dir, file, public)
    assert failed.returncode == 1, failed.stdout
    assert "DIVERGED from the checkpoints" in failed.stdout
    assert (
        "events: the first diverging seq is at or before 30 (the first checkpoint that fails),"
        " after seq 20 (the last one that holds)"
    ) in failed.stdout
    assert "calls: the log extends every checkpoint (through seq 15)" in failed.stdout


def test_a_tail_truncated_names_the_first_missing_seq(kept: tuple[Log, Path, Path], tmp_path: Path) -> None:
    written, file, public = kept
    copy = written.copy(tmp_path / "short")
    _truncate(copy / "console.db", "calls", 12)
    failed = verify_since(copy, file, public)
    assert failed.returncode == 1, failed.stdout
    assert "calls: the log ends at seq 12, before the checkpoint's seq 15: seq 13 is the first missing" in failed.stdout


def test_a_checkpoint_that_cannot_be_trusted_is_exit_2(kept: tuple[Log, Path, Path], tmp_path: Path) -> None:
    written, file, public = kept
    good = file.read_text().splitlines()[1]
    altered = good.replace("events=20:", "events=21:")
    refused = verify_since(written.data_dir, altered, public)
    assert refused.returncode == 2 and "CANNOT VERIFY" in refused.stdout and "signature" in refused.stdout
    unknown = verify_since(written.data_dir, good.replace("checkpoint/1 ", "checkpoint/2 "), public)
    assert unknown.returncode == 2 and "version 2" in unknown.stdout
    other_key = tmp_path / "other"
    Log(other_key).append(1)
    stranger = log(other_key, "checkpoint", "--public-key")
    (tmp_path / "other.pub").write_text(stranger.stdout)
    wrong = verify_since(written.data_dir, file, tmp_path / "other.pub")
    assert wrong.returncode == 2 and "signed by key" in wrong.stdout
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(f"# kept by the auditor\n{good}\n{altered}\n")
    partly = verify_since(written.data_dir, mixed, public)
    assert partly.returncode == 2, partly.stdout  # nothing diverged, but one could not be checked
    assert f"{mixed} line 3" in partly.stdout and "ok: the log extends all 1 checkpoint(s)" in partly.stdout
    missing = verify_since(written.data_dir, tmp_path / "no-such-file", public)
    assert missing.returncode == 2


def test_a_running_console_logs_a_checkpoint_at_a_seal_and_its_log_verifies(tmp_path: Path) -> None:
    console = start_console(tmp_path / "data", "--seal-max-rows", "20", "--seal-check-interval", "0.5")
    try:
        for _ in range(30):
            assert console.request("GET", "/api/common/v1/Status").status == 200

        def lines() -> list[str]:
            return [line for line in console.log_path.read_text().splitlines() if "nhi_console.checkpoint" in line]

        wait_for(lambda: list((console.data_dir / "sim-archive").glob("segment-*.db")), 10, "a sealed segment")
        wait_for(lambda: len(lines()) >= 2, 10, "the start's checkpoint and the seal's")
        sealed = console.database_rows("SELECT max(last_call_seq) FROM segments")[0][0]
        statements = [checkpoints.find_statement(line) for line in lines()]
        assert all(statement is not None for statement in statements)
        after_seal = checkpoints.parse(str(statements[1])).statement
        assert after_seal.calls.seq >= sealed
        public = log(console.data_dir, "checkpoint", "--public-key", sim=True)
        (tmp_path / "checkpoint.pub").write_text(public.stdout)
        key = [str(tmp_path / "checkpoint.pub")]
        verified = log(console.data_dir, "verify", "--since", str(console.log_path), "--public-key", *key, sim=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "ok: the log extends all" in verified.stdout
    finally:
        console.stop()
    stopped = [line for line in console.log_path.read_text().splitlines() if "nhi_console.checkpoint" in line]
    assert len(stopped) >= 3  # and one more at the stop
