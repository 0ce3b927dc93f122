"""The reader settings and the bench's reader controls, through the running console in `--sim` mode."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from urllib.parse import quote

import pytest

from api.core_client import CoreClient
from deploy.paths import console_paths
from tests.integration.console import RunningConsole, alive, start_console, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

READERS = "/api/settings/v1/PcscReader/Readers"
DEFAULT = "/api/settings/v1/PcscReader/Default"
AUTO = "/api/settings/v1/PcscReader/AutoDetected"
BENCH = "/api/sim/v1/Readers"
READER_0, READER_1 = "NHI Sim Reader 0", "NHI Sim Reader 1"

HC_BASIC = {
    "cardId": "900000000711",
    "name": "測試資料",
    "idNo": "R88855084A",
    "birthday": "0741201",
    "sex": "F",
    "dateIssue": "1070101",
}


def test_the_bench_starts_as_sim_control_says(console: RunningConsole) -> None:
    assert console.request("GET", READERS).body == {"statusCode": 0, "readers": [READER_0, READER_1]}
    assert console.request("GET", DEFAULT).body == {"statusCode": 0, "readerName": READER_0}
    bench = console.request("GET", BENCH).body
    assert all(isinstance(reader.pop("cardCommands"), int) for reader in bench["readers"]), "our addition"
    assert bench == {
        "readers": [
            {"name": READER_0, "card": {"profile": "hc-basic"}},
            {"name": READER_1, "card": {"profile": "hpc-doctor"}},
        ]
    }
    # The workers identified the cards by SELECTing their applications.
    wait_for(lambda: console.card_kinds() == {READER_0: "hc", READER_1: "hpc"}, 5, "both cards identified")
    status = console.request("GET", "/api/common/v1/Status").body
    assert status["status"]["initialized"] is False


def test_default_reader_endpoints_and_their_codes(console: RunningConsole) -> None:
    assert console.request("POST", DEFAULT, {"readerName": "No Such Reader"}).body["statusCode"] == 1600
    assert console.request("GET", DEFAULT).body["readerName"] == READER_0  # unchanged by the refusal
    assert console.request("POST", DEFAULT, {"readerName": READER_1}).body == {"statusCode": 0}
    assert console.request("GET", DEFAULT).body == {"statusCode": 0, "readerName": READER_1}
    assert console.request("DELETE", DEFAULT).body == {"statusCode": 0}
    assert console.request("GET", DEFAULT).body["statusCode"] == 1100
    bad = console.request("POST", DEFAULT, {"readerName": 7})
    assert bad.status == 400 and bad.body["statusCode"] == 1704


def test_auto_detected_picks_the_reader_with_a_card_or_answers_1601(console: RunningConsole) -> None:
    wait_for(lambda: console.card_kinds() == {READER_0: "hc", READER_1: "hpc"}, 5, "both cards identified")
    console.request("DELETE", DEFAULT)
    assert console.request("POST", AUTO).body == {"statusCode": 0, "readerName": READER_0}
    assert console.request("GET", DEFAULT).body["readerName"] == READER_0
    assert console.request("DELETE", f"{BENCH}/{quote(READER_0)}/Card").status == 200
    assert console.request("POST", AUTO).body == {"statusCode": 0, "readerName": READER_1}  # the staff card's
    assert console.request("DELETE", f"{BENCH}/{quote(READER_1)}/Card").status == 200
    assert console.request("POST", AUTO).body["statusCode"] == 1601


def test_the_default_reader_persists_across_restarts(tmp_path: Path) -> None:
    console = start_console(tmp_path / "data")
    try:
        assert console.request("POST", DEFAULT, {"readerName": READER_1}).body == {"statusCode": 0}
        [broker] = console.processes()["broker"]
        os.kill(broker, signal.SIGKILL)
        wait_for(lambda: not alive(broker), 5, "the broker to die")
        wait_for(console.status_ok, 10, "the console back")
        assert console.request("GET", DEFAULT).body["readerName"] == READER_1
    finally:
        console.stop()
    console = start_console(tmp_path / "data")
    try:
        assert console.request("GET", DEFAULT).body["readerName"] == READER_1
    finally:
        console.stop()


def test_bench_plug_insert_remove_unplug(console: RunningConsole) -> None:
    profiles = console.request("GET", "/api/sim/v1/Profiles").body["profiles"]
    names = {p["name"]: p["kind"] for p in profiles}
    assert {
        "hc-basic": "hc",
        "hc-pin": "hc",
        "hc-veteran": "hc",
        "hpc-doctor": "hpc",
        "hpc-nurse": "hpc",
        "hpc-blocked": "hpc",
        "hpc-expired": "hpc",
        "hpc-revoked": "hpc",
        "hpc-untrusted": "hpc",
    }.items() <= names.items()
    assert console.request("POST", BENCH, {"name": "Bench 2"}).status == 200
    wait_for(lambda: "Bench 2" in console.request("GET", READERS).body["readers"], 2, "a worker for the new reader")
    assert console.request("POST", BENCH, {"name": "Bench 2"}).status == 400
    assert console.request("PUT", f"{BENCH}/Bench%202/Card", {"profile": "hc-pin"}).status == 200
    assert console.card_kinds()["Bench 2"] == "hc"  # seen before the bench call returned
    assert console.request("PUT", f"{BENCH}/Bench%202/Card", {"profile": "no-such-profile"}).status == 400
    assert console.request("PUT", f"{BENCH}/Nope/Card", {"profile": "hc-basic"}).status == 404
    assert console.request("DELETE", f"{BENCH}/Bench%202/Card").status == 200
    assert console.card_kinds()["Bench 2"] is None
    assert console.request("DELETE", f"{BENCH}/Bench%202").status == 200
    wait_for(lambda: "Bench 2" not in console.request("GET", READERS).body["readers"], 5, "the reader gone")
    assert console.request("DELETE", f"{BENCH}/Bench%202").status == 404


def test_a_health_card_read_through_broker_worker_and_card(console: RunningConsole) -> None:
    wait_for(lambda: console.card_kinds().get(READER_0) == "hc", 5, "hc-basic identified")
    client = CoreClient(console_paths(console.data_dir, sim=True).api_endpoint, timeout=10)
    reply = client.call("ReadPublicData")
    assert (reply.code, reply.body) == (0, HC_BASIC)
    assert client.call("ReadPublicData", {"reader": READER_1}).code == 1103  # a staff card: SELECT fails


def test_without_sim_the_bench_is_not_mounted(tmp_path: Path) -> None:
    console = start_console(tmp_path / "data", "--no-pcsc", sim=False)
    try:
        assert console.request("GET", BENCH).status == 404
        assert console.request("GET", "/api/sim/v1/Profiles").status == 404
        assert console.request("GET", READERS).body == {"statusCode": 0, "readers": []}
    finally:
        console.stop()


def test_events_follow_cards_by_pseudonym_never_by_number(console: RunningConsole) -> None:
    rows = console.database_rows("SELECT payload FROM events WHERE type = 'CardInserted'")
    refs = {json.loads(payload)["card_ref"] for (payload,) in rows}
    assert len(refs) == 2 and all(ref.startswith("card:") for ref in refs)  # hc-basic and hpc-doctor
    everything = b"".join(payload for (payload,) in console.database_rows("SELECT payload FROM events"))
    for number in (b"900000000711", b"100000291508", b"R88855084A", b"E123456789"):
        assert number not in everything
