"""An auditor's questions after a scripted day on the bench (issue 22), answered by the real CLI on the real log.

The script counts what it does (card insertions, data reads, PINs right and wrong, refusals by origin, a DC
fault, settings changed); the audit views, `log card` and `log report` must give the same numbers, read while
the console runs. Every view is read before the day and after, so what the bench did at start-up counts once.
Nothing printed, and no view, may hold the card number, a PIN or a name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from broker.domain.pseudonyms import Pseudonyms
from deploy.paths import console_paths
from eventlog.audit_views import DC_ERRORS, VIEWS
from tests.integration.console import RunningConsole
from tests.typed_secrets import PROFILE_PIN, WRONG_PIN
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

HC_READER = "NHI Sim Reader 0"
HPC_READER = "NHI Sim Reader 1"
HC_CARD = "900000000711"
HC_PERSONAL = ("R88855084A", "測試資料")
HPC_CARD = "100000291508"
OTHER_PROFILE = "hc-veteran"
PAGE = "https://his.example"
EVIL = "https://evil.example"


def cli(console: RunningConsole, *argv: str, stdin: str | None = None) -> str:
    """`nhi-console log ...` as a separate process over the bench's log; its standard output."""
    script = Path(sys.executable).with_name("nhi-console")
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "deploy.cli"]
    done = subprocess.run(
        [*entry, "log", *argv, "--sim", "--data-dir", str(console.data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def query(console: RunningConsole, sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(cli(console, "query", sql, "--json"))
    return rows


def send(console: RunningConsole, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, str, Any]:
    """One call with the headers given (Origin, Host, Content-Type); (HTTP status, X-Request-Id, JSON answer)."""
    payload = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    if payload is not None:
        headers.setdefault("Content-Type", "application/json")
    status, answer_headers, raw = console.send(method, path, payload, headers)
    is_json = answer_headers.get("content-type", "").startswith("application/json")
    return status, answer_headers.get("x-request-id", ""), json.loads(raw) if raw and is_json else None


def code(console: RunningConsole, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, str]:
    """A call the console runs: its statusCode and its uuid."""
    status, uuid, answer = send(console, method, path, body, **headers)
    assert status == 200 and uuid, (method, path, status)
    return int(answer["statusCode"]), uuid


def counts(console: RunningConsole) -> dict[str, int]:
    return {name: query(console, f"SELECT count(*) AS n FROM {name}")[0]["n"] for name in (*VIEWS, "calls")}


def swap_card(console: RunningConsole, reader: str, profile: str | None) -> None:
    """Take the reader's card out (and put `profile` in), waiting until the console's log says so."""
    before = console.database_rows("SELECT count(*) FROM events WHERE type IN ('CardRemoved', 'CardInserted')")[0][0]
    path = f"/api/sim/v1/Readers/{quote(reader)}/Card"
    assert console.request("DELETE", path).status == 200
    expected = before + 1
    if profile is not None:
        assert console.request("PUT", path, {"profile": profile}).status == 200
        expected += 1
    wait_for(
        lambda: (
            console.database_rows("SELECT count(*) FROM events WHERE type IN ('CardRemoved', 'CardInserted')")[0][0]
            >= expected
        ),
        20,
        "the card's removal and insertion in the log",
    )


def test_the_views_report_and_card_lookup_equal_a_scripted_day(console: RunningConsole) -> None:
    pseudonyms = Pseudonyms(console_paths(console.data_dir, sim=True).pseudonym_key.read_bytes())
    before = counts(console)
    hc_sessions_before = query(console, "SELECT count(*) AS n FROM card_sessions WHERE kind = 'hc'")[0]["n"]

    # -- the day --------------------------------------------------------------------------------------------
    assert code(console, "POST", "/api/settings/v1/Cors", {"allowHost": "his.example"})[0] == 0
    initial = code(console, "POST", "/api/common/v1/Initial")
    assert initial[0] == 0
    assert code(console, "POST", "/api/sam/v1/Verification")[0] == 0
    reads = [code(console, "GET", "/api/hc/v1/Basic", Origin=PAGE) for _ in range(2)]
    swap_card(console, HC_READER, OTHER_PROFILE)  # another patient: not this card's history
    other_read = code(console, "GET", "/api/hc/v1/Basic")
    swap_card(console, HC_READER, "hc-basic")  # the first patient again: a second session of that card
    reads.append(code(console, "GET", "/api/hc/v1/Basic"))
    assert all(answer == 0 for answer, _ in [*reads, other_read])
    wrong = code(console, "POST", "/api/hpc/v1/Verification/Hpc", {"pin": WRONG_PIN})
    right = code(console, "POST", "/api/hpc/v1/Verification/Hpc", {"pin": PROFILE_PIN})
    assert wrong[0] != 0 and right[0] == 0
    refused = [
        send(console, "GET", "/api/hc/v1/Basic", Origin=EVIL)[0],
        send(console, "GET", "/api/hc/v1/Basic", Host="evil.example")[0],
        send(console, "POST", "/api/common/v1/Finalize", "{}", **{"Content-Type": "text/plain"})[0],
    ]
    assert refused == [403, 421, 415]
    assert console.request("POST", "/api/sim/v1/Dc/Faults", {"statusCode": 1702, "count": 2}).status == 200
    dc_failed = code(console, "POST", "/api/sam/v1/Verification")
    assert dc_failed[0] == 1702
    assert code(console, "POST", "/api/settings/v1/PcscReader/Default", {"readerName": HPC_READER})[0] == 0
    assert code(console, "DELETE", "/api/settings/v1/Cors/his.example")[0] == 0

    # -- each view, counted against the script ----------------------------------------------------------------
    after = counts(console)
    grown = {name: after[name] - before[name] for name in after}
    assert grown["card_sessions"] == 2  # the other patient's card, then this card again
    assert grown["pin_attempts"] == 2
    assert grown["refusals"] == 3
    assert grown["settings_changes"] == 3  # CORS added, the default reader set, CORS removed
    assert grown["sam_sessions"] == 1
    assert grown["faults"] == 2  # the DC error's call, and the SAM verification it failed
    calls_made = 1 + 1 + 1 + 3 + 1 + 2 + 1 + 1 + 1  # CORS, Initial, SAM, 3 reads + 1, 2 PINs, DC, default, CORS
    assert grown["calls"] == calls_made
    pins = query(console, "SELECT outcome, card, tries_left, caused_by, caller FROM pin_attempts ORDER BY seq")[-2:]
    assert [(p["outcome"], p["card"], p["caused_by"], p["caller"]) for p in pins] == [
        ("rejected", "hpc", wrong[1], "native"),
        ("verified", "hpc", right[1], "native"),
    ]
    refusals = query(console, "SELECT status, caller, url FROM refusals ORDER BY seq")[-3:]
    assert [(r["status"], r["caller"]) for r in refusals] == [(403, EVIL), (421, "native"), (415, "native")]
    dc_errors = query(console, "SELECT code, caused_by FROM faults WHERE kind = 'dc_error'")
    assert [(row["code"], row["caused_by"]) for row in dc_errors] == [(1702, dc_failed[1])]
    sessions = query(console, "SELECT kind, level_reached, reads FROM card_sessions WHERE kind = 'hc' ORDER BY 1")
    assert len(sessions) == hc_sessions_before + 2

    # -- one card's history -----------------------------------------------------------------------------------
    history = json.loads(cli(console, "card", HC_CARD, "--json"))
    assert json.loads(cli(console, "card", "-", "--json", stdin=HC_CARD + "\n")) == history
    assert [session["reads"] for session in history["sessions"]] == [2, 1]
    assert [session["removal_reason"] is not None for session in history["sessions"]] == [True, False]
    touched = [(call["uuid"], call["url"]) for call in history["calls"]]
    expected = [initial[1], *(uuid for _, uuid in reads)]
    assert [uuid for uuid, _ in touched] == expected
    assert [call["caller"] for call in history["calls"]] == ["native", PAGE, PAGE, "native"]
    assert other_read[1] not in {uuid for uuid, _ in touched}
    assert history["cardRef"] == pseudonyms.card(HC_CARD)
    staff = json.loads(cli(console, "card", HPC_CARD, "--json"))
    assert [(p["outcome"], p["caused_by"]) for p in staff["pinAttempts"]] == [
        ("rejected", wrong[1]),
        ("verified", right[1]),
    ]

    # -- the report equals the raw rows ---------------------------------------------------------------------------
    today = date.fromisoformat(console.database_rows("SELECT substr(max(timestamp), 1, 10) FROM calls")[0][0])
    report = json.loads(cli(console, "report", "--from", today.isoformat(), "--to", today.isoformat(), "--json"))
    (day,) = report["days"]

    def total(section: str) -> int:
        return sum(row["count"] for row in day[section])

    raw = console.database_rows
    assert total("calls") == raw("SELECT count(*) FROM calls")[0][0]
    by_endpoint = Counter({(row["url"], row["status_code"]): row["count"] for row in day["calls"]})
    assert by_endpoint == Counter(raw("SELECT url, status_code FROM calls"))
    assert total("refusals") == raw("SELECT count(*) FROM events WHERE type = 'CallRefused'")[0][0]
    assert total("card_sessions") == raw("SELECT count(*) FROM events WHERE type = 'CardInserted'")[0][0]
    pin_rejections = "'HpcPinRejected', 'HpcPukRejected', 'HcPinRejected'"
    assert total("pin_failures") == raw(f"SELECT count(*) FROM events WHERE type IN ({pin_rejections})")[0][0]
    dc_codes = ", ".join(str(int(c)) for c in DC_ERRORS)
    assert total("dc_errors") == raw(f"SELECT count(*) FROM calls WHERE status_code IN ({dc_codes})")[0][0]
    assert total("worker_losses") == raw("SELECT count(*) FROM events WHERE type = 'WorkerLost'")[0][0]
    table = cli(console, "report", "--from", today.isoformat(), "--to", today.isoformat())

    # -- the checkpoints the broker wrote, and secrecy everywhere -------------------------------------------------
    statement = cli(console, "checkpoint")
    everything = [
        json.dumps(history, ensure_ascii=False),
        json.dumps(report, ensure_ascii=False),
        table,
        statement,
        console.log_path.read_text(errors="replace"),
        *(json.dumps(query(console, f"SELECT * FROM {name}"), ensure_ascii=False) for name in VIEWS),
    ]
    for text in everything:
        for secret in (HC_CARD, HPC_CARD, WRONG_PIN, *HC_PERSONAL):
            assert secret not in text
    # PROFILE_PIN is 000000, in every hash and signature as text: the session's scan (tests/integration/conftest.py)
    # looks for it, and every PIN and token, in their contexts, in the console's data dir, where these go.
    (console.data_dir / "audit-outputs.txt").write_text("\n".join(everything[:4]), encoding="utf-8")
    assert "nhi-console-checkpoint/" in console.log_path.read_text(errors="replace")
    verified = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "log", "verify", "--sim", "--data-dir", str(console.data_dir)]
        + ["--since", str(console.log_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
