"""The staff card (HPC) and mobile HCA through the running console in `--sim` mode (issue 6).

The bench's staff profiles of sim-control.md sit in `NHI Sim Reader 1`; certificates are checked against
the bench's HCA trust file and the CRL the DC simulator serves.
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from broker.flows.session import signature_input
from sim.pki import bench_pki
from tests.integration.console import RunningConsole, wait_for
from tests.typed_secrets import (
    CHANGED_PIN,
    NEW_PIN,
    PROFILE_PIN,
    PROFILE_PUK,
    WRONG_PIN,
    WRONG_PUK,
    files_holding_secrets,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STATUS = "/api/common/v1/Status"
VERIFY = "/api/hpc/v1/Verification/Hpc"
MOBILE = "/api/hpc/v1/Verification/MobiliHca"
BASIC = "/api/hpc/v1/Basic"
PIN = "/api/hpc/v1/Pin"
SIGN = "/api/hpc/v1/Signature"
LOGOUT = "/api/hpc/v1/Logout"
STAFF_READER = "NHI Sim Reader 1"
STAFF_CARD = f"/api/sim/v1/Readers/{quote(STAFF_READER)}/Card"


def call(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return dict(answer.body)


def hpc(console: RunningConsole) -> dict[str, Any]:
    return dict(call(console, "GET", STATUS)["status"]["hpc"])


def put_staff_card(console: RunningConsole, profile: str) -> None:
    assert console.request("PUT", STAFF_CARD, {"profile": profile}).status == 200


def initialized(console: RunningConsole, profile: str = "hpc-doctor") -> None:
    if profile != "hpc-doctor":
        put_staff_card(console, profile)
    assert call(console, "POST", "/api/common/v1/Initial")["statusCode"] == 0


def events(console: RunningConsole, type_name: str) -> list[dict[str, Any]]:
    return [
        json.loads(row[0])
        for row in console.database_rows("SELECT payload FROM events WHERE type = ? ORDER BY seq", type_name)
    ]


def test_doctor_card_pin_basic_signature_and_logout(console: RunningConsole) -> None:
    initialized(console)
    assert hpc(console) == {"status": 1, "type": 1, "expireTime": None}
    assert call(console, "GET", BASIC)["statusCode"] == 1402  # level 3 needs the PIN: never automatic
    assert call(console, "POST", VERIFY, {"pin": PROFILE_PIN}) == {"statusCode": 0}
    after = hpc(console)
    assert after["status"] == 3 and after["type"] == 1
    expires = datetime.datetime.fromisoformat(after["expireTime"])
    hours = (expires - datetime.datetime.now(datetime.UTC)).total_seconds() / 3600
    assert 7.9 < hours <= 8.0
    assert call(console, "GET", BASIC) == {
        "statusCode": 0,
        "cardId": "100000291508",
        "idNo": "E123456789",
        "cName": "測試人員4",
        "eName": "",
        "birthday": "1979-01-01",
    }
    signed = call(console, "POST", SIGN, {"serviceType": "01"})
    assert signed["statusCode"] == 0 and signed["hpcId"] == "100000291508" and signed["hpcIdNo"] == "E123456789"
    assert signed["samId"] == "901000000047" and signed["hospitalId"] == "777777777" and signed["serviceType"] == "01"
    client_random, signature = (base64.b64decode(signed[name], validate=True) for name in ("clientRandom", "signature"))
    assert len(client_random) == 8 and len(signature) == 256
    data = signature_input(client_random, "901000000047", "777777777", "01", "100000291508", "E123456789")
    key = bench_pki().staff["hpc-doctor"].certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    assert call(console, "DELETE", LOGOUT) == {"statusCode": 0}
    assert hpc(console) == {"status": 0, "type": 0, "expireTime": None}
    assert call(console, "POST", SIGN, {"serviceType": "01"})["statusCode"] == 1402


def test_a_wrong_pin_answers_1410_and_the_counter_goes_down_once_per_call(console: RunningConsole) -> None:
    initialized(console, "hpc-nurse")
    first = call(console, "POST", VERIFY, {"pin": WRONG_PIN})
    assert first["statusCode"] == 1410 and "2 tries left" in first["message"]
    second = call(console, "POST", VERIFY, {"pin": WRONG_PIN})
    assert second["statusCode"] == 1410 and "1 tries left" in second["message"]
    assert [event["tries_left"] for event in events(console, "HpcPinRejected")] == [2, 1]
    assert hpc(console)["status"] == 2 and hpc(console)["type"] == 2
    assert call(console, "POST", VERIFY, {"pin": PROFILE_PIN}) == {"statusCode": 0}  # the counter is back to 3
    for bad in ({"pin": "12ab"}, {"pin": "123"}, {"pin": "123456789"}, {"pin": 123456}, {}):
        refused = console.request("POST", VERIFY, bad)
        assert refused.status == 400 and refused.body["statusCode"] == 1704


def test_the_puk_unblocks_a_blocked_card_and_the_new_pin_verifies(console: RunningConsole) -> None:
    initialized(console, "hpc-blocked")
    blocked = call(console, "POST", VERIFY, {"pin": PROFILE_PIN})
    assert blocked["statusCode"] == 1402 and "blocked" in blocked["message"]
    assert events(console, "HpcPinRejected")[-1]["blocked"] is True
    wrong = call(console, "PUT", PIN, {"puk": WRONG_PUK, "newPin": NEW_PIN})
    assert wrong["statusCode"] == 1410 and "9 tries left" in wrong["message"]
    assert call(console, "PUT", PIN, {"puk": PROFILE_PUK, "newPin": NEW_PIN}) == {"statusCode": 0}
    assert call(console, "POST", VERIFY, {"pin": NEW_PIN}) == {"statusCode": 0}
    assert hpc(console)["status"] == 3
    for bad in ({"puk": "1234567a", "newPin": NEW_PIN}, {"puk": PROFILE_PUK, "newPin": "12"}, {"newPin": NEW_PIN}):
        refused = console.request("PUT", PIN, bad)
        assert refused.status == 400 and refused.body["statusCode"] == 1704


def test_change_pin_at_level_3(console: RunningConsole) -> None:
    initialized(console)
    assert call(console, "POST", PIN, {"newPin": CHANGED_PIN})["statusCode"] == 1402  # not at level 3
    assert call(console, "POST", VERIFY, {"pin": PROFILE_PIN})["statusCode"] == 0
    assert call(console, "POST", PIN, {"newPin": CHANGED_PIN}) == {"statusCode": 0}
    assert call(console, "DELETE", LOGOUT)["statusCode"] == 0
    assert call(console, "POST", VERIFY, {"pin": PROFILE_PIN})["statusCode"] == 1410
    assert call(console, "POST", VERIFY, {"pin": CHANGED_PIN})["statusCode"] == 0


@pytest.mark.parametrize(("profile", "code"), [("hpc-expired", 1422), ("hpc-untrusted", 1423), ("hpc-revoked", 1424)])
def test_certificate_problems(console: RunningConsole, profile: str, code: int) -> None:
    initialized(console, profile)
    assert call(console, "POST", VERIFY, {"pin": PROFILE_PIN})["statusCode"] == code
    assert hpc(console)["status"] == 1
    assert events(console, "CardAuthenticationFailed")[-1]["code"] == code


def test_the_8_hour_authentication_outlives_the_card_and_expires(console: RunningConsole) -> None:
    initialized(console)
    assert call(console, "POST", VERIFY, {"pin": PROFILE_PIN})["statusCode"] == 0
    assert console.request("DELETE", STAFF_CARD).status == 200
    assert hpc(console)["status"] == 3  # one reader serves the staff card, then patients
    assert call(console, "GET", BASIC)["idNo"] == "E123456789"
    assert console.request("POST", "/api/sim/v1/Clock", {"advanceSeconds": 8 * 3600 + 60}).status == 200
    wait_for(lambda: hpc(console)["status"] == 0, 10, "the staff authentication to expire")
    assert hpc(console) == {"status": 0, "type": 0, "expireTime": None}
    assert events(console, "HpcAuthenticationExpired")


def test_a_different_staff_card_ends_the_previous_authentication(console: RunningConsole) -> None:
    initialized(console)
    assert call(console, "POST", VERIFY, {"pin": PROFILE_PIN})["statusCode"] == 0
    put_staff_card(console, "hpc-nurse")
    wait_for(lambda: hpc(console)["type"] == 2, 5, "the nurse's card detected")
    assert hpc(console) == {"status": 1, "type": 2, "expireTime": None}
    assert events(console, "HpcAuthenticationEnded")


def mobile_body(console: RunningConsole, **extra: Any) -> dict[str, Any]:
    answer = console.request(
        "POST", "/api/sim/v1/MobileHca/Login", {"profile": "hpc-doctor", "hospitalId": "777777777", **extra}
    )
    assert answer.status == 200, answer.body
    return dict(answer.body)


def test_mobile_hca_login_and_each_refusal(console: RunningConsole) -> None:
    initialized(console)
    body = mobile_body(console)
    assert set(body) == {
        "idNo",
        "birthday",
        "cName",
        "eName",
        "hospitalId",
        "medId",
        "loginDateTime",
        "signatureCertificate",
        "signature",
    }
    tampered = bytearray(base64.b64decode(body["signature"]))
    tampered[0] ^= 0xFF
    assert (
        call(console, "POST", MOBILE, {**body, "signature": base64.b64encode(tampered).decode()})["statusCode"] == 1430
    )
    assert call(console, "POST", MOBILE, {**body, "idNo": "A123456789"})["statusCode"] == 1430
    other_hospital = mobile_body(console, hospitalId="987654321")
    assert call(console, "POST", MOBILE, other_hospital)["statusCode"] == 1431
    stale_time = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert call(console, "POST", MOBILE, mobile_body(console, loginDateTime=stale_time))["statusCode"] == 1421
    revoked = console.request(
        "POST", "/api/sim/v1/MobileHca/Login", {"profile": "hpc-revoked", "hospitalId": "777777777"}
    ).body
    assert call(console, "POST", MOBILE, revoked)["statusCode"] == 1424
    assert hpc(console)["status"] == 1
    assert [event["code"] for event in events(console, "MobileHcaRejected")] == [1430, 1430, 1431, 1421, 1424]

    assert call(console, "POST", MOBILE, mobile_body(console)) == {"statusCode": 0}
    after = hpc(console)
    assert after["status"] == 3 and after["type"] == 3 and after["expireTime"] is not None
    assert call(console, "GET", BASIC)["idNo"] == "E123456789"
    assert call(console, "POST", PIN, {"newPin": CHANGED_PIN})["statusCode"] == 1403
    bad = console.request("POST", MOBILE, {**body, "signature": "not base64!"})
    assert bad.status == 400 and bad.body["statusCode"] == 1704


def test_the_end_of_run_check_would_see_a_leaked_pin(tmp_path: Path) -> None:
    """The session-wide check (conftest.no_pin_or_puk_anywhere) is only worth something if it can fail."""
    leaky = tmp_path / "console.log"
    leaky.write_text(f"something logged pin={PROFILE_PIN}\n")
    (tmp_path / "clean.log").write_text("nothing here 1000000 00000\n")
    assert files_holding_secrets([tmp_path]) == [f"{leaky}: PROFILE_PIN after =, as text"]
