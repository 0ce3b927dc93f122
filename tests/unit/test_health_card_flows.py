"""The health card's flows against the bench's cards and an in-memory DC: PIN, signatures, level 3,
virtual cards and their transfer, the notes update."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from broker.credentials.cloud_sam_file import CloudSamFile
from broker.flows.session import signature_input
from contract.status_codes import StatusCode
from sim.cards.health_card import HealthCard
from tests.unit.session_harness import Harness, virtual_token

READER_0, READER_1 = "Reader 0", "Reader 1"


def bench(patient: str = "hc-basic") -> Harness:
    harness = Harness((READER_0, patient), (READER_1, "hpc-doctor"))
    harness.command("SetDefaultReader", {"readerName": READER_0})
    assert harness.command("Initialize") == (0, {})
    return harness


def verifies(harness: Harness) -> int:
    card = harness.cards[READER_0]
    return len([apdu for apdu in card.transcript.commands() if apdu[1] == 0x20 and len(apdu) > 4])


def test_pin_functions_on_a_card_with_a_pin() -> None:
    harness = bench("hc-pin")
    assert harness.core.state.hc.has_pin is None  # not read yet
    assert harness.command("GetHcPin") == (0, {"hasPin": True})
    assert (harness.core.state.hc.has_pin, harness.core.state.hc.verified_pin) == (True, False)
    assert harness.command("SetHcPin", {"newPin": "4321"})[0] == StatusCode.HC_PIN_NOT_VERIFIED
    code, body = harness.command("VerifyHcPin", {"pin": "9999"})
    assert code == StatusCode.HC_PIN_FAILED and "2 tries left" in body["message"]
    assert harness.command("VerifyHcPin", {"pin": "1234"}) == (0, {})
    assert harness.core.state.hc.verified_pin is True
    sent = verifies(harness)
    assert harness.command("VerifyHcPin", {"pin": "1234"})[0] == StatusCode.HC_PIN_ALREADY_VERIFIED
    assert verifies(harness) == sent  # nothing sent to the card
    assert harness.command("SetHcPin", {"newPin": "4321"}) == (0, {})
    assert harness.command("RemoveHcPin") == (0, {})
    assert (harness.core.state.hc.has_pin, harness.core.state.hc.verified_pin) == (False, None)
    assert harness.command("VerifyHcPin", {"pin": "4321"})[0] == StatusCode.HC_HAS_NO_PIN
    assert harness.command("RemoveHcPin")[0] == StatusCode.HC_HAS_NO_PIN


def test_a_card_without_a_pin_can_get_a_first_one() -> None:
    harness = bench("hc-basic")
    assert harness.command("GetHcPin") == (0, {"hasPin": False})
    assert harness.core.state.hc.verified_pin is None
    assert harness.command("VerifyHcPin", {"pin": "1234"})[0] == StatusCode.HC_HAS_NO_PIN
    assert verifies(harness) == 0
    assert harness.command("SetHcPin", {"newPin": "2468"}) == (0, {})
    assert harness.command("GetHcPin") == (0, {"hasPin": True})


def test_hc_signature_and_the_three_card_signature() -> None:
    harness = bench()
    code, body = harness.command("SignWithHc", {"serviceType": "01"})
    assert code == 0 and body["hcId"] == "900000000711" and body["hcIdNo"] == "R88855084A"
    sam_file = harness.core.sam.file
    assert isinstance(sam_file, CloudSamFile)
    public_key = sam_file.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    signed = signature_input(
        body["clientRandom"], body["samId"], body["hospitalId"], "01", "900000000711", "R88855084A"
    )
    public_key.verify(body["signature"], signed, padding.PKCS1v15(), hashes.SHA256())

    assert harness.command("SignWithHpcHc", {"serviceType": "01"})[0] == StatusCode.HC_LEVEL3_FAILED
    assert harness.core.state.hc.status == 2
    harness.command("VerifyHpcPin", {"pin": "000000"})
    code, body = harness.command("SignWithHpcHc", {"serviceType": "02"})
    assert code == 0 and (body["hpcId"], body["hpcIdNo"]) == ("100000291508", "E123456789")
    assert harness.core.state.hc.status == 3
    signed = signature_input(
        body["clientRandom"],
        body["samId"],
        body["hospitalId"],
        "02",
        "100000291508",
        "E123456789",
        "900000000711",
        "R88855084A",
    )
    public_key.verify(body["signature"], signed, padding.PKCS1v15(), hashes.SHA256())
    harness.command("LogoutHpc")
    assert harness.core.state.hc.status == 2  # level 3 cannot outlast the staff card's


def test_a_virtual_card_verifies_reads_and_refuses_pin_functions() -> None:
    harness = bench()
    token = virtual_token("hc-veteran", harness.now_seconds())
    assert harness.command("VerifyVirtualHc", {"token": token}) == (0, {})
    hc = harness.core.state.hc
    assert (hc.status, hc.type) == (2, 2) and hc.expire_time is not None
    code, body = harness.command("ReadHcBasic")
    assert code == 0 and body["idNo"] == "F129876548" and body["dateIssue"] is None and body["identityStatus"] == "2"
    for command, args in (("GetHcPin", {}), ("VerifyHcPin", {"pin": "1234"}), ("RemoveHcPin", {})):
        assert harness.command(command, args)[0] == StatusCode.VIRTUAL_HC_NO_PIN_FUNCTIONS
    assert harness.command("UpdateRealHc")[0] == StatusCode.PHYSICAL_HC_ONLY


def test_read_basic_changes_nothing_and_tokens_are_checked() -> None:
    harness = bench()
    before = harness.core.state
    token = virtual_token("hc-basic", harness.now_seconds())
    code, body = harness.command("ReadVirtualHcBasic", {"token": token})
    assert code == 0 and body["cardId"] == "900000000711" and body["dateIssue"] is None
    assert harness.core.state == before
    assert harness.command("VerifyVirtualHc", {"token": "a.b"})[0] == StatusCode.VIRTUAL_HC_TOKEN_MALFORMED
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    assert harness.command("VerifyVirtualHc", {"token": tampered})[0] == StatusCode.VIRTUAL_HC_TOKEN_BAD_SIGNATURE
    old = virtual_token("hc-basic", harness.now_seconds() - 1000)
    assert harness.command("VerifyVirtualHc", {"token": old})[0] == StatusCode.VIRTUAL_HC_TOKEN_EXPIRED


def test_the_dc_counts_verifications() -> None:
    harness = bench()
    token = virtual_token("hc-basic", harness.now_seconds(), max_uses=2)
    assert harness.command("VerifyVirtualHc", {"token": token})[0] == 0
    assert harness.command("VerifyVirtualHc", {"token": token})[0] == 0
    assert harness.command("VerifyVirtualHc", {"token": token})[0] == StatusCode.VIRTUAL_HC_TOKEN_OVERUSED


def test_export_import_and_import_again() -> None:
    harness = bench()
    assert harness.command("ExportVirtualHc")[0] == StatusCode.VIRTUAL_HC_ONLY  # a physical card
    harness.command("VerifyVirtualHc", {"token": virtual_token("hc-pin", harness.now_seconds())})
    code, body = harness.command("ExportVirtualHc")
    assert code == 0 and body["transferToken"].count(".") == 1
    assert harness.core.state.hc.status == 0
    assert harness.command("ImportVirtualHc", {"transferToken": body["transferToken"]}) == (0, {})
    assert harness.core.state.hc.type == 2 and harness.command("ReadHcBasic")[1]["idNo"] == "A223456781"
    assert (
        harness.command("ImportVirtualHc", {"transferToken": body["transferToken"]})[0]
        == StatusCode.TRANSFER_USED_ELSEWHERE
    )
    assert harness.command("ImportVirtualHc", {"transferToken": "x.y"})[0] == StatusCode.TRANSFER_NOT_FOUND


def test_a_virtual_card_expiring_in_use_answers_1521_once() -> None:
    harness = bench()
    harness.command("VerifyVirtualHc", {"token": virtual_token("hc-basic", harness.now_seconds(), expires_in=60)})
    harness.clock.advance(61)
    for flow in harness.core.due_flows():
        harness.run(flow)
    assert harness.core.state.hc.status == 0 and "VirtualHcExpired" in harness.event_types()
    assert harness.command("ReadHcBasic")[0] == StatusCode.VIRTUAL_HC_TOKEN_TIMED_OUT
    assert harness.command("ReadHcBasic")[0] == 0  # then the physical card in the default reader again


def test_real_hc_update_writes_the_notes_and_logs_the_card_out() -> None:
    harness = bench()
    assert harness.command("UpdateRealHc") == (0, {})
    card = harness.cards[READER_0]
    assert isinstance(card, HealthCard) and card.notes == b"NOTES 900000000711"
    assert harness.core.state.hc.status == 0


@pytest.mark.parametrize("command", ["VerifyHcPin", "SetHcPin"])
def test_a_pin_of_the_wrong_format_never_reaches_the_card(command: str) -> None:
    harness = bench("hc-pin")
    name = "pin" if command == "VerifyHcPin" else "newPin"
    for bad in ("123", "1234567", "12a4", 1234):
        assert harness.command(command, {name: bad})[0] == StatusCode.BAD_PARAMETER
    assert verifies(harness) == 0
