"""`nhi-console log query|card|report|copy` over a log written through the real store (deploy/audit_cli.py).

The scripted-day test on a running console (tests/integration/test_audit_day.py) checks the same commands
against what a bench day did; here each command's shape, its refusals and its secrecy are checked quickly.
"""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from broker.domain import events as ev
from broker.domain.pseudonyms import Pseudonyms, load_or_create_key
from deploy.cli import main
from deploy.paths import console_paths
from eventlog.audit_reports import section_total
from eventlog.audit_views import VIEWS
from eventlog.sqlite_store import SqliteEventStore
from tests.audit_log import Day, fingerprint, write_day

CARD_NUMBER = "900000000711"
OTHER_NUMBER = "900000000712"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    paths = console_paths(tmp_path, sim=False)
    pseudonyms = Pseudonyms(load_or_create_key(paths.pseudonym_key))
    store = SqliteEventStore(paths.database)
    write_day(store)  # cards "ref-a" and "ref-b"
    day = Day(store)
    for session, number in ((10, CARD_NUMBER), (11, OTHER_NUMBER), (12, CARD_NUMBER)):
        day.event(ev.CardInserted(reader="R2", atr="3B", kind="hc", session=session, card_ref=pseudonyms.card(number)))
        day.event(ev.CardDataRead(kind="hc", reader="R2", session=session), caused_by=f"u-read-{session}")
        day.call("/api/hc/v1/Basic", f"u-read-{session}", 0, "https://his.example")
        day.event(ev.CardRemoved(reader="R2", session=session, reason="removed"))
    store.commit()
    store.close()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_card_lists_that_card_only_and_never_its_number(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, "log", "card", CARD_NUMBER, "--json", "--data-dir", str(data_dir))
    assert code == 0
    history = json.loads(out)
    assert [row["session"] for row in history["sessions"]] == [10, 12]
    assert [row["uuid"] for row in history["calls"]] == ["u-read-10", "u-read-12"]
    assert {row["caller"] for row in history["calls"]} == {"https://his.example"}
    assert CARD_NUMBER not in out + err
    monkeypatch.setattr(sys, "stdin", io.StringIO(CARD_NUMBER + "\n"))
    code, table, err = run(capsys, "log", "card", "-", "--data-dir", str(data_dir))
    assert code == 0
    assert history["cardRef"] in table and CARD_NUMBER not in table + err
    assert "2 sessions, 2 calls" in table


def test_card_refuses_what_is_not_a_card_number_without_quoting_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["log", "card", "9000 0000'; DROP", "--data-dir", str(data_dir)])
    assert "DROP" not in str(exit_info.value)


def test_query_renders_and_refuses(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = console_paths(data_dir, sim=False).database
    before = fingerprint(database)
    base = ("log", "query", "--data-dir", str(data_dir))
    code, out, _ = run(capsys, *base, "SELECT status, caller FROM refusals ORDER BY seq", "--json")
    assert code == 0 and json.loads(out) == [
        {"status": 403, "caller": "https://evil.example"},
        {"status": 421, "caller": "native"},
    ]
    code, out, _ = run(
        capsys, *base, "SELECT count(*) AS n FROM card_sessions WHERE kind = ?", "--param", "hc", "--csv"
    )
    assert (code, out.splitlines()) == (0, ["n", "4"])
    code, out, _ = run(capsys, *base, "SELECT seq, hash FROM events ORDER BY seq LIMIT 1")
    assert code == 0 and "seq" in out
    for statement in ("DELETE FROM live.events", "PRAGMA writable_schema=1", "ATTACH ':memory:' AS x"):
        code, out, err = run(capsys, *base, statement)
        assert code == 2 and "refused" in err, err
    assert fingerprint(database) == before


def test_report_counts_equal_the_raw_rows(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "log", "report", "--from", "2026-12-01", "--to", "2026-12-01", "--json", "--data-dir", str(data_dir)
    )
    assert code == 0
    report = json.loads(out)
    assert [day["day"] for day in report["days"]] == ["2026-12-01"]
    database = console_paths(data_dir, sim=False).database
    conn = sqlite3.connect(database)
    try:
        (calls,) = conn.execute("SELECT count(*) FROM calls").fetchone()
        (refusals,) = conn.execute("SELECT count(*) FROM events WHERE type = 'CallRefused'").fetchone()
        (inserted,) = conn.execute("SELECT count(*) FROM events WHERE type = 'CardInserted'").fetchone()
        (lost,) = conn.execute("SELECT count(*) FROM events WHERE type = 'WorkerLost'").fetchone()
        (pins,) = conn.execute("SELECT count(*) FROM events WHERE type LIKE '%PinRejected'").fetchone()
        (dc,) = conn.execute("SELECT count(*) FROM calls WHERE status_code BETWEEN 1700 AND 1799").fetchone()
    finally:
        conn.close()
    assert section_total(report, "calls") == calls
    assert section_total(report, "refusals") == refusals
    assert section_total(report, "card_sessions") == inserted
    assert section_total(report, "worker_losses") == lost
    assert section_total(report, "pin_failures") == pins
    assert section_total(report, "dc_errors") == dc
    code, out, _ = run(
        capsys, "log", "report", "--from", "2026-12-02", "--to", "2026-12-03", "--data-dir", str(data_dir)
    )
    assert code == 0 and "0 days with activity" in out
    with pytest.raises(SystemExit):
        main(["log", "report", "--from", "2026-12-03", "--to", "2026-12-02", "--data-dir", str(data_dir)])


def test_copy_is_whole_self_contained_and_never_overwrites(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "copy" / "audit.db"
    target.parent.mkdir()
    code, _, _ = run(capsys, "log", "copy", str(target), "--data-dir", str(data_dir))
    assert code == 0 and target.is_file()
    assert sorted(item.name for item in target.parent.iterdir()) == ["audit.db", "audit.metadata.json"]
    metadata = json.loads((target.parent / "audit.metadata.json").read_text())
    assert set(VIEWS) <= set(metadata["databases"]["audit"]["tables"])
    live = sqlite3.connect(console_paths(data_dir, sim=False).database)
    copy = sqlite3.connect(target)
    try:
        for table in ("events", "calls"):
            assert (
                copy.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall()
                == live.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall()
            )
        for view in VIEWS:
            assert copy.execute(f"SELECT * FROM {view}").fetchall() == live.execute(f"SELECT * FROM {view}").fetchall()
    finally:
        copy.close()
        live.close()
    with pytest.raises(SystemExit, match="exists"):
        main(["log", "copy", str(target), "--data-dir", str(data_dir)])
