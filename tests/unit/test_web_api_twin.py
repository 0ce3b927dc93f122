"""The web-API twin's core (sim.web_api) without sockets: signatures per service type, refusals that change
nothing, the state rules of web-api.md, the seed's /TreatNum form, tele-medicine, faults and controls."""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from broker.credentials.cloud_sam_file import CloudSamFile, parse_cloud_sam_file
from broker.credentials.virtual_hc_token import verify_token
from broker.flows.session import signature_input
from sim.dc.sam_files import SamCa, issue_cloud_sam
from sim.dc.service import Reply, Request
from sim.dc.state import Contract, DcState, StateDir
from sim.profiles import PROFILES, HealthCardData
from sim.virtual_hc import make_issuer
from sim.web_api.codes import Code
from sim.web_api.controls import WebApiControls
from sim.web_api.formats import roc_date_time
from sim.web_api.service import TREAT_NUM_PATH, UNREADABLE_PAYLOAD, RawReply, Stall, WebApiService
from sim.web_api.signatures import Kind
from sim.web_api.signer import Signer, prescription_signed_bytes
from sim.web_api.state import WebApiState

START = datetime.datetime(2025, 3, 1, 2, 0, 0, tzinfo=datetime.UTC)  # 10:00 in Taipei
HOSPITAL = "3501200000"
OTHER_HOSPITAL = "3501200001"
DOCTOR = ("100000291508", "E123456789")
API = "/api/v1/"
SAM_PATHS = {"TreatmentNumber/NoCard", "TeleMedicine/RequestToken", "TeleMedicine/ResponseToken"}
HPC_HC_PATHS = {"Prescription/Query", "Treatment/NeedHPC", "CriticalIllness/Query"}
SERVICE_TYPES = {
    "BasicData/Query": "01",
    "BasicData/Register": "01",
    "BasicData/Register2": "01",
    "EmergentTel/Query": "01",
    "SequelNumber/Next": "03",
    "SequelNumber/Rollback": "03",
    "TreatmentNumber/Card": "03",
    "TreatmentNumber/NoCard": "03",
    "Treatment/WriteCodeFee": "02",
    "Prescription/Write": "02",
    "Prescription/Query": "01",
    "Treatment/NoNeedHPC": "01",
    "Treatment/NeedHPC": "01",
    "CriticalIllness/Query": "01",
    "HcContent/Update": "04",
    "TeleMedicine/RequestToken": "01",
    "TeleMedicine/ResponseToken": "01",
}
"""web-API.md's table, written out again here on purpose: the test must not read the twin's own route table."""
NEXT = {"treatmentItem": "01", "babyTreatment": " ", "afterCheck": "1"}
PRESCRIPTION = {
    "treatmentDateTime": "",
    "treatmentItem": "1",
    "treatmentItemCode": "A000001100",
    "treatmentPosition": "",
    "usage": "TID",
    "days": "3",
    "totalQuantity": "9.00",
    "deliveryNotes": "01",
}


class WallClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime.datetime:
        return self.now


@dataclass
class Sams:
    dc: DcState
    wall: WallClock
    main: CloudSamFile
    other: CloudSamFile
    revoked: CloudSamFile
    expired: CloudSamFile
    suspended: CloudSamFile


@pytest.fixture(scope="module")
def sams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sams]:
    """The DC's SAMs for the module (each an RSA key to make): one per hospital and contract state."""
    layout = StateDir(tmp_path_factory.mktemp("dc"))
    layout.ensure()
    wall = WallClock()
    dc = DcState(layout.database, wall_clock=wall)
    ca = SamCa.ensure(layout)

    def issue(sam_id: str, hospital: str, contract: Contract) -> CloudSamFile:
        return parse_cloud_sam_file(issue_cloud_sam(dc, ca, sam_id, hospital, None, contract))

    try:
        yield Sams(
            dc,
            wall,
            issue("901000000101", HOSPITAL, Contract.ACTIVE),
            issue("901000000102", OTHER_HOSPITAL, Contract.ACTIVE),
            issue("901000000103", "3501200002", Contract.REVOKED),
            issue("901000000104", "3501200003", Contract.EXPIRED),
            issue("901000000105", "3501200004", Contract.SUSPENDED),
        )
    finally:
        dc.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    root = tmp_path_factory.mktemp("keys")
    signer = Signer.ensure(root / "signer.key", root / "signer.pem")
    issuer_key, issuer_certificate = make_issuer()
    public = issuer_certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    return signer, issuer_key, public


@dataclass
class Twin:
    service: WebApiService
    state: WebApiState
    sams: Sams
    signer: Signer
    issuer: rsa.RSAPublicKey

    def sign(
        self,
        kind: Kind,
        service_type: str,
        profile: str | None = "hc-basic",
        sam: CloudSamFile | None = None,
        hospital_id: str | None = None,
    ) -> dict[str, Any]:
        """The signature block the console would answer, as a body."""
        sam = sam or self.sams.main
        hospital = hospital_id or sam.hospital_id
        body: dict[str, Any] = {"hospitalId": hospital, "samId": sam.sam_id}
        holders: list[str] = []
        if kind is Kind.HPC_HC:
            body.update(hpcId=DOCTOR[0], hpcIdNo=DOCTOR[1])
            holders += DOCTOR
        if kind is not Kind.SAM:
            assert profile is not None
            data = PROFILES[profile].data
            body.update(hcId=data.card_id, hcIdNo=data.id_no)
            holders += [data.card_id, data.id_no]
        client_random = secrets.token_bytes(8)
        signature = sam.sign(signature_input(client_random, sam.sam_id, hospital, service_type, *holders))
        body.update(clientRandom=b64(client_random), signature=b64(signature))
        return body

    def call(self, path: str, body: Any) -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        outcome = self.service.handle(Request("POST", path if path.startswith("/") else API + path, {}, raw))
        assert isinstance(outcome, Reply), outcome
        return outcome

    def ask(self, path: str, profile: str | None = "hc-basic", sam: CloudSamFile | None = None, **extra: Any) -> Reply:
        """Sign as that path needs (web-api.md's kind and service type) and call it."""
        short = path.removeprefix(API)
        kind = Kind.SAM if short in SAM_PATHS else Kind.HPC_HC if short in HPC_HC_PATHS else Kind.HC
        return self.call(path, {**self.sign(kind, SERVICE_TYPES[short], profile, sam), **extra})

    def done(self, path: str, profile: str | None = "hc-basic", **extra: Any) -> dict[str, Any]:
        reply = self.ask(path, profile, **extra)
        assert reply.status == 200 and reply.body["statusCode"] == 0, reply
        return dict(reply.body)

    def snapshot(self) -> dict[str, Any]:
        with self.state.transaction() as tx:
            return tx.snapshot()

    def refused(self, path: str, body: Any, code: int, status: int = 200) -> Reply:
        """The call is refused with `code`, a message, and not a thing changed."""
        before = self.snapshot()
        reply = self.call(path, body)
        assert reply.status == status and reply.body["statusCode"] == code, reply
        assert isinstance(reply.body["message"], str) and reply.body["message"]
        assert self.snapshot() == before
        return reply


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture
def twin(tmp_path: Path, sams: Sams, keys: tuple[Signer, rsa.RSAPrivateKey, rsa.RSAPublicKey]) -> Iterator[Twin]:
    sams.wall.now = START
    signer, issuer_key, issuer_public = keys
    state = WebApiState(tmp_path / "state.db")
    try:
        yield Twin(WebApiService(state, sams.dc, signer, issuer_key), state, sams, signer, issuer_public)
    finally:
        state.close()


def later(twin: Twin, seconds: float) -> None:
    twin.sams.wall.now += datetime.timedelta(seconds=seconds)


# --- signatures ------------------------------------------------------------------------------------


WHEN = "1140301100000"
EXTRAS: dict[str, dict[str, Any]] = {
    "SequelNumber/Next": NEXT,
    "SequelNumber/Rollback": {"treatmentDateTime": WHEN},
    "TreatmentNumber/Card": {"treatmentDateTime": WHEN},
    "TreatmentNumber/NoCard": {"patientId": "R88855084A"},
    "Treatment/WriteCodeFee": {"treatmentDateTime": WHEN, "afterCheck": "1", "mainCode": "J069"},
    "Prescription/Write": {"treatmentDateTime": WHEN, "prescriptions": [{**PRESCRIPTION, "treatmentDateTime": WHEN}]},
    "TeleMedicine/RequestToken": {"patientId": "R88855084A"},
    "TeleMedicine/ResponseToken": {"accessToken": "A" * 43},
}
"""What each path needs beyond the signature block to get past its 400."""


@pytest.mark.parametrize("path", sorted(SERVICE_TYPES))
def test_each_path_takes_its_own_service_type_only(twin: Twin, path: str) -> None:
    kind = Kind.SAM if path in SAM_PATHS else Kind.HPC_HC if path in HPC_HC_PATHS else Kind.HC
    right, extra = SERVICE_TYPES[path], EXTRAS.get(path, {})
    for wrong in sorted({"01", "02", "03", "04", "11"} - {right}):
        reply = twin.refused(API + path, {**twin.sign(kind, wrong), **extra}, Code.SIGNATURE_INVALID)
        assert f"service type {wrong}" in str(reply.body["message"])
    reply = twin.call(API + path, {**twin.sign(kind, right), **extra})  # done, or a state rule: never 3100
    assert reply.status == 200 and reply.body["statusCode"] not in (Code.SIGNATURE_INVALID, Code.BAD_REQUEST)


def test_a_tampered_signature_random_or_holder_is_refused(twin: Twin) -> None:
    path = API + "BasicData/Query"
    good = twin.sign(Kind.HC, "01")
    signature = bytearray(base64.b64decode(good["signature"]))
    signature[17] ^= 0x01
    twin.refused(path, {**good, "signature": b64(bytes(signature))}, Code.SIGNATURE_INVALID)
    twin.refused(path, {**good, "clientRandom": b64(secrets.token_bytes(8))}, Code.SIGNATURE_INVALID)
    veteran = PROFILES["hc-veteran"].data
    twin.refused(path, {**good, "hcId": veteran.card_id, "hcIdNo": veteran.id_no}, Code.SIGNATURE_INVALID)
    assert twin.call(path, good).body["statusCode"] == 0


def test_the_sam_the_hospital_and_the_contract_are_checked_first(twin: Twin) -> None:
    path = API + "BasicData/Query"
    sams = twin.sams
    unknown = {**twin.sign(Kind.HC, "01"), "samId": "901999999999"}
    twin.refused(path, unknown, Code.UNKNOWN_SAM)
    # Another hospital's SAM, whatever it signed: hospitalId is not the SAM's.
    twin.refused(path, twin.sign(Kind.HC, "01", sam=sams.other, hospital_id=HOSPITAL), Code.OTHER_HOSPITAL)
    twin.refused(path, twin.sign(Kind.HC, "01", sam=sams.revoked), Code.SAM_REVOKED)
    twin.refused(path, twin.sign(Kind.HC, "01", sam=sams.expired), Code.CONTRACT_EXPIRED)
    twin.refused(path, twin.sign(Kind.HC, "01", sam=sams.suspended), Code.HOSPITAL_SUSPENDED)
    assert twin.call(path, twin.sign(Kind.HC, "01", sam=sams.other)).body["statusCode"] == 0


def test_a_signature_is_good_for_8_hours_from_its_first_sight_on_the_bench_clock(twin: Twin) -> None:
    path = API + "BasicData/Register2"
    body = twin.sign(Kind.HC, "01")
    assert twin.call(path, body).body["statusCode"] == 0
    later(twin, 8 * 3600)
    assert twin.call(path, body).body["statusCode"] == 0
    later(twin, 1)
    reply = twin.refused(path, body, Code.SIGNATURE_INVALID)
    assert "8 hours" in str(reply.body["message"])
    assert twin.call(path, twin.sign(Kind.HC, "01")).body["statusCode"] == 0  # a new one is fine


def test_a_card_the_bench_does_not_insure_is_refused(twin: Twin) -> None:
    body = twin.sign(Kind.HC, "01")
    sam = twin.sams.main
    random = secrets.token_bytes(8)
    stranger = ("900000009999", "A123456789")
    signed = sam.sign(signature_input(random, sam.sam_id, sam.hospital_id, "01", *stranger))
    body.update(hcId=stranger[0], hcIdNo=stranger[1], clientRandom=b64(random), signature=b64(signed))
    twin.refused(API + "BasicData/Query", body, Code.NOT_INSURED)


# --- bad requests --------------------------------------------------------------------------------------


def test_bad_bodies_and_paths_are_refused_before_anything_is_checked(twin: Twin) -> None:
    path = API + "SequelNumber/Next"
    good = {**twin.sign(Kind.HC, "03"), **NEXT}
    twin.refused(path, b"not json", Code.BAD_REQUEST, status=400)
    twin.refused(path, b"[1, 2]", Code.BAD_REQUEST, status=400)
    for name in ("clientRandom", "hospitalId", "samId", "signature", "hcId", "hcIdNo", "treatmentItem", "afterCheck"):
        twin.refused(path, {k: v for k, v in good.items() if k != name}, Code.BAD_REQUEST, status=400)
    twin.refused(path, {**good, "signature": "not base64!"}, Code.BAD_REQUEST, status=400)
    twin.refused(path, {**good, "afterCheck": 1}, Code.BAD_REQUEST, status=400)
    twin.refused(API + "NoSuch/Path", good, Code.UNKNOWN_PATH, status=404)
    before = twin.snapshot()
    outcome = twin.service.handle(Request("GET", path, {}, b""))
    assert isinstance(outcome, Reply) and outcome.status == 404 and twin.snapshot() == before
    assert twin.call(path, good).body["statusCode"] == 0


# --- state rules -----------------------------------------------------------------------------------------


def test_a_visit_is_one_story_across_the_paths(twin: Twin) -> None:
    start = twin.done("BasicData/Register")
    assert (start["cardSn"], start["idCardNum"], start["treatmentCounter"]) == ("900000000711", "R88855084A", 6)
    taken = twin.done("SequelNumber/Next", **NEXT)
    when = taken["treatmentDateTime"]
    assert when == roc_date_time(START) == "1140301100000"
    assert taken["sequenceNumber"] == "0001" and taken["isSameDay"] is False
    assert taken["hospitalId"] == HOSPITAL and taken["samId"] == twin.sams.main.sam_id
    assert len(taken["treatmentNumber"]) == 20 and len(base64.b64decode(taken["signature"])) == 256
    assert twin.done("BasicData/Register2")["treatmentCounter"] == 5
    shown = twin.done("Treatment/NoNeedHPC")["treatments"]
    assert shown == [
        {
            "treatmentItem": "01",
            "treatDateTime": when,
            "afterCheck": "1",
            "hospitalVisit": "0001",
            "hospitalId": HOSPITAL,
            "outpatientFee": 0,
            "costFee": 0,
            "inpatientFee": 0,
            "inpatient30Fee": 0,
            "inpatient180Fee": 0,
        }
    ]
    assert twin.done("TreatmentNumber/Card", treatmentDateTime=when)["treatmentNumber"] == taken["treatmentNumber"]

    codes: dict[str, Any] = {"mainCode": "J069", "subCode1": "R05", "subCode2": "", "outpatientFee": 350, "costFee": 50}
    assert twin.done("Treatment/WriteCodeFee", treatmentDateTime=when, afterCheck="1", **codes) == {"statusCode": 0}
    twin.refused(
        API + "Treatment/WriteCodeFee",
        {**twin.sign(Kind.HC, "02"), "treatmentDateTime": when, "afterCheck": "1", **codes},
        Code.CODES_WRITTEN,
    )
    assert twin.done("Treatment/NeedHPC", format="0")["treatments"] == [
        {"treatDateTime": when, "mainCode": "J069", "subCode1": "R05", "subCode2": "", "subCode3": ""}
    ]
    fees = twin.done("Treatment/NoNeedHPC")["treatments"][0]
    assert (fees["outpatientFee"], fees["costFee"], fees["inpatientFee"]) == (350, 50, 0)

    items = [{**PRESCRIPTION, "treatmentDateTime": when}, {**PRESCRIPTION, "treatmentDateTime": when, "days": 7}]
    signed = twin.done("Prescription/Write", treatmentDateTime=when, prescriptions=items)
    assert len(signed["signatureItems"]) == len(signed["hexSignatureItems"]) == 2
    public = twin.signer.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    for item, base, hexed in zip(items, signed["signatureItems"], signed["hexSignatureItems"], strict=True):
        assert base64.b64decode(base) == bytes.fromhex(hexed) and hexed == hexed.upper()
        written = {name: str(value) for name, value in item.items()}
        data = prescription_signed_bytes(HOSPITAL, "900000000711", "R88855084A", when, written)
        public.verify(base64.b64decode(base), data, padding.PKCS1v15(), hashes.SHA256())
    query = twin.done("Prescription/Query")["outpatientPrescriptions"]
    assert [entry["days"] for entry in query] == ["3", "7"]
    assert set(query[0]) == {
        "treatmentDateTime",
        "treatmentItem",
        "treatmentItemCode",
        "treatmentPosition",
        "usage",
        "days",
        "totalQuantity",
    }


def test_is_same_day_sequence_numbers_and_one_sequence_per_signature(twin: Twin) -> None:
    body = {**twin.sign(Kind.HC, "03"), **NEXT}
    first = twin.call(API + "SequelNumber/Next", body).body
    twin.refused(API + "SequelNumber/Next", body, Code.SIGNATURE_USED)
    second = twin.done("SequelNumber/Next", **NEXT)  # the same second: dated the next free one
    assert (first["sequenceNumber"], second["sequenceNumber"]) == ("0001", "0002")
    assert second["treatmentDateTime"] == "1140301100001" and second["isSameDay"] is True
    other = twin.call(
        API + "SequelNumber/Next", {**twin.sign(Kind.HC, "03", sam=twin.sams.other), **NEXT}
    ).body  # another hospital: not the same day *there*
    assert other["statusCode"] == 0 and other["isSameDay"] is False
    later(twin, 86400)
    assert twin.done("SequelNumber/Next", **NEXT)["isSameDay"] is False


def test_rollback_hides_the_visit_and_gives_the_visit_back(twin: Twin) -> None:
    when = twin.done("SequelNumber/Next", **NEXT)["treatmentDateTime"]
    assert twin.done("BasicData/Register2")["treatmentCounter"] == 5
    rollback = API + "SequelNumber/Rollback"
    other = {**twin.sign(Kind.HC, "03", sam=twin.sams.other), "treatmentDateTime": when}
    twin.refused(rollback, other, Code.OTHER_HOSPITAL)
    twin.refused(rollback, {**twin.sign(Kind.HC, "03"), "treatmentDateTime": "1140301100500"}, Code.NO_SUCH_VISIT)
    assert twin.done("SequelNumber/Rollback", treatmentDateTime=when) == {"statusCode": 0}
    assert twin.done("Treatment/NoNeedHPC")["treatments"] == []
    assert twin.done("BasicData/Register2")["treatmentCounter"] == 6
    twin.refused(rollback, {**twin.sign(Kind.HC, "03"), "treatmentDateTime": when}, Code.ROLLED_BACK_ALREADY)
    card = {**twin.sign(Kind.HC, "03"), "treatmentDateTime": when}
    twin.refused(API + "TreatmentNumber/Card", card, Code.NO_SUCH_VISIT)


def test_rollback_only_within_24_hours_and_of_a_numeric_treatment_item(twin: Twin) -> None:
    when = twin.done("SequelNumber/Next", **NEXT)["treatmentDateTime"]
    letters = twin.done("SequelNumber/Next", **{**NEXT, "treatmentItem": "AC"})["treatmentDateTime"]
    rollback = API + "SequelNumber/Rollback"
    twin.refused(rollback, {**twin.sign(Kind.HC, "03"), "treatmentDateTime": letters}, Code.ROLLBACK_NOT_NUMERIC)
    later(twin, 24 * 3600 + 1)
    twin.refused(rollback, {**twin.sign(Kind.HC, "03"), "treatmentDateTime": when}, Code.ROLLBACK_TOO_LATE)


def test_an_expired_card_gets_no_sequence_number_until_updated(twin: Twin) -> None:
    assert twin.done("BasicData/Register2", "hc-expired") == {
        "statusCode": 0,
        "cardValidity": "1121231",
        "treatmentCounter": 6,
    }
    next_body = {**twin.sign(Kind.HC, "03", "hc-expired"), **NEXT}
    twin.refused(API + "SequelNumber/Next", next_body, Code.CARD_EXPIRED)
    twin.refused(API + "HcContent/Update", twin.sign(Kind.HC, "03", "hc-expired"), Code.SIGNATURE_INVALID)
    assert twin.done("HcContent/Update", "hc-expired") == {"statusCode": 0}
    assert twin.done("BasicData/Register2", "hc-expired")["cardValidity"] == "1150301"  # a year from the bench's today
    assert twin.done("SequelNumber/Next", "hc-expired", **NEXT)["sequenceNumber"] == "0001"


def test_a_card_with_no_visits_left_gets_none_until_updated(twin: Twin) -> None:
    next_body = {**twin.sign(Kind.HC, "03", "hc-counter-zero"), **NEXT}
    twin.refused(API + "SequelNumber/Next", next_body, Code.COUNTER_ZERO)
    assert twin.done("HcContent/Update", "hc-counter-zero") == {"statusCode": 0}
    renewed = twin.done("BasicData/Register2", "hc-counter-zero")
    assert renewed == {"statusCode": 0, "cardValidity": "1391231", "treatmentCounter": 6}  # a later validity stays
    assert twin.done("SequelNumber/Next", "hc-counter-zero", **NEXT)["statusCode"] == 0


def test_the_reads_answer_each_profiles_insurance_data(twin: Twin) -> None:
    for name, profile in PROFILES.items():
        if profile.insurance is None:
            continue
        register = twin.done("BasicData/Register", name)
        assert isinstance(profile.data, HealthCardData)
        assert register["name"] == profile.data.name and register["insurerId"] == profile.data.identity_status
        assert register["newbornBirthday"] == profile.insurance.newborn_birthday
        assert twin.done("EmergentTel/Query", name)["tel"] == profile.insurance.emergency_tel
    illnesses = twin.done("CriticalIllness/Query", "hc-veteran")["criticalIllnesses"]
    assert illnesses == [{"ciCode": "N185", "validityStart": "1100101", "validityEnd": "1191231"}]
    assert twin.done("Treatment/NoNeedHPC", "hc-veteran")["criticalIllnesses"] == [
        {"validityStart": "1100101", "validityEnd": "1191231"}
    ]


# --- treatment numbers: no card, and the seed's 2022 form ------------------------------------------------


def _treat_num_body(twin: Twin, hexed: bool, service_type: str = "11", **extra: Any) -> dict[str, Any]:
    sam = twin.sams.main
    random = secrets.token_bytes(8)
    signature = sam.sign(signature_input(random, sam.sam_id, sam.hospital_id, service_type))
    encode = (lambda raw: raw.hex().upper()) if hexed else b64
    return {
        "sSamid": sam.sam_id,
        "sHospid": sam.hospital_id,
        "sClientrandom": encode(random),
        "sSignature": encode(signature),
        "sCardType": "3",
        "sPatientId": "R88855084A",
        "sTreatDT": roc_date_time(START),
        **extra,
    }


@pytest.mark.parametrize("hexed", [True, False], ids=["hex", "base64"])
def test_treat_num_takes_the_seeds_form_hex_or_base64(twin: Twin, hexed: bool) -> None:
    body = _treat_num_body(twin, hexed, sCardId="900000000711")
    if hexed:
        assert len(body["sSignature"]) == 512
    reply = twin.call(TREAT_NUM_PATH, body)
    assert reply.status == 200 and reply.body["RtnCode"] == "0000" and reply.body["statusCode"] == 0
    number = reply.body["TreatNum"]
    assert isinstance(number, str) and len(number) == 20
    no_card = twin.done("TreatmentNumber/NoCard", None, patientId="R88855084A")
    assert no_card["treatmentDateTime"] == body["sTreatDT"] and no_card["treatmentNumber"] == number


def test_treat_num_refusals_answer_rtn_code_and_change_nothing(twin: Twin) -> None:
    future = roc_date_time(START + datetime.timedelta(seconds=1))
    for body, code in (
        (_treat_num_body(twin, True, sTreatDT=future), Code.TREATMENT_NUMBER_FAILED),
        (_treat_num_body(twin, False, service_type="03"), Code.SIGNATURE_INVALID),
        (_treat_num_body(twin, True, sPatientId="A123456789"), Code.NOT_INSURED),
        (_treat_num_body(twin, True, sCardId="900000000728"), Code.NOT_INSURED),
    ):
        reply = twin.refused(TREAT_NUM_PATH, body, code)
        assert reply.body["RtnCode"] == f"{int(code):04d}" and reply.body["TreatNum"] is None
    for bad in ({"sCardType": "1"}, {"sTreatDT": "1140230100000"}, {"sSignature": "zz"}):
        reply = twin.refused(TREAT_NUM_PATH, _treat_num_body(twin, True, **bad), Code.BAD_REQUEST, status=400)
        assert reply.body["RtnCode"] == "1704" and reply.body["TreatNum"] is None


# --- tele-medicine ------------------------------------------------------------------------------------------


def test_tele_medicine_request_then_response_gives_the_persons_virtual_card(twin: Twin) -> None:
    access = twin.done("TeleMedicine/RequestToken", None, patientId="F129876548")["accessToken"]
    response = API + "TeleMedicine/ResponseToken"
    twin.refused(response, {**twin.sign(Kind.SAM, "01", sam=twin.sams.other), "accessToken": access}, 3211)
    token = twin.done("TeleMedicine/ResponseToken", None, accessToken=access)["virtualCardToken"]
    parsed = verify_token(token, issuers=[twin.issuer], now=int(START.timestamp()))
    assert (parsed.card_id, parsed.id_no, parsed.hospital_id) == ("900000000735", "F129876548", HOSPITAL)
    twin.refused(response, {**twin.sign(Kind.SAM, "01"), "accessToken": access}, Code.ACCESS_TOKEN_UNKNOWN)
    assert "accessTokens" in twin.snapshot() and twin.snapshot()["accessTokens"] == 0
    assert access not in json.dumps(twin.snapshot()) and token not in json.dumps(twin.snapshot())


def test_tele_medicine_refusals(twin: Twin) -> None:
    request = API + "TeleMedicine/RequestToken"
    twin.refused(request, {**twin.sign(Kind.SAM, "01"), "patientId": "A123456789"}, Code.NOT_INSURED)
    access = twin.done("TeleMedicine/RequestToken", None, patientId="R88855084A")["accessToken"]
    later(twin, 601)
    response = {**twin.sign(Kind.SAM, "01"), "accessToken": access}
    twin.refused(API + "TeleMedicine/ResponseToken", response, Code.ACCESS_TOKEN_EXPIRED)


# --- faults, controls, persistence ----------------------------------------------------------------------------


def _controls(twin: Twin) -> WebApiControls:
    return WebApiControls(twin.state, "https://localhost:1", "PEM", twin.signer)


def _control(controls: WebApiControls, method: str, path: str, body: Any = None) -> Reply:
    return controls.handle(
        Request(method, "/sim/v1/WebApi" + path, {}, b"" if body is None else json.dumps(body).encode())
    )


def test_faults_come_first_and_are_counted(twin: Twin) -> None:
    controls = _controls(twin)
    good = {**twin.sign(Kind.HC, "01")}
    assert _control(controls, "POST", "/Faults", {"fault": "timeout", "count": 1, "seconds": 2}).status == 200
    stall = twin.service.handle(Request("POST", API + "NoSuch", {}, b"x"))
    assert stall == Stall(2.0)
    assert _control(controls, "POST", "/Faults", {"fault": "http500", "count": 2}).status == 200
    for _ in range(2):
        outcome = twin.service.handle(Request("POST", API + "BasicData/Query", {}, json.dumps(good).encode()))
        assert isinstance(outcome, RawReply) and outcome.status == 500
    assert _control(controls, "POST", "/Faults", {"fault": "unreadable", "count": 1}).status == 200
    outcome = twin.service.handle(Request("POST", API + "BasicData/Query", {}, json.dumps(good).encode()))
    assert isinstance(outcome, RawReply) and outcome.status == 200 and outcome.payload == UNREADABLE_PAYLOAD
    with pytest.raises(ValueError):
        json.loads(outcome.payload)
    assert twin.call(API + "BasicData/Query", good).body["statusCode"] == 0
    for bad in ({"fault": "slow", "count": 1}, {"fault": "timeout", "count": 0}, {"fault": "http500", "count": 1.5}):
        assert _control(controls, "POST", "/Faults", bad).status == 400


def test_controls_say_where_show_the_state_and_reset_it(twin: Twin) -> None:
    controls = _controls(twin)
    assert _control(controls, "GET", "").body == {"baseUrl": "https://localhost:1", "caPem": "PEM"}
    twin.done("SequelNumber/Next", **NEXT)
    state: Any = _control(controls, "GET", "/State").body
    assert len(state["visits"]) == 1 and state["signaturesSeen"] == 1
    assert str(state["signerCertificate"]).startswith("-----BEGIN CERTIFICATE-----")
    basic = next(card for card in state["cards"] if card["profile"] == "hc-basic")
    assert basic == {
        "cardId": "900000000711",
        "profile": "hc-basic",
        "cardValidity": "1391231",
        "treatmentCounter": 5,
        "lastSequenceNumber": 1,
    }
    assert _control(controls, "POST", "/Reset").status == 200
    after: Any = _control(controls, "GET", "/State").body
    assert after["visits"] == [] and after["signaturesSeen"] == 0
    assert next(card for card in after["cards"] if card["profile"] == "hc-basic")["treatmentCounter"] == 6
    assert _control(controls, "GET", "/Nothing").status == 404


def test_the_state_survives_a_restart(tmp_path: Path, twin: Twin) -> None:
    twin.done("SequelNumber/Next", **NEXT)
    before = twin.snapshot()
    twin.state.close()
    twin.state = WebApiState(tmp_path / "state.db")  # what a restarted DC simulator opens (the fixture closes it)
    assert twin.snapshot() == before


def test_the_signer_is_made_once_and_kept(tmp_path: Path) -> None:
    first = Signer.ensure(tmp_path / "signer.key", tmp_path / "signer.pem")
    second = Signer.ensure(tmp_path / "signer.key", tmp_path / "signer.pem")
    assert first.certificate == second.certificate
    assert (tmp_path / "signer.key").stat().st_mode & 0o777 == 0o600
    pem = second.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert pem == (tmp_path / "signer.key").read_bytes()
