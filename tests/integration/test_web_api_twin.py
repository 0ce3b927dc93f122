"""The NHI web-API twin through the running console in `--sim` mode (issue 21): the console signs, the twin
checks, over real HTTPS verified against the CA the bench hands out.

One console for the module (its state grows from test to test, in file order), restarted once at the end.
"""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sim.web_api.client import WebApiAnswer, WebApiClient
from tests.integration.console import RunningConsole, descendants, start_console
from tests.typed_secrets import PROFILE_PIN, remember

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BENCH_SAM_ID = "901000000047"
BENCH_HOSPITAL = "777777777"
HC_CARD = f"/api/sim/v1/Readers/{quote('NHI Sim Reader 0')}/Card"
NEXT = {"treatmentItem": "01", "babyTreatment": " ", "afterCheck": "1"}
SIGNATURE_FIELDS = ("clientRandom", "hospitalId", "samId", "signature", "hcId", "hcIdNo", "hpcId", "hpcIdNo")


class Bench:
    """The module's console, restartable on the same data dir; every process it started is killed at the end."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.started: set[int] = set()
        self.console = self._start()

    def _start(self) -> RunningConsole:
        console = start_console(self.data_dir)
        self.started |= {console.process.pid} | descendants(console.process.pid)
        return console

    def restart(self) -> None:
        self.console.stop()
        self.console = self._start()

    def close(self) -> None:
        self.console.stop()
        for pid in self.started | descendants(self.console.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    running = Bench(tmp_path_factory.mktemp("web-api") / "data")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def console(bench: Bench) -> RunningConsole:
    return bench.console


def call(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return dict(answer.body)


def twin(console: RunningConsole, timeout: float = 10) -> WebApiClient:
    return WebApiClient.from_bench(call(console, "GET", "/api/sim/v1/WebApi"), timeout)


def twin_state(console: RunningConsole) -> dict[str, Any]:
    return call(console, "GET", "/api/sim/v1/WebApi/State")


def open_session(console: RunningConsole, sam_id: str = BENCH_SAM_ID) -> None:
    console.request("POST", "/api/common/v1/Finalize", timeout=70)
    assert call(console, "POST", "/api/common/v1/Initial", {"name": sam_id})["statusCode"] == 0
    assert call(console, "POST", "/api/sam/v1/Verification")["statusCode"] == 0


def signed(console: RunningConsole, path: str, service_type: str) -> dict[str, Any]:
    """The console's signature (`/api/sam/v1/Signature`, `/api/hc/v1/Signature/Hc` or `/HpcHc`) as a twin body."""
    answer = call(console, "POST", path, {"serviceType": service_type})
    assert answer["statusCode"] == 0, answer
    return {name: answer[name] for name in SIGNATURE_FIELDS if name in answer}


def sam(console: RunningConsole, service_type: str) -> dict[str, Any]:
    return signed(console, "/api/sam/v1/Signature", service_type)


def hc(console: RunningConsole, service_type: str) -> dict[str, Any]:
    return signed(console, "/api/hc/v1/Signature/Hc", service_type)


def hpc_hc(console: RunningConsole, service_type: str) -> dict[str, Any]:
    if call(console, "GET", "/api/common/v1/Status")["status"]["hpc"]["status"] < 3:
        assert call(console, "POST", "/api/hpc/v1/Verification/Hpc", {"pin": PROFILE_PIN})["statusCode"] == 0
    return signed(console, "/api/hc/v1/Signature/HpcHc", service_type)


def done(client: WebApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, body)
    assert answer.status == 200 and answer.body["statusCode"] == 0, answer.body
    return dict(answer.body)


def refused(console: RunningConsole, path: str, body: dict[str, Any], code: int) -> WebApiAnswer:
    """Refused with `code` and a message, the twin's whole state as it was."""
    before = twin_state(console)
    answer = twin(console).post(path, body)
    assert answer.status == 200 and answer.body["statusCode"] == code, answer.body
    assert answer.body["message"]
    assert twin_state(console) == before
    return answer


def put_card(console: RunningConsole, profile: str) -> None:
    assert console.request("PUT", HC_CARD, {"profile": profile}, timeout=20).status == 200
    open_session(console)


# --- where, TLS, faults ----------------------------------------------------------------------------------


def test_the_bench_says_where_the_twin_is_and_it_answers_over_verified_tls(console: RunningConsole) -> None:
    where = call(console, "GET", "/api/sim/v1/WebApi")
    assert set(where) == {"statusCode", "baseUrl", "caPem"} and where["statusCode"] == 0
    assert where["baseUrl"].startswith("https://localhost:")
    assert where["caPem"].startswith("-----BEGIN CERTIFICATE-----")
    client = twin(console)
    missing = client.post("/api/v1/BasicData/Query", {"samId": BENCH_SAM_ID})
    assert missing.status == 400 and missing.body["statusCode"] == 1704
    assert client.post("/api/v1/NoSuch/Path", {}).status == 404
    with pytest.raises(OSError):  # the console's own CA does not vouch for the twin
        WebApiClient(where["baseUrl"], console.ca_file.read_text()).post("/TreatNum", {})

    assert console.request("POST", "/api/sim/v1/WebApi/Faults", {"fault": "http500", "count": 1}).status == 200
    assert client.post("/api/v1/BasicData/Query", {}).status == 500
    assert console.request("POST", "/api/sim/v1/WebApi/Faults", {"fault": "unreadable", "count": 1}).status == 200
    unreadable = client.post("/api/v1/BasicData/Query", {})
    assert unreadable.status == 200 and unreadable.body is None
    faults = {"fault": "timeout", "count": 1, "seconds": 3}
    assert console.request("POST", "/api/sim/v1/WebApi/Faults", faults).status == 200
    with pytest.raises(TimeoutError):
        client.post("/api/v1/BasicData/Query", {}, timeout=0.5)
    assert client.post("/api/v1/BasicData/Query", {}).status == 400  # the faults are used up
    bad = console.request("POST", "/api/sim/v1/WebApi/Faults", {"fault": "slow", "count": 1})
    assert bad.status == 400 and bad.body["message"]


# --- a visit, signed by the console, kept by the twin -------------------------------------------------------


def test_a_visit_is_one_story_from_registration_to_prescriptions(console: RunningConsole) -> None:
    open_session(console)
    client = twin(console)
    register = done(client, "/api/v1/BasicData/Register", hc(console, "01"))
    assert (register["cardSn"], register["idCardNum"], register["name"]) == ("900000000711", "R88855084A", "測試資料")
    counter = register["treatmentCounter"]
    taken = done(client, "/api/v1/SequelNumber/Next", {**hc(console, "03"), **NEXT})
    when, number = taken["treatmentDateTime"], taken["treatmentNumber"]
    assert len(when) == 13 and len(taken["sequenceNumber"]) == 4 and len(number) == 20
    assert (taken["hospitalId"], taken["samId"]) == (BENCH_HOSPITAL, BENCH_SAM_ID)
    assert done(client, "/api/v1/BasicData/Register2", hc(console, "01"))["treatmentCounter"] == counter - 1
    visits = done(client, "/api/v1/Treatment/NoNeedHPC", hc(console, "01"))["treatments"]
    assert visits[0]["treatDateTime"] == when and visits[0]["hospitalVisit"] == taken["sequenceNumber"]
    card = {**hc(console, "03"), "treatmentDateTime": when}
    assert done(client, "/api/v1/TreatmentNumber/Card", card)["treatmentNumber"] == number

    codes = {"treatmentDateTime": when, "afterCheck": "1", "mainCode": "J069", "outpatientFee": 350, "costFee": 50}
    done(client, "/api/v1/Treatment/WriteCodeFee", {**hc(console, "02"), **codes})
    item = {
        "treatmentDateTime": when,
        "treatmentItem": "1",
        "treatmentItemCode": "A000001100",
        "treatmentPosition": "",
        "usage": "TID",
        "days": "3",
        "totalQuantity": "9.00",
        "deliveryNotes": "01",
    }
    written = done(
        client, "/api/v1/Prescription/Write", {**hc(console, "02"), "treatmentDateTime": when, "prescriptions": [item]}
    )
    assert base64.b64decode(written["signatureItems"][0]) == bytes.fromhex(written["hexSignatureItems"][0])
    need = done(client, "/api/v1/Treatment/NeedHPC", {**hpc_hc(console, "01"), "format": "0"})
    assert need["treatments"][0] == {
        "treatDateTime": when,
        "mainCode": "J069",
        "subCode1": "",
        "subCode2": "",
        "subCode3": "",
    }
    query = done(client, "/api/v1/Prescription/Query", hpc_hc(console, "01"))["outpatientPrescriptions"]
    assert query[0]["treatmentItemCode"] == "A000001100" and "deliveryNotes" not in query[0]

    second = done(client, "/api/v1/SequelNumber/Next", {**hc(console, "03"), **NEXT})
    assert second["isSameDay"] is True
    rollback = {**hc(console, "03"), "treatmentDateTime": second["treatmentDateTime"]}
    assert done(client, "/api/v1/SequelNumber/Rollback", rollback) == {"statusCode": 0}
    after = done(client, "/api/v1/Treatment/NoNeedHPC", hc(console, "01"))["treatments"]
    assert [visit["treatDateTime"] for visit in after] == [when]


# --- refusals that change nothing ----------------------------------------------------------------------------


def test_refusals_change_nothing(console: RunningConsole) -> None:
    open_session(console)
    good = {**hc(console, "03"), **NEXT}
    signature = bytearray(base64.b64decode(good["signature"]))
    signature[100] ^= 0x80
    refused(console, "/api/v1/SequelNumber/Next", {**good, "signature": base64.b64encode(signature).decode()}, 3100)
    other_type = refused(console, "/api/v1/SequelNumber/Next", {**hc(console, "01"), **NEXT}, 3100)
    assert "service type 01" in other_type.body["message"]

    # Another hospital's SAM: a HIS of hospital 777777777 sending what a SAM of 777777778 signed.
    other = "901000000501"
    context = call(
        console, "POST", "/api/sim/v1/CloudSam", {"samId": other, "hospitalId": "777777778", "contract": "active"}
    )
    imported = {"samId": other, "hospitalId": "777777778", "cloudSamContext": context["cloudSamContext"]}
    assert call(console, "POST", "/api/settings/v1/CloudSam", imported)["statusCode"] == 0
    open_session(console, other)
    no_card = {**sam(console, "03"), "patientId": "R88855084A"}
    assert no_card["hospitalId"] == "777777778"
    refused(console, "/api/v1/TreatmentNumber/NoCard", {**no_card, "hospitalId": BENCH_HOSPITAL}, 3211)

    # A revoked SAM: it signed while in good standing, then the DC revoked it.
    revoked = "901000000502"
    issued = {"samId": revoked, "hospitalId": BENCH_HOSPITAL, "contract": "active"}
    context = call(console, "POST", "/api/sim/v1/CloudSam", issued)
    imported = {"samId": revoked, "hospitalId": BENCH_HOSPITAL, "cloudSamContext": context["cloudSamContext"]}
    assert call(console, "POST", "/api/settings/v1/CloudSam", imported)["statusCode"] == 0
    open_session(console, revoked)
    before_revocation = {**sam(console, "03"), "patientId": "R88855084A"}
    call(console, "POST", "/api/sim/v1/CloudSam", {**issued, "contract": "revoked"})
    refused(console, "/api/v1/TreatmentNumber/NoCard", before_revocation, 1304)
    open_session(console)
    assert done(twin(console), "/api/v1/SequelNumber/Next", good)["statusCode"] == 0  # the untouched signature works


def test_an_expired_card_and_a_card_with_no_visits_left_until_updated(console: RunningConsole) -> None:
    client = twin(console)
    for profile, code in (("hc-expired", 3201), ("hc-counter-zero", 3213)):
        put_card(console, profile)
        refused(console, "/api/v1/SequelNumber/Next", {**hc(console, "03"), **NEXT}, code)
        assert done(client, "/api/v1/HcContent/Update", hc(console, "04")) == {"statusCode": 0}
        assert done(client, "/api/v1/BasicData/Register2", hc(console, "01"))["treatmentCounter"] == 6
        assert done(client, "/api/v1/SequelNumber/Next", {**hc(console, "03"), **NEXT})["sequenceNumber"] == "0001"
    put_card(console, "hc-basic")


# --- the treatment number, both ways -----------------------------------------------------------------------------


def test_the_treatment_number_without_a_card_both_ways(console: RunningConsole) -> None:
    open_session(console)
    client = twin(console)
    no_card = done(client, "/api/v1/TreatmentNumber/NoCard", {**sam(console, "03"), "patientId": "R88855084A"})
    assert len(no_card["treatmentNumber"]) == 20 and len(no_card["treatmentDateTime"]) == 13
    for hexed in (False, True):
        signature = sam(console, "11")
        random, raw = (base64.b64decode(signature[name]) for name in ("clientRandom", "signature"))
        seed_form = {
            "sSamid": signature["samId"],
            "sHospid": signature["hospitalId"],
            "sClientrandom": random.hex() if hexed else signature["clientRandom"],
            "sSignature": raw.hex().upper() if hexed else signature["signature"],
            "sCardType": "3",
            "sCardId": "900000000711",
            "sPatientId": "R88855084A",
            "sTreatDT": no_card["treatmentDateTime"],
        }
        answer = client.post("/TreatNum", seed_form)
        assert answer.status == 200 and answer.body["RtnCode"] == "0000", answer.body
        assert answer.body["TreatNum"] == no_card["treatmentNumber"]  # the same hospital, person and time
    wrong_type = {**seed_form, "sSignature": sam(console, "03")["signature"]}
    assert client.post("/TreatNum", wrong_type).body["RtnCode"] == "3100"


# --- tele-medicine ----------------------------------------------------------------------------------------------


def test_tele_medicine_gives_a_virtual_card_the_console_accepts(console: RunningConsole) -> None:
    open_session(console)
    client = twin(console)
    access = remember(
        done(client, "/api/v1/TeleMedicine/RequestToken", {**sam(console, "01"), "patientId": "F129876548"})[
            "accessToken"
        ]
    )
    token = remember(
        done(client, "/api/v1/TeleMedicine/ResponseToken", {**sam(console, "01"), "accessToken": access})[
            "virtualCardToken"
        ]
    )
    assert call(console, "POST", "/api/hc/v1/Verification/VirtualHc", {"token": token}) == {"statusCode": 0}
    basic = call(console, "GET", "/api/hc/v1/Basic")
    assert (basic["idNo"], basic["cardId"], basic["name"]) == ("F129876548", "900000000735", "陳測試")
    refused(console, "/api/v1/TeleMedicine/ResponseToken", {**sam(console, "01"), "accessToken": access}, 3237)


# --- the bench clock, a restart ---------------------------------------------------------------------------------


def test_a_signature_is_refused_8_hours_after_the_twin_first_saw_it(console: RunningConsole) -> None:
    open_session(console)
    client = twin(console)
    body = hc(console, "01")
    assert done(client, "/api/v1/BasicData/Register2", body)["statusCode"] == 0
    assert call(console, "POST", "/api/sim/v1/Clock", {"advanceSeconds": 28801})["serverTime"]
    answer = refused(console, "/api/v1/BasicData/Register2", body, 3100)
    assert "8 hours" in answer.body["message"]


def test_the_twins_state_survives_a_console_restart(bench: Bench) -> None:
    before = twin_state(bench.console)
    assert before["visits"]
    bench.restart()
    console = bench.console
    assert twin_state(console) == before
    open_session(console)
    shown = done(twin(console), "/api/v1/Treatment/NoNeedHPC", hc(console, "01"))["treatments"]
    kept = [
        visit["treatmentDateTime"]
        for visit in before["visits"]
        if visit["cardId"] == "900000000711" and not visit["rolledBack"]
    ]
    assert {visit["treatDateTime"] for visit in shown} == set(kept[-6:])
