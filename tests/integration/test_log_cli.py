"""`nhi-console log` against a running `--sim` console: replay, verify, export, stats, sealing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.console import RunningConsole, start_console, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

SCRIPT = Path(sys.executable).with_name("nhi-console")
BENCH = "/api/sim/v1/Readers"


def log(console: RunningConsole, *args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "log", *args[:1], "--sim", "--data-dir", str(data_dir or console.data_dir), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
    )


def scripted_session(console: RunningConsole) -> None:
    """Every card kind in and out, a new reader, the default changed, the record cleared."""
    reader0, reader1 = quote("NHI Sim Reader 0"), quote("NHI Sim Reader 1")
    for profile in ("hc-pin", "hc-veteran", "hc-basic"):
        assert console.request("PUT", f"{BENCH}/{reader0}/Card", {"profile": profile}).status == 200
    for profile in ("hpc-nurse", "hpc-blocked", "hpc-expired", "hpc-revoked", "hpc-untrusted", "hpc-doctor"):
        assert console.request("PUT", f"{BENCH}/{reader1}/Card", {"profile": profile}).status == 200
    assert console.request("POST", BENCH, {"name": "Desk 3"}).status == 200
    wait_for(lambda: "Desk 3" in console.attached_readers(), 5, "Desk 3's worker")
    assert console.request("PUT", f"{BENCH}/Desk%203/Card", {"profile": "hc-pin"}).status == 200
    console.request("POST", "/api/settings/v1/PcscReader/Default", {"readerName": "Desk 3"})
    console.request("GET", "/api/common/v1/Status")
    console.request("DELETE", "/api/common/v1/Record")
    assert console.request("DELETE", f"{BENCH}/{reader1}/Card").status == 200
    assert console.request("DELETE", f"{BENCH}/Desk%203").status == 200
    wait_for(lambda: "Desk 3" not in console.attached_readers(), 5, "Desk 3 detached")


def test_replay_equals_the_running_state_after_a_session_with_every_card_kind(console: RunningConsole) -> None:
    scripted_session(console)
    replay = log(console, "replay")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert replay.stdout.startswith("ok:")
    kinds = {
        json.loads(p)["kind"]
        for (p,) in console.database_rows("SELECT payload FROM events WHERE type = 'CardInserted'")
    }
    assert kinds == {"hc", "hpc"}


def test_verify_passes_on_the_live_log_and_names_the_row_of_a_tampered_copy(
    console: RunningConsole, tmp_path: Path
) -> None:
    scripted_session(console)
    ok = log(console, "verify")
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stdout + ok.stderr
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    with (
        sqlite3.connect(console.data_dir / "sim-console.db") as source,
        sqlite3.connect(copy_dir / "sim-console.db") as target,
    ):
        source.backup(target)
    with sqlite3.connect(copy_dir / "sim-console.db") as tampered:
        tampered.execute("UPDATE events SET payload = replace(payload, 'hc', 'hpc') WHERE seq = 5")
    bad = log(console, "verify", data_dir=copy_dir)
    assert bad.returncode == 1
    assert "events at seq 5" in bad.stdout


def test_export_stats_and_tail(console: RunningConsole, tmp_path: Path) -> None:
    scripted_session(console)
    out = tmp_path / "events.jsonl"
    exported = log(console, "export", "--format", "jsonl", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    only = log(console, "export", "--format", "csv", "--type", "SimCardPut")
    assert only.returncode == 0 and only.stdout.count("SimCardPut") == sum(r["type"] == "SimCardPut" for r in rows)
    stats = log(console, "stats")
    assert stats.returncode == 0 and f"events        {len(rows):,}" in stats.stdout
    tail = log(console, "tail", "-n", "3")
    assert [json.loads(line)["seq"] for line in tail.stdout.splitlines()] == [r["seq"] for r in rows[-3:]]


def test_the_running_console_seals_old_rows_and_verify_and_export_read_across(tmp_path: Path) -> None:
    console = start_console(tmp_path / "data", "--seal-max-rows", "20", "--seal-check-interval", "0.5")
    try:
        for _ in range(30):
            assert console.request("GET", "/api/common/v1/Status").status == 200
        wait_for(lambda: list((console.data_dir / "sim-archive").glob("segment-*.db")), 10, "a sealed segment")
        records = console.request("GET", "/api/common/v1/Record?take=1000").body
        assert len(records) <= 20  # the Record API shows the live part
        verified = log(console, "verify")
        assert verified.returncode == 0, verified.stdout
        exported = log(console, "export", "--calls")
        seqs = [json.loads(line)["seq"] for line in exported.stdout.splitlines()]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 31  # archive + live, nothing lost
        replay = log(console, "replay")
        assert replay.returncode == 0, replay.stdout
    finally:
        console.stop()
