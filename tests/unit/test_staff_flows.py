"""The staff card (HPC) and mobile HCA flows against the bench's cards and an in-memory DC; and the staff-card
state machine against the contract, driven by hypothesis."""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.core import HPC_AUTHENTICATION_SECONDS
from broker.flows.session import signature_input
from contract.status_codes import StatusCode
from sim.cards.staff_card import StaffCard
from sim.mobile_hca import format_login_time, login_body
from sim.pki import bench_pki
from sim.profiles import make_card
from tests.unit.session_harness import Harness

READER_0, READER_1 = "Reader 0", "Reader 1"
RIGHT, WRONG = "000000", "93817264"


def bench(staff: str = "hpc-doctor") -> Harness:
    harness = Harness((READER_0, "hc-basic"), (READER_1, staff))
    harness.command("SetDefaultReader", {"readerName": READER_0})
    assert harness.command("Initialize") == (0, {})
    return harness


def staff_card(harness: Harness) -> StaffCard:
    card = harness.cards[READER_1]
    assert isinstance(card, StaffCard)
    return card


def test_pin_verification_elevates_checks_the_certificate_and_reaches_level_3() -> None:
    harness = bench()
    assert harness.core.state.hpc.status == 1 and harness.core.state.hpc.type == 1  # detected at Initial
    assert harness.command("VerifyHpcPin", {"pin": RIGHT}) == (0, {})
    hpc = harness.core.state.hpc
    assert (hpc.status, hpc.type) == (3, 1) and hpc.expire_time is not None
    assert ("Reader 1", "ReadCertificate") in harness.card_commands
    assert "Crl" in harness.dc.calls
    code, body = harness.command("ReadHpcBasic")
    assert code == 0 and body == {
        "cardId": "100000291508",
        "idNo": "E123456789",
        "cName": "測試人員4",
        "eName": "",
        "birthday": "1979-01-01",
    }


def test_a_wrong_pin_costs_one_try_and_is_never_retried() -> None:
    harness = bench()
    card = staff_card(harness)
    code, body = harness.command("VerifyHpcPin", {"pin": WRONG})
    assert code == StatusCode.HPC_PIN_FAILED and "2 tries left" in body["message"]
    assert card.pin_tries_left == 2
    assert harness.core.state.hpc.status == 2
    verifies = [apdu for apdu in card.transcript.commands() if apdu[1] == 0x20 and len(apdu) > 4]
    assert len(verifies) == 1


def test_a_blocked_pin_is_not_tried_and_the_puk_unblocks_it() -> None:
    harness = bench("hpc-blocked")
    card = staff_card(harness)
    code, body = harness.command("VerifyHpcPin", {"pin": RIGHT})
    assert code == StatusCode.HPC_LEVEL3_FAILED and "blocked" in body["message"]
    assert not [apdu for apdu in card.transcript.commands() if apdu[1] == 0x20 and len(apdu) > 4]
    code, body = harness.command("ResetHpcPin", {"puk": "11111111", "newPin": "4321"})
    assert code == StatusCode.HPC_PIN_FAILED and "9 tries left" in body["message"]
    assert harness.command("ResetHpcPin", {"puk": "12345678", "newPin": "4321"}) == (0, {})
    assert harness.command("VerifyHpcPin", {"pin": RIGHT})[0] == StatusCode.HPC_PIN_FAILED  # the old PIN is gone
    assert harness.command("VerifyHpcPin", {"pin": "4321"}) == (0, {})
    assert harness.core.state.hpc.status == 3


@pytest.mark.parametrize(("profile", "code"), [("hpc-expired", 1422), ("hpc-untrusted", 1423), ("hpc-revoked", 1424)])
def test_a_certificate_problem_stops_the_card_at_level_1(profile: str, code: int) -> None:
    harness = bench(profile)
    card = staff_card(harness)
    assert harness.command("VerifyHpcPin", {"pin": RIGHT})[0] == code
    assert harness.core.state.hpc.status == 1
    assert card.pin_tries_left == 3  # no VERIFY was sent


def test_change_pin_needs_level_3_and_then_the_new_pin_works() -> None:
    harness = bench()
    assert harness.command("ChangeHpcPin", {"newPin": "24680"})[0] == StatusCode.HPC_LEVEL3_FAILED
    harness.command("VerifyHpcPin", {"pin": RIGHT})
    assert harness.command("ChangeHpcPin", {"newPin": "24680"}) == (0, {})
    assert harness.core.state.hpc.status == 3
    harness.command("LogoutHpc")
    assert harness.core.state.hpc.status == 0
    assert harness.command("VerifyHpcPin", {"pin": "24680"}) == (0, {})


def test_the_signature_verifies_with_the_cards_certificate() -> None:
    harness = bench()
    harness.command("VerifyHpcPin", {"pin": RIGHT})
    code, body = harness.command("SignWithHpc", {"serviceType": "01"})
    assert code == 0 and body["hpcId"] == "100000291508" and body["hpcIdNo"] == "E123456789"
    signed = signature_input(
        body["clientRandom"], body["samId"], body["hospitalId"], "01", body["hpcId"], body["hpcIdNo"]
    )
    certificate = bench_pki().staff["hpc-doctor"].certificate
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(body["signature"], signed, padding.PKCS1v15(), hashes.SHA256())
    assert len(body["clientRandom"]) == 8 and len(body["signature"]) == 256
    assert hashlib.sha256(signed).digest() in [
        apdu[5:37] for apdu in staff_card(harness).transcript.commands() if apdu[1] == 0x2A
    ]


def test_removing_the_card_keeps_level_3_until_expiry_and_basic_still_answers() -> None:
    harness = bench()
    harness.command("VerifyHpcPin", {"pin": RIGHT})
    card = harness.cards[READER_1]
    harness.remove(READER_1)
    hpc = harness.core.state.hpc
    assert hpc.status == 3 and hpc.reader is None
    assert harness.command("ReadHpcBasic")[0] == 0
    assert harness.command("SignWithHpc", {"serviceType": "01"})[0] == StatusCode.HPC_LEVEL3_FAILED  # no card
    card.reset()
    harness.insert(READER_1, "hpc-doctor", 7, card)  # the same card back: still level 3, not yet able to sign
    assert harness.core.state.hpc.status == 3 and harness.core.state.hpc.reader == READER_1
    assert harness.command("SignWithHpc", {"serviceType": "01"})[0] == StatusCode.HPC_LEVEL3_FAILED
    harness.clock.advance(HPC_AUTHENTICATION_SECONDS + 1)
    for flow in harness.core.due_flows():
        harness.run(flow)
    assert harness.core.state.hpc.status == 2 and harness.core.state.hpc.expire_time is None
    assert "HpcAuthenticationExpired" in harness.event_types()


def test_a_different_staff_card_ends_the_previous_authentication() -> None:
    harness = bench()
    harness.command("VerifyHpcPin", {"pin": RIGHT})
    harness.remove(READER_1)
    harness.insert(READER_1, "hpc-nurse", 8)
    hpc = harness.core.state.hpc
    assert hpc.status == 1 and hpc.type == 2  # the nurse's card, detected; the doctor's level 3 is gone
    assert "HpcAuthenticationEnded" in harness.event_types()


def test_mobile_hca_login_and_its_refusals() -> None:
    harness = bench()
    now = datetime.datetime.fromtimestamp(harness.clock.wall_ns() / 1e9, datetime.UTC)

    def login(
        profile: str = "hpc-nurse", hospital: str = "777777777", at: datetime.datetime = now, tamper: bool = False
    ) -> tuple[int, dict[str, Any]]:
        body = login_body(profile, hospital, format_login_time(at))
        signature = bytearray(base64.b64decode(body["signature"]))
        if tamper:
            signature[10] ^= 0x01
        args = {
            **body,
            "signatureCertificate": base64.b64decode(body["signatureCertificate"]),
            "signature": bytes(signature),
        }
        return harness.command("VerifyMobileHca", args)

    assert login(tamper=True)[0] == StatusCode.MOBILE_HCA_SIGNATURE_FAILED
    assert login(hospital="123456789")[0] == StatusCode.MOBILE_HCA_WRONG_HOSPITAL
    assert login(at=now - datetime.timedelta(minutes=6))[0] == StatusCode.HCA_SIGNATURE_STALE
    assert login(at=now + datetime.timedelta(minutes=2))[0] == StatusCode.HCA_SIGNATURE_STALE
    assert login("hpc-revoked")[0] == StatusCode.CERTIFICATE_REVOKED
    assert harness.core.state.hpc.status == 1  # the doctor's card, still only detected
    assert login() == (0, {})
    hpc = harness.core.state.hpc
    assert (hpc.status, hpc.type, hpc.reader) == (3, 3, None) and hpc.expire_time is not None
    assert harness.command("ChangeHpcPin", {"newPin": "1234"})[0] == StatusCode.HPC_FUNCTION_UNSUPPORTED
    assert harness.command("SignWithHpc", {"serviceType": "01"})[0] == StatusCode.HPC_FUNCTION_UNSUPPORTED
    code, body = harness.command("ReadHpcBasic")
    assert code == 0 and body["idNo"] == "B287654326" and body["cardId"] == ""


# --- the state machine ------------------------------------------------------------------------------


class StaffCardMachine(RuleBasedStateMachine):
    """Random sequences of what a clinic does with a staff card, checked against the contract after every step.

    The model knows only what the contract says: level 3 exists exactly from a right PIN (on a card whose
    certificate is good) until logout, SAM logout, another staff card, or 8 hours.
    """

    def __init__(self) -> None:
        super().__init__()
        self.harness = bench()
        self.sessions = itertools.count(100)
        nurse = make_card("hpc-nurse")
        assert isinstance(nurse, StaffCard)
        self.cards: dict[str, StaffCard] = {"hpc-doctor": staff_card(self.harness), "hpc-nurse": nurse}
        self.in_reader: str | None = "hpc-doctor"
        self.level3_holder: str | None = None
        self.level3_until: float | None = None
        self.tries_seen: dict[str, int] = {}

    def _now(self) -> float:
        return self.harness.clock.wall_ns() / 1e9

    def _ref(self, profile: str) -> str:
        return self.harness.core.context.card_ref(self.cards[profile].profile.data.card_id)

    @rule(profile=st.sampled_from(["hpc-doctor", "hpc-nurse"]))
    def insert(self, profile: str) -> None:
        if self.in_reader is not None:
            self.remove()
        card = self.cards[profile]
        card.reset()  # a card taken out and put back is powered up again
        self.harness.insert(READER_1, profile, next(self.sessions), card)
        self.in_reader = profile
        if self.level3_holder is not None and self.level3_holder != profile:
            self.level3_holder = None

    @precondition(lambda self: self.in_reader is not None)
    @rule()
    def remove(self) -> None:
        self.harness.remove(READER_1)
        self.in_reader = None

    @rule(right=st.booleans())
    def verify(self, right: bool) -> None:
        card = self.cards[self.in_reader] if self.in_reader else None
        before = card.pin_tries_left if card is not None else None
        code, _ = self.harness.command("VerifyHpcPin", {"pin": RIGHT if right else WRONG})
        if card is not None:
            after = card.pin_tries_left
            assert before is not None and before - after <= 1, "a request cost more than one try"
        if code == 0:
            assert right and self.in_reader is not None
            self.level3_holder = self.in_reader
            self.level3_until = self._now() + HPC_AUTHENTICATION_SECONDS
        elif self.in_reader is not None and self.level3_holder == self.in_reader and not right:
            self.level3_holder = None  # a wrong try un-verifies the card
        elif self.in_reader is None and self.level3_holder is not None:
            assert code == StatusCode.NO_CARD

    @rule()
    def logout(self) -> None:
        assert self.harness.command("LogoutHpc") == (0, {})
        self.level3_holder = None

    @rule()
    def sam_logout(self) -> None:
        assert self.harness.command("LogoutSam") == (0, {})
        self.level3_holder = None

    @rule(seconds=st.sampled_from([60, 3600, 4 * 3600, 9 * 3600]))
    def advance_clock(self, seconds: int) -> None:
        self.harness.clock.advance(seconds)
        for flow in self.harness.core.due_flows():
            self.harness.run(flow)
            self.harness.core.automatic_verification_done((0, {}))
        if self.level3_until is not None and self._now() >= self.level3_until:
            self.level3_holder = None

    @invariant()
    def level_3_exactly_as_the_model_says(self) -> None:
        hpc = self.harness.core.state.hpc
        assert (hpc.status == 3) == (self.level3_holder is not None)
        if self.level3_holder is not None:
            assert hpc.card_ref == self._ref(self.level3_holder)

    @invariant()
    def expire_time_exactly_at_level_3(self) -> None:
        hpc = self.harness.core.state.hpc
        assert (hpc.expire_time is not None) == (hpc.status == 3)


StaffCardMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
test_staff_card_state_machine = StaffCardMachine.TestCase


def test_the_certificate_parses() -> None:
    """The harness's trust store is what the bench's DC simulator writes to hca-trust.pem."""
    assert isinstance(bench_pki().staff["hpc-doctor"].certificate, x509.Certificate)
