"""The health card (HC), physical and virtual, through the running console in `--sim` mode (issue 7)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from broker.credentials.cloud_sam_file import parse_cloud_sam_file
from broker.flows.session import signature_input
from tests.integration.console import RunningConsole, wait_for
from tests.typed_secrets import HC_PROFILE_PIN, NEW_HC_PIN, PROFILE_PIN, WRONG_HC_PIN, remember

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STATUS = "/api/common/v1/Status"
BASIC = "/api/hc/v1/Basic"
PIN = "/api/hc/v1/Pin"
VIRTUAL = "/api/hc/v1/Verification/VirtualHc"
READ_BASIC = "/api/hc/v1/VirtualHc/ReadBasic"
EXPORT = "/api/hc/v1/VirtualHc/Export"
IMPORT = "/api/hc/v1/VirtualHc/Import"
UPDATE = "/api/hc/v1/RealHc/Update"
READER_0 = "NHI Sim Reader 0"
HC_CARD = f"/api/sim/v1/Readers/{quote(READER_0)}/Card"


def call(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return dict(answer.body)


def hc(console: RunningConsole) -> dict[str, Any]:
    return dict(call(console, "GET", STATUS)["status"]["hc"])


def initialized(console: RunningConsole, patient: str = "hc-basic") -> None:
    if patient != "hc-basic":
        assert console.request("PUT", HC_CARD, {"profile": patient}).status == 200
    assert call(console, "POST", "/api/common/v1/Initial")["statusCode"] == 0


def token(console: RunningConsole, profile: str = "hc-basic", **options: Any) -> str:
    answer = console.request("POST", "/api/sim/v1/VirtualHc/Token", {"profile": profile, **options})
    assert answer.status == 200, answer.body
    return remember(answer.body["token"])


def bench_sam_certificate(console: RunningConsole) -> Any:
    return parse_cloud_sam_file((console.data_dir / "sim-dc" / "bench-sam.sam").read_bytes()).certificate


def events(console: RunningConsole, type_name: str) -> list[dict[str, Any]]:
    return [
        json.loads(row[0])
        for row in console.database_rows("SELECT payload FROM events WHERE type = ? ORDER BY seq", type_name)
    ]


def test_pin_functions_and_their_codes(console: RunningConsole) -> None:
    initialized(console, "hc-pin")
    assert hc(console)["hasPin"] is None  # not read yet
    assert call(console, "GET", PIN) == {"statusCode": 0, "hasPin": True}
    assert (hc(console)["hasPin"], hc(console)["verifiedPin"]) == (True, False)
    assert call(console, "PUT", PIN, {"newPin": NEW_HC_PIN})["statusCode"] == 1511
    assert call(console, "DELETE", PIN)["statusCode"] == 1511
    wrong = call(console, "POST", PIN, {"pin": WRONG_HC_PIN})
    assert wrong["statusCode"] == 1514 and "2 tries left" in wrong["message"]
    assert call(console, "POST", PIN, {"pin": HC_PROFILE_PIN}) == {"statusCode": 0}
    assert hc(console)["verifiedPin"] is True
    assert call(console, "POST", PIN, {"pin": HC_PROFILE_PIN})["statusCode"] == 1513
    assert call(console, "PUT", PIN, {"newPin": NEW_HC_PIN}) == {"statusCode": 0}
    assert call(console, "DELETE", PIN) == {"statusCode": 0}
    assert (hc(console)["hasPin"], hc(console)["verifiedPin"]) == (False, None)
    assert call(console, "POST", PIN, {"pin": NEW_HC_PIN})["statusCode"] == 1510
    assert call(console, "DELETE", PIN)["statusCode"] == 1510
    for bad in ({"pin": "12"}, {"pin": "1234567"}, {"pin": "12a4"}, {}):
        refused = console.request("POST", PIN, bad)
        assert refused.status == 400 and refused.body["statusCode"] == 1704


def test_basic_logout_and_the_veteran(console: RunningConsole) -> None:
    initialized(console, "hc-veteran")
    basic = call(console, "GET", BASIC)
    assert basic == {
        "statusCode": 0,
        "cardId": "900000000735",
        "name": "陳測試",
        "idNo": "F129876548",
        "birthday": "0370615",
        "sex": "M",
        "dateIssue": "1080301",
        "identityStatus": "2",
    }
    assert call(console, "DELETE", "/api/hc/v1/Logout") == {"statusCode": 0}
    assert hc(console)["status"] == 0
    assert call(console, "GET", BASIC)["idNo"] == "F129876548"  # re-detected on demand


def test_hc_signature_and_three_card_signature_verify(console: RunningConsole) -> None:
    initialized(console)
    certificate = bench_sam_certificate(console)
    signed = call(console, "POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"})
    assert signed["statusCode"] == 0 and (signed["hcId"], signed["hcIdNo"]) == ("900000000711", "R88855084A")
    client_random, signature = (base64.b64decode(signed[name]) for name in ("clientRandom", "signature"))
    assert len(client_random) == 8 and len(signature) == 256
    certificate.public_key().verify(
        signature,
        signature_input(client_random, "901000000047", "777777777", "01", "900000000711", "R88855084A"),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )

    assert call(console, "POST", "/api/hc/v1/Signature/HpcHc", {"serviceType": "01"})["statusCode"] == 1502
    assert call(console, "POST", "/api/hpc/v1/Verification/Hpc", {"pin": PROFILE_PIN})["statusCode"] == 0
    three = call(console, "POST", "/api/hc/v1/Signature/HpcHc", {"serviceType": "01"})
    assert three["statusCode"] == 0 and (three["hpcId"], three["hpcIdNo"]) == ("100000291508", "E123456789")
    assert hc(console)["status"] == 3
    client_random, signature = (base64.b64decode(three[name]) for name in ("clientRandom", "signature"))
    certificate.public_key().verify(
        signature,
        signature_input(
            client_random, "901000000047", "777777777", "01", "100000291508", "E123456789", "900000000711", "R88855084A"
        ),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_virtual_card_verification_and_its_codes(console: RunningConsole) -> None:
    initialized(console)
    good = token(console, "hc-veteran")
    before = call(console, "GET", STATUS)
    read = call(console, "POST", READ_BASIC, {"token": good})
    assert read["statusCode"] == 0 and read["idNo"] == "F129876548" and read["dateIssue"] is None
    assert call(console, "GET", STATUS) == before  # ReadBasic changes nothing

    head, payload, signature = good.split(".")
    assert call(console, "POST", VIRTUAL, {"token": f"{head}.{payload}"})["statusCode"] == 1520
    assert call(console, "POST", VIRTUAL, {"token": "e30.e30.e30"})["statusCode"] == 1522
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert call(console, "POST", VIRTUAL, {"token": f"{head}.{payload}.{flipped}"})["statusCode"] == 1523

    assert call(console, "POST", VIRTUAL, {"token": good}) == {"statusCode": 0}
    status = hc(console)
    assert status["status"] == 2 and status["type"] == 2 and status["expireTime"] is not None
    assert status["hasPin"] is None
    assert call(console, "GET", BASIC)["identityStatus"] == "2"
    assert call(console, "GET", PIN)["statusCode"] == 1526
    assert call(console, "POST", PIN, {"pin": "1234"})["statusCode"] == 1526
    assert call(console, "POST", UPDATE, {})["statusCode"] == 1515


def test_a_token_past_max_uses_and_an_expired_token(console: RunningConsole) -> None:
    initialized(console)
    once = token(console, maxUses=1)
    assert call(console, "POST", VIRTUAL, {"token": once})["statusCode"] == 0
    assert call(console, "POST", VIRTUAL, {"token": once})["statusCode"] == 1525
    short = token(console, expiresIn=30)
    assert console.request("POST", "/api/sim/v1/Clock", {"advanceSeconds": 60}).status == 200
    assert call(console, "POST", VIRTUAL, {"token": short})["statusCode"] == 1524


def test_a_token_that_expires_in_use(console: RunningConsole) -> None:
    initialized(console)
    assert call(console, "POST", VIRTUAL, {"token": token(console, expiresIn=60)})["statusCode"] == 0
    assert console.request("POST", "/api/sim/v1/Clock", {"advanceSeconds": 120}).status == 200
    wait_for(lambda: hc(console)["status"] == 0, 5, "the virtual card to drop when its token expires")
    assert call(console, "GET", BASIC)["statusCode"] == 1521
    assert events(console, "VirtualHcExpired")


def test_export_import_and_import_again(console: RunningConsole) -> None:
    initialized(console)
    assert call(console, "POST", EXPORT, {})["statusCode"] == 1527  # the physical card in the reader
    assert call(console, "POST", VIRTUAL, {"token": token(console, "hc-pin")})["statusCode"] == 0
    exported = call(console, "POST", EXPORT, {})
    assert exported["statusCode"] == 0
    transfer = remember(exported["transferToken"])
    assert hc(console)["status"] == 0
    assert call(console, "POST", IMPORT, {"transferToken": transfer}) == {"statusCode": 0}
    assert hc(console)["type"] == 2 and call(console, "GET", BASIC)["idNo"] == "A223456781"
    assert call(console, "POST", IMPORT, {"transferToken": transfer})["statusCode"] == 1529
    assert call(console, "POST", IMPORT, {"transferToken": "bm8.c3VjaA"})["statusCode"] == 1528


def test_import_at_another_hospital_and_of_an_expired_card(console: RunningConsole) -> None:
    initialized(console)
    assert call(console, "POST", VIRTUAL, {"token": token(console, expiresIn=300)})["statusCode"] == 0
    first = remember(call(console, "POST", EXPORT, {})["transferToken"])
    context = console.request(
        "POST", "/api/sim/v1/CloudSam", {"samId": "901000000777", "hospitalId": "987654321", "contract": "active"}
    ).body["cloudSamContext"]
    assert call(console, "POST", "/api/settings/v1/CloudSam", {"cloudSamContext": context})["statusCode"] == 0
    assert call(console, "POST", "/api/common/v1/Finalize")["statusCode"] == 0
    assert call(console, "POST", "/api/common/v1/Initial", {"name": "901000000777"})["statusCode"] == 0
    assert call(console, "POST", IMPORT, {"transferToken": first})["statusCode"] == 1530
    assert call(console, "POST", "/api/common/v1/Finalize")["statusCode"] == 0
    assert call(console, "POST", "/api/common/v1/Initial", {"name": "901000000047"})["statusCode"] == 0
    assert console.request("POST", "/api/sim/v1/Clock", {"advanceSeconds": 600}).status == 200
    assert call(console, "POST", IMPORT, {"transferToken": first})["statusCode"] == 1531


def test_real_hc_update_writes_and_logs_out(console: RunningConsole) -> None:
    initialized(console)
    assert call(console, "GET", BASIC)["statusCode"] == 0
    assert hc(console)["status"] == 2
    assert call(console, "POST", UPDATE, {}) == {"statusCode": 0}
    assert hc(console)["status"] == 0
    assert events(console, "HcNotesUpdated")


def test_two_health_cards_go_where_the_routing_rule_says(console: RunningConsole) -> None:
    assert console.request("POST", "/api/sim/v1/Readers", {"name": "Desk 2"}).status == 200
    wait_for(lambda: "Desk 2" in console.attached_readers(), 10, "the second reader's worker")
    assert (
        console.request("PUT", f"/api/sim/v1/Readers/{quote('Desk 2')}/Card", {"profile": "hc-veteran"}).status == 200
    )
    initialized(console)
    assert call(console, "GET", BASIC)["idNo"] == "R88855084A"  # the default reader's card
    assert call(console, "GET", STATUS)["status"]["readerName"] == READER_0
    assert call(console, "POST", "/api/settings/v1/PcscReader/Default", {"readerName": "Desk 2"})["statusCode"] == 0
    assert call(console, "GET", BASIC)["idNo"] == "F129876548"  # now the other patient
    assert call(console, "GET", STATUS)["status"]["readerName"] == "Desk 2"
    # A default reader without a health card, and only one other reader holding one: that one.
    assert console.request("DELETE", HC_CARD).status == 200
    assert (
        call(console, "POST", "/api/settings/v1/PcscReader/Default", {"readerName": "NHI Sim Reader 1"})["statusCode"]
        == 0
    )
    assert call(console, "GET", BASIC)["idNo"] == "F129876548"
