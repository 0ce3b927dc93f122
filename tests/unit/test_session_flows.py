"""The session's flows (contract.md's rules 1-5) against virtual cards and an in-memory DC, in milliseconds."""

from __future__ import annotations

import datetime

import pytest

from broker.credentials.cloud_sam_file import CloudSamFile, verify_signature
from broker.dc.seam import DcError
from broker.domain.events import decode
from broker.domain.state import project
from broker.flows import health_card as health_card_flows
from broker.flows import session as session_flows
from contract.status_codes import StatusCode
from tests.unit.session_harness import Harness

READER_0, READER_1 = "Reader 0", "Reader 1"


@pytest.fixture
def bench() -> Harness:
    harness = Harness((READER_0, "hc-basic"), (READER_1, "hpc-doctor"))
    harness.command("SetDefaultReader", {"readerName": READER_0})
    return harness


def test_initial_opens_the_sam_verifies_it_and_detects_the_health_card(bench: Harness) -> None:
    assert bench.command("Initialize") == (0, {})
    state = bench.core.state
    assert state.initialized and state.device_name == "901000000047" and state.reader_in_use == READER_0
    assert (state.sam.status, state.sam.type) == (2, 1) and state.sam.expire_time is not None
    assert (state.hc.status, state.hc.type, state.hc.reader) == (1, 1, READER_0)
    assert bench.dc.calls == ["Sam/Challenge", "Sam/Login"]
    assert bench.card_commands == []  # detection needs no APDU: the worker identified the card at insertion
    assert bench.command("Initialize")[0] == StatusCode.ALREADY_INITIALIZED


def test_initial_answers_1002_when_no_device_opens(bench: Harness) -> None:
    assert bench.command("Initialize", {"name": "123456789012"})[0] == StatusCode.NO_DEVICE
    bench.sams.remove("901000000047")  # the file is gone from the disk behind the console's back
    assert bench.command("Initialize")[0] == StatusCode.NO_DEVICE
    assert not bench.core.state.initialized


def test_a_dc_refusal_at_initial_leaves_the_sam_at_1_and_is_logged(bench: Harness) -> None:
    bench.dc.fail["Sam/Login"] = [DcError(StatusCode.CONTRACT_EXPIRED, "contractExpired")]
    assert bench.command("Initialize") == (0, {})
    assert bench.core.state.sam.status == 1
    assert "SamVerificationFailed" in bench.event_types()
    assert bench.command("VerifySam") == (0, {})  # the DC has changed its mind
    assert bench.core.state.sam.status == 2


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DcError(StatusCode.CONTRACT_EXPIRED, "contractExpired"), 1302),
        (DcError(StatusCode.HOSPITAL_SUSPENDED, "hospitalSuspended"), 1303),
        (DcError(StatusCode.SAM_REVOKED, "samRevoked"), 1304),
        (DcError(StatusCode.DC_UNDEFINED_ERROR, "authenticationFailed"), 1301),
        (DcError(StatusCode.SAM_LEVEL2_FAILED, "unknownSam"), 1301),
        (DcError(StatusCode.DC_CONNECTION_FAILED, "connectionFailed"), 1700),
        (DcError(StatusCode.DC_HTTP_ERROR, "httpStatus"), 1702),
    ],
)
def test_verification_failures_keep_the_dcs_code(bench: Harness, error: DcError, expected: int) -> None:
    bench.command("Initialize")
    bench.dc.fail["Sam/Login"] = [error]
    assert bench.command("VerifySam")[0] == expected
    refused = expected in (1301, 1302, 1303, 1304)
    assert bench.core.state.sam.status == (1 if refused else 2)  # "the DC is down" says nothing about the SAM


def test_hc_basic_elevates_the_card_and_reads_it(bench: Harness) -> None:
    bench.command("Initialize")
    code, body = bench.command("ReadHcBasic")
    assert code == 0
    assert body == {
        "cardId": "900000000711",
        "name": "測試資料",
        "idNo": "R88855084A",
        "birthday": "0741201",
        "sex": "F",
        "dateIssue": "1070101",
        "identityStatus": "3",
    }
    assert bench.core.state.hc.status == 2
    assert bench.card_commands == [
        (READER_0, "BeginCardAuthentication"),
        (READER_0, "FinishCardAuthentication"),
        (READER_0, "ReadHcBasic"),
    ]
    bench.card_commands.clear()
    assert bench.command("ReadHcBasic")[0] == 0
    assert bench.card_commands == [(READER_0, "ReadHcBasic")]  # already at level 2: no new authentication


def test_sam_logout_drops_the_cards_and_the_next_call_elevates_again(bench: Harness) -> None:
    bench.command("Initialize")
    bench.command("ReadHcBasic")
    assert bench.command("LogoutSam") == (0, {})
    state = bench.core.state
    assert (state.sam.status, state.hc.status, state.hpc.status) == (1, 0, 0)
    calls_before = len(bench.dc.calls)
    assert bench.command("ReadHcBasic")[0] == 0
    assert bench.dc.calls[calls_before : calls_before + 2] == ["Sam/Challenge", "Sam/Login"]
    assert (bench.core.state.sam.status, bench.core.state.hc.status) == (2, 2)


def test_a_card_the_sam_cannot_authenticate_answers_1501(bench: Harness) -> None:
    bench.command("Initialize")
    bench.dc.fail["Cards/Verify"] = [DcError(StatusCode.DC_UNDEFINED_ERROR, "authenticationFailed")]
    assert bench.command("ReadHcBasic")[0] == StatusCode.HC_LEVEL2_FAILED
    assert bench.core.state.hc.status == 1
    assert "CardAuthenticationFailed" in bench.event_types()


def test_a_dc_failure_during_card_authentication_keeps_its_code(bench: Harness) -> None:
    bench.command("Initialize")
    bench.dc.fail["Cards/Challenge"] = [DcError(StatusCode.DC_HTTP_ERROR, "httpStatus")]
    assert bench.command("ReadHcBasic")[0] == StatusCode.DC_HTTP_ERROR


def test_an_expired_dc_session_is_renewed_once_and_the_step_asked_again(bench: Harness) -> None:
    bench.command("Initialize")
    bench.dc.expire_sessions()
    code, body = bench.command("GetServerDateTime")
    assert code == 0 and len(body["serverDateTime"]) == 13
    assert bench.dc.calls[-4:] == ["Time", "Sam/Challenge", "Sam/Login", "Time"]
    types = bench.event_types()
    assert types[-2:] == ["SamSessionExpired", "SamVerified"]


def test_the_session_expiring_by_the_clock_is_verified_again_without_a_caller(bench: Harness) -> None:
    bench.command("Initialize")
    first_expiry = bench.core.state.sam.expire_time
    assert bench.core.due_flows() == []
    bench.clock.advance(3601)
    [flow] = bench.core.due_flows()
    assert bench.core.state.sam.status == 1
    assert bench.core.due_flows() == []  # one automatic verification at a time
    assert bench.run(flow) == (0, {})
    bench.core.automatic_verification_done((0, {}))
    assert bench.core.state.sam.status == 2 and bench.core.state.sam.expire_time != first_expiry


def test_concurrent_calls_share_one_sam_verification(bench: Harness) -> None:
    bench.command("Initialize")
    bench.command("LogoutSam")
    bench.dc.calls.clear()
    first = bench.start(health_card_flows.read_hc_basic(bench.core.context))
    second = bench.start(session_flows.server_date_time(bench.core.context))
    bench.pump()
    assert first[0][0] == 0 and second[0][0] == 0
    assert bench.dc.calls.count("Sam/Login") == 1


def test_removing_the_card_mid_authentication_answers_1102(bench: Harness) -> None:
    bench.command("Initialize")
    outcomes = bench.start(health_card_flows.read_hc_basic(bench.core.context))
    bench.step_once()  # BeginCardAuthentication: the card is there
    bench.remove(READER_0)
    bench.pump()
    assert outcomes[0][0] == StatusCode.NO_CARD
    assert bench.core.state.hc.status == 0


def test_without_a_health_card_the_routing_code_is_answered(bench: Harness) -> None:
    bench.command("Initialize")
    bench.remove(READER_0)
    assert bench.command("ReadHcBasic")[0] == StatusCode.NO_CARD


def test_finalize_ends_everything_and_a_late_dc_answer_cannot_revive_it(bench: Harness) -> None:
    bench.command("Initialize")
    bench.command("LogoutSam")
    outcomes = bench.start(session_flows.sam_verification(bench.core.context))
    assert bench.command("Finalize") == (0, {})
    bench.pump()
    assert outcomes[0][0] == StatusCode.NOT_INITIALIZED
    state = bench.core.state
    assert not state.initialized and state.sam.status == 0 and state.device_name is None


def test_signature_covers_the_random_and_the_request(bench: Harness) -> None:
    bench.command("Initialize")
    code, body = bench.command("SignWithSam", {"serviceType": "01"})
    assert code == 0 and len(body["clientRandom"]) == 8 and len(body["signature"]) == 256
    signed = session_flows.signature_input(body["clientRandom"], "901000000047", "777777777", "01")
    sam_file = bench.core.sam.file
    assert sam_file is not None
    assert isinstance(sam_file, CloudSamFile)
    assert verify_signature(sam_file.certificate, body["signature"], signed)
    assert not verify_signature(sam_file.certificate, body["signature"], signed + b"x")


def test_the_log_replays_to_the_same_state(bench: Harness) -> None:
    bench.command("Initialize")
    bench.command("ReadHcBasic")
    bench.command("LogoutSam")
    bench.command("ReadHcBasic")
    replayed = project(decode(e.type, e.version, e.payload) for e in bench.store.events())
    assert replayed == bench.core.state


def test_roc_date_time() -> None:
    taipei = datetime.timezone(datetime.timedelta(hours=8))
    assert session_flows.roc_date_time(datetime.datetime(2024, 1, 1, 12, 34, 56, tzinfo=taipei)) == "1130101123456"
    assert session_flows.roc_date_time(datetime.datetime(1912, 12, 31, 23, 59, 59)) == "0011231235959"
    with pytest.raises(ValueError):
        session_flows.roc_date_time(datetime.datetime(1911, 12, 31))
