"""The Sam seam's mutual authentication flow against the bench's virtual cards and simulated SAM."""

from __future__ import annotations

import pytest

from sim.profiles import make_card
from sim.reader_card_authentication import AuthenticationFailed, authenticate_card
from sim.sam import BenchSam
from workers.apdu import HC_AID, HPC_AID, parse_response, select_aid

IDENTITY_DATA = bytes.fromhex("00CA11010200 00".replace(" ", ""))  # needs the card authenticated


def test_a_health_card_authenticates_and_then_shows_its_identity_data() -> None:
    card = make_card("hc-basic")
    assert parse_response(card.respond(select_aid(HC_AID))).ok
    assert parse_response(card.respond(IDENTITY_DATA)).sw == 0x6982  # level 1: not yet
    authenticate_card(card.respond, BenchSam(), "900000000711")
    answer = parse_response(card.respond(IDENTITY_DATA))
    assert answer.ok and answer.data == b"3"


def test_a_staff_card_authenticates() -> None:
    card = make_card("hpc-doctor")
    assert parse_response(card.respond(select_aid(HPC_AID))).ok
    authenticate_card(card.respond, BenchSam(), "100000291508")


def test_the_wrong_card_number_fails_at_the_card() -> None:
    card = make_card("hc-basic")
    card.respond(select_aid(HC_AID))
    with pytest.raises(AuthenticationFailed) as failed:
        authenticate_card(card.respond, BenchSam(), "900000000712")
    assert failed.value.step == "EXTERNAL AUTHENTICATE"


class LyingSam(BenchSam):
    def verify_internal(self, card_number: str, challenge: bytes, response: bytes) -> bool:
        return super().verify_internal(card_number, challenge, bytes(32))


def test_a_card_whose_answer_does_not_verify_fails_at_internal_authenticate() -> None:
    card = make_card("hc-basic")
    card.respond(select_aid(HC_AID))
    with pytest.raises(AuthenticationFailed) as failed:
        authenticate_card(card.respond, LyingSam(), "900000000711")
    assert failed.value.step == "INTERNAL AUTHENTICATE"


def test_without_a_selected_application_the_card_refuses_the_sam() -> None:
    # GET CHALLENGE needs no application (as on ISO cards); authenticating does.
    with pytest.raises(AuthenticationFailed) as failed:
        authenticate_card(make_card("hc-basic").respond, BenchSam(), "900000000711")
    assert failed.value.step == "EXTERNAL AUTHENTICATE"


def test_a_card_that_gives_no_challenge_fails_at_the_first_step() -> None:
    with pytest.raises(AuthenticationFailed) as failed:
        authenticate_card(lambda apdu: b"\x6d\x00", BenchSam(), "900000000711")
    assert failed.value.step == "GET CHALLENGE"
