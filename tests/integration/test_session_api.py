"""The session, the SAM and the DC through the running console in `--sim` mode (issue 5).

Everything is real here: the console's processes, its TLS, the DC simulator
as its own HTTPS process, the DC client, the bench's cards in their readers.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import signal
import stat
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from broker.credentials.cloud_sam_file import MAGIC, parse_cloud_sam_file
from tests.integration.console import RunningConsole, alive, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STATUS = "/api/common/v1/Status"
INITIAL = "/api/common/v1/Initial"
FINALIZE = "/api/common/v1/Finalize"
NAME = "/api/common/v1/Name"
SERVER_TIME = "/api/common/v1/ServerDateTime"
SAM_BASIC = "/api/sam/v1/Basic"
SAM_VERIFY = "/api/sam/v1/Verification"
SAM_LOGOUT = "/api/sam/v1/Logout"
SAM_SIGN = "/api/sam/v1/Signature"
CLOUD_SAM = "/api/settings/v1/CloudSam"
HC_BASIC = "/api/hc/v1/Basic"
BENCH_SAM = "/api/sim/v1/CloudSam"
BENCH_FAULTS = "/api/sim/v1/Dc/Faults"
BENCH_CLOCK = "/api/sim/v1/Clock"

BENCH_SAM_ID = "901000000047"
HC_BASIC_PROFILE = {
    "statusCode": 0,
    "cardId": "900000000711",
    "name": "測試資料",
    "idNo": "R88855084A",
    "birthday": "0741201",
    "sex": "F",
    "dateIssue": "1070101",
    "identityStatus": "3",
}
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2})$")


def status(console: RunningConsole) -> dict[str, Any]:
    answer = console.request("GET", STATUS)
    assert answer.status == 200 and answer.body["statusCode"] == 0
    return answer.body["status"]


def code(console: RunningConsole, method: str, path: str, body: Any = None) -> int:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return int(answer.body["statusCode"])


def event_types(console: RunningConsole) -> list[str]:
    return [row[0] for row in console.database_rows("SELECT type FROM events ORDER BY seq")]


def new_bench_sam(console: RunningConsole, sam_id: str, contract: str, hospital_id: str = "777777777") -> str:
    answer = console.request("POST", BENCH_SAM, {"samId": sam_id, "hospitalId": hospital_id, "contract": contract})
    assert answer.status == 200, answer.body
    return str(answer.body["cloudSamContext"])


def import_sam(console: RunningConsole, context: str, sam_id: str, hospital_id: str = "777777777") -> dict[str, Any]:
    answer = console.request(
        "POST", CLOUD_SAM, {"samId": sam_id, "hospitalId": hospital_id, "cloudSamContext": context}
    )
    assert answer.status == 200
    return dict(answer.body)


# --- COMMON: Name, Initial, Finalize, ServerDateTime --------------------------------------------


def test_initial_without_a_name_opens_the_bench_sam_and_verifies_it(console: RunningConsole) -> None:
    names = console.request("GET", NAME).body
    assert names["statusCode"] == 0 and names["names"][0] == BENCH_SAM_ID
    # then the serial ports: the bench reader's by its Windows name, COM1, then any the machine lists
    assert names["names"][1] == "COM1" and all(name.startswith("/") for name in names["names"][2:])

    assert status(console)["initialized"] is False
    assert code(console, "POST", INITIAL) == 0
    after = status(console)
    assert after["initialized"] is True and after["name"] == BENCH_SAM_ID
    assert after["readerName"] == "NHI Sim Reader 0"
    assert after["sam"]["status"] == 2 and after["sam"]["type"] == 1
    assert ISO_WITH_OFFSET.match(after["sam"]["expireTime"])
    assert after["hc"]["status"] == 1 and after["hc"]["type"] == 1  # the health card in the default reader
    assert code(console, "POST", INITIAL) == 1001
    assert code(console, "POST", INITIAL, {"name": BENCH_SAM_ID}) == 1001

    basic = console.request("GET", SAM_BASIC).body
    assert basic == {
        "statusCode": 0,
        "samId": BENCH_SAM_ID,
        "hospitalId": "777777777",
        "hospitalName": "測試機構",
        "hospitalShortName": "測試機構",
    }

    answer = console.request("GET", SERVER_TIME, timeout=70).body
    assert answer["statusCode"] == 0 and re.fullmatch(r"\d{13}", answer["serverDateTime"])
    taipei = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8)))
    shown = answer["serverDateTime"]
    dc_time = datetime.datetime(
        int(shown[:3]) + 1911,
        int(shown[3:5]),
        int(shown[5:7]),
        int(shown[7:9]),
        int(shown[9:11]),
        int(shown[11:13]),
        tzinfo=taipei.tzinfo,
    )
    assert abs((dc_time - taipei).total_seconds()) < 120

    assert code(console, "POST", FINALIZE) == 0
    finalized = status(console)
    assert finalized == {
        "hc": {"status": 0, "type": 0, "expireTime": None, "hasPin": None, "verifiedPin": None},
        "hpc": {"status": 0, "type": 0, "expireTime": None},
        "initialized": False,
        "name": None,
        "readerName": None,
        "sam": {"status": 0, "type": 0, "expireTime": None},
    }
    assert code(console, "POST", FINALIZE) == 1000


def test_initial_with_a_name_and_with_an_unknown_one(console: RunningConsole) -> None:
    assert code(console, "POST", INITIAL, {"name": "999999999999"}) == 1002
    assert code(console, "POST", INITIAL, {"name": "/dev/no-such-port"}) == 1002
    assert status(console)["initialized"] is False
    assert code(console, "POST", INITIAL, {"name": BENCH_SAM_ID}) == 0
    assert status(console)["name"] == BENCH_SAM_ID
    bad = console.request("POST", INITIAL, {"name": 7})
    assert bad.status == 400 and bad.body["statusCode"] == 1704


def test_initial_without_a_name_tries_the_last_device_first(console: RunningConsole) -> None:
    second = "901000000101"
    import_sam(console, new_bench_sam(console, second, "active"), second)
    assert code(console, "POST", INITIAL, {"name": second}) == 0
    assert code(console, "POST", FINALIZE) == 0
    assert code(console, "POST", INITIAL) == 0
    assert status(console)["name"] == second  # the last one connected, though 901000000047 sorts first


def test_session_calls_before_initial_answer_1000(console: RunningConsole) -> None:
    for method, path, body in (
        ("GET", SAM_BASIC, None),
        ("POST", SAM_VERIFY, None),
        ("DELETE", SAM_LOGOUT, None),
        ("POST", SAM_SIGN, {"serviceType": "01"}),
        ("GET", SERVER_TIME, None),
        ("POST", FINALIZE, None),
        ("GET", HC_BASIC, None),
    ):
        assert code(console, method, path, body) == 1000, path
    assert status(console)["sam"]["status"] == 0


# --- the SAM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contract", "expected"), [("expired", 1302), ("suspended", 1303), ("revoked", 1304), ("active", 0)]
)
def test_verification_answers_each_contract_state(console: RunningConsole, contract: str, expected: int) -> None:
    sam_id = {
        "expired": "901000000201",
        "suspended": "901000000202",
        "revoked": "901000000203",
        "active": "901000000204",
    }[contract]
    imported = import_sam(console, new_bench_sam(console, sam_id, contract, "777777778"), sam_id, "777777778")
    assert imported["statusCode"] == 0
    assert imported["sam"]["samId"] == sam_id and imported["sam"]["hospitalId"] == "777777778"
    assert imported["sam"]["hospitalName"] == "測試機構" and imported["sam"]["comport"].startswith("COMX")

    assert code(console, "POST", INITIAL, {"name": sam_id}) == 0  # the device opened; the DC decides the rest
    assert status(console)["sam"]["status"] == (2 if expected == 0 else 1)
    assert code(console, "POST", SAM_VERIFY) == expected
    after = status(console)
    assert after["sam"]["status"] == (2 if expected == 0 else 1) and after["initialized"] is True
    if expected:
        assert code(console, "GET", HC_BASIC) == expected  # SAM level 2 cannot be reached: its own code
        failures = [
            json.loads(row[0])
            for row in console.database_rows("SELECT payload FROM events WHERE type = 'SamVerificationFailed'")
        ]
        assert failures[-1]["code"] == expected


def test_dc_down_during_verification_and_the_state_after_it(console: RunningConsole) -> None:
    assert code(console, "POST", INITIAL) == 0
    assert code(console, "DELETE", SAM_LOGOUT) == 0
    assert status(console)["sam"]["status"] == 1
    # Sam/Challenge is retried once after a 1700 (it changes nothing at the DC): two failures make the DC "down".
    assert console.request("POST", BENCH_FAULTS, {"statusCode": 1700, "count": 2}).status == 200
    assert code(console, "POST", SAM_VERIFY) == 1700
    after = status(console)
    assert after["sam"] == {"status": 1, "type": 1, "expireTime": None} and after["initialized"] is True
    assert code(console, "POST", SAM_VERIFY) == 0  # the DC is back
    assert status(console)["sam"]["status"] == 2

    assert console.request("POST", BENCH_FAULTS, {"statusCode": 1702, "count": 2}).status == 200
    assert code(console, "POST", SAM_VERIFY) == 1702
    assert status(console)["sam"]["status"] == 2  # a DC that cannot answer says nothing about the SAM


def test_a_session_the_dc_says_expired_is_renewed_and_the_call_answered(console: RunningConsole) -> None:
    assert code(console, "POST", INITIAL) == 0
    assert console.request("POST", BENCH_FAULTS, {"statusCode": 1703, "count": 1}).status == 200
    assert code(console, "GET", SERVER_TIME) == 0
    types = event_types(console)
    assert types.index("SamSessionExpired") < len(types) - 1 and types[-1] == "SamVerified"


def test_an_expiring_dc_session_is_verified_again_by_itself(console: RunningConsole) -> None:
    assert code(console, "POST", INITIAL) == 0
    before = status(console)["sam"]["expireTime"]
    assert console.request("POST", BENCH_CLOCK, {"advanceSeconds": 3700}).status == 200
    wait_for(
        lambda: status(console)["sam"]["expireTime"] not in (before, None) and status(console)["sam"]["status"] == 2,
        15,
        "the SAM verified again with a later expiry",
    )
    renewed = datetime.datetime.fromisoformat(status(console)["sam"]["expireTime"])
    assert renewed > datetime.datetime.fromisoformat(before) + datetime.timedelta(seconds=3600)
    types = event_types(console)
    assert "SamSessionExpired" in types and types.count("SamVerified") >= 2


def test_sam_logout_then_a_health_card_call_elevates_again(console: RunningConsole) -> None:
    assert code(console, "POST", INITIAL) == 0
    assert console.request("GET", HC_BASIC, timeout=70).body == HC_BASIC_PROFILE
    assert status(console)["hc"]["status"] == 2
    assert code(console, "DELETE", SAM_LOGOUT) == 0
    after = status(console)
    assert after["sam"]["status"] == 1 and after["hc"]["status"] == 0 and after["hpc"]["status"] == 0
    assert console.request("GET", HC_BASIC, timeout=70).body == HC_BASIC_PROFILE
    again = status(console)
    assert again["sam"]["status"] == 2 and again["hc"]["status"] == 2 and again["hc"]["type"] == 1


def test_sam_signature_verifies_with_the_sams_certificate(console: RunningConsole) -> None:
    sam_id = "901000000301"
    context = new_bench_sam(console, sam_id, "active")
    certificate = parse_cloud_sam_file(base64.b64decode(context)).certificate
    import_sam(console, context, sam_id)
    assert code(console, "POST", INITIAL, {"name": sam_id}) == 0
    answers = [console.request("POST", SAM_SIGN, {"serviceType": "01"}, timeout=70).body for _ in range(2)]
    for answer in answers:
        assert answer["statusCode"] == 0
        assert answer["samId"] == sam_id and answer["hospitalId"] == "777777777" and answer["serviceType"] == "01"
        client_random = base64.b64decode(answer["clientRandom"], validate=True)
        signature = base64.b64decode(answer["signature"], validate=True)
        assert len(client_random) == 8 and len(signature) == 256
        signed = client_random + sam_id.encode() + b"777777777" + b"01"
        key = certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    assert answers[0]["clientRandom"] != answers[1]["clientRandom"]
    for bad in ({"serviceType": "011"}, {"serviceType": 1}, {}):
        refused = console.request("POST", SAM_SIGN, bad)
        assert refused.status == 400 and refused.body["statusCode"] == 1704


# --- SETTING: cloud SAMs ------------------------------------------------------------------------------


def test_cloud_sam_import_list_remove_and_the_file_never_leaks(console: RunningConsole) -> None:
    assert console.request("GET", CLOUD_SAM).body == {"statusCode": 0, "sams": [BENCH_SAM_ID]}
    sam_id = "901000000401"
    context = new_bench_sam(console, sam_id, "active")
    raw = base64.b64decode(context)
    assert raw.startswith(MAGIC)

    for refused in (
        {"cloudSamContext": "not base64!"},
        {"cloudSamContext": base64.b64encode(b"NHICSAM1\n{not json").decode()},
        {"cloudSamContext": base64.b64encode(b"\x00" * 300).decode()},
        {"cloudSamContext": context, "samId": "901000000402"},
        {"cloudSamContext": context, "hospitalId": "12345"},
    ):
        assert code(console, "POST", CLOUD_SAM, refused) == 1610
    assert console.request("GET", CLOUD_SAM).body["sams"] == [BENCH_SAM_ID]

    imported = import_sam(console, context, sam_id)
    assert imported["statusCode"] == 0 and imported["sam"]["samId"] == sam_id
    assert console.request("GET", CLOUD_SAM).body["sams"] == [BENCH_SAM_ID, sam_id]
    stored = console.data_dir / "sim-cloud-sams" / f"{sam_id}.sam"
    assert stored.read_bytes() == raw and stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert console.request("GET", NAME).body["names"][:2] == [BENCH_SAM_ID, sam_id]

    assert code(console, "POST", INITIAL, {"name": sam_id}) == 0
    assert code(console, "DELETE", f"{CLOUD_SAM}/999999999999") == 1611
    assert code(console, "DELETE", f"{CLOUD_SAM}/{sam_id}") == 0
    assert not stored.exists()
    assert console.request("GET", CLOUD_SAM).body["sams"] == [BENCH_SAM_ID]
    assert status(console)["initialized"] is False  # the session's SAM is gone, so is the session
    assert code(console, "DELETE", f"{CLOUD_SAM}/{sam_id}") == 1611

    # Neither the file, nor its key, nor the context appears in the log, the record or the console's output.
    key_body = json.loads(raw[len(MAGIC) :])["privateKey"].splitlines()[5]
    secrets = [context[40:100], key_body]
    rows = console.database_rows("SELECT payload FROM events") + console.database_rows("SELECT url FROM calls")
    dumped = "\n".join(str(row) for row in rows) + console.log_path.read_text(errors="replace")
    for secret in secrets:
        assert secret not in dumped


# --- HC: basic data ---------------------------------------------------------------------------------------


def test_hc_basic_on_hc_basic_gives_the_profiles_data(console: RunningConsole) -> None:
    assert code(console, "POST", INITIAL) == 0
    answer = console.request("GET", HC_BASIC, timeout=70)
    assert answer.status == 200 and answer.body == HC_BASIC_PROFILE
    after = status(console)
    assert after["hc"]["status"] == 2 and after["readerName"] == "NHI Sim Reader 0"
    assert {"CardDetected", "CardAuthenticated"} <= set(event_types(console))
    # Removing the card drops it to 0; without a health card the call says which level failed.
    assert console.request("DELETE", "/api/sim/v1/Readers/NHI%20Sim%20Reader%200/Card").status == 200
    assert status(console)["hc"]["status"] == 0
    assert code(console, "GET", HC_BASIC) == 1102
    records = console.request("GET", "/api/common/v1/Record?take=3").body
    assert [record["url"] for record in records][:1] == [HC_BASIC] and records[0]["statusCode"] == 1102


# --- a broker restart mid-session ----------------------------------------------------------------------------


def test_the_state_after_a_broker_restart_equals_the_state_before(console: RunningConsole) -> None:
    assert code(console, "POST", INITIAL) == 0
    assert console.request("GET", HC_BASIC, timeout=70).body == HC_BASIC_PROFILE
    before = status(console)
    assert before["sam"]["status"] == 2 and before["hc"]["status"] == 2
    [broker] = console.processes()["broker"]
    os.kill(broker, signal.SIGKILL)
    wait_for(lambda: not alive(broker), 10, "the broker to die")

    def restarted() -> bool:
        brokers = console.processes()["broker"]
        return bool(brokers) and brokers != [broker] and console.status_ok()

    wait_for(restarted, 30, "a new broker answering")
    assert status(console) == before
    # The DC session token was only in the old broker's memory: the SAM logs in again by itself.
    assert console.request("GET", HC_BASIC, timeout=70).body == HC_BASIC_PROFILE
    assert status(console)["hc"]["status"] == 2
