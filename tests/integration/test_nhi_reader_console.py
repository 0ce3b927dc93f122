"""The NHI dedicated reader through the running console (issue 8): `serve --sim` runs the bench's virtual reader
on a real pseudo-terminal; the console's serial worker opens it with pyserial when `Initial` names its port.

Real here: every process, the pty, pyserial, the framing, the DC simulator over HTTPS (which has the reader's
physical SAM registered), the console's TLS. The keypad is fed through the bench's `POST /api/sim/v1/Keypad`.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from tests.integration.console import RunningConsole, wait_for
from tests.typed_secrets import HC_PROFILE_PIN, PROFILE_PIN, WRONG_HC_PIN

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

STATUS = "/api/common/v1/Status"
INITIAL = "/api/common/v1/Initial"
NAME = "/api/common/v1/Name"
SERVER_TIME = "/api/common/v1/ServerDateTime"
SAM_BASIC = "/api/sam/v1/Basic"
SAM_VERIFY = "/api/sam/v1/Verification"
HC_BASIC = "/api/hc/v1/Basic"
HC_PIN = "/api/hc/v1/Pin"
BENCH_NHI = "/api/sim/v1/NhiReader"
BENCH_KEYPAD = "/api/sim/v1/Keypad"
BENCH_CLOCK = "/api/sim/v1/Clock"

NHI_SAM_ID = "000100000047"
BENCH_PORT_NAME = "COM1"
"""The Windows name the bench's reader answers to, and the one the console calls its port by (issue 21)."""
HC_BASIC_DATA = {
    "cardId": "900000000711",
    "name": "測試資料",
    "idNo": "R88855084A",
    "birthday": "0741201",
    "sex": "F",
    "dateIssue": "1070101",
    "identityStatus": "3",
}
TAIPEI = datetime.timezone(datetime.timedelta(hours=8))


def call(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return answer.body


def bench(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=20)
    assert answer.status == 200, answer.body
    return answer.body


def code(console: RunningConsole, method: str, path: str, body: Any = None) -> int:
    return int(call(console, method, path, body)["statusCode"])


@pytest.fixture
def port(console: RunningConsole) -> str:
    described = bench(console, "GET", BENCH_NHI)
    assert described["plugged"] is True
    assert described["slots"]["hc"] == {"profile": "hc-basic"}
    return str(described["port"])


def open_session(console: RunningConsole, port: str) -> None:
    assert code(console, "POST", INITIAL, {"name": port}) == 0
    assert code(console, "POST", SAM_VERIFY) == 0


def test_name_lists_the_readers_port(console: RunningConsole, port: str) -> None:
    names = call(console, "GET", NAME)["names"]
    assert names[0] == "901000000047" and BENCH_PORT_NAME in names, "the cloud SAMs, then the serial ports"
    assert port not in names, "the port is listed once, by its Windows name"


def test_initial_verification_basic_data_and_the_readers_clock(console: RunningConsole, port: str) -> None:
    assert code(console, "POST", INITIAL, {"name": port}) == 0
    status = call(console, "GET", STATUS)["status"]
    assert (status["name"], status["sam"]["type"], status["sam"]["status"]) == (BENCH_PORT_NAME, 2, 1)
    assert call(console, "GET", SAM_BASIC)["samId"] == NHI_SAM_ID

    assert code(console, "GET", HC_BASIC) == 1301, "a physical SAM is verified only when asked"
    assert code(console, "GET", SERVER_TIME) == 1301
    assert code(console, "POST", SAM_VERIFY) == 0
    basic = call(console, "GET", HC_BASIC)
    assert basic == {"statusCode": 0, **HC_BASIC_DATA}
    status = call(console, "GET", STATUS)["status"]
    assert (status["readerName"], status["hc"]["status"], status["sam"]["status"]) == (BENCH_PORT_NAME, 2, 2)

    # The bench clock moves the DC's time ten minutes on, not the reader's: the answer is the reader's.
    bench(console, "POST", BENCH_CLOCK, {"advanceSeconds": 600})
    answer = call(console, "GET", SERVER_TIME)
    assert answer["statusCode"] == 0
    text = answer["serverDateTime"]
    reader_time = datetime.datetime(
        int(text[:3]) + 1911,
        int(text[3:5]),
        int(text[5:7]),
        int(text[7:9]),
        int(text[9:11]),
        int(text[11:13]),
        tzinfo=TAIPEI,
    )
    assert abs((reader_time - datetime.datetime.now(TAIPEI)).total_seconds()) < 120


def test_hc_pin_typed_on_the_keypad_and_cancelled(console: RunningConsole, port: str) -> None:
    bench(console, "PUT", f"{BENCH_NHI}/Slots/hc/Card", {"profile": "hc-pin"})
    open_session(console, port)
    wait_for(lambda: code(console, "GET", HC_BASIC) == 0, 10, "the hc-pin card read in the reader")

    bench(console, "POST", BENCH_KEYPAD, {"cancel": True})
    assert code(console, "POST", HC_PIN, {"pin": PROFILE_PIN}) == 1203
    bench(console, "POST", BENCH_KEYPAD, {"keys": WRONG_HC_PIN})
    assert code(console, "POST", HC_PIN, {"pin": PROFILE_PIN}) == 1514
    bench(console, "POST", BENCH_KEYPAD, {"keys": HC_PROFILE_PIN})
    assert code(console, "POST", HC_PIN, {"pin": PROFILE_PIN}) == 0
    assert call(console, "GET", STATUS)["status"]["hc"]["verifiedPin"] is True


def test_unplugged_and_replugged_the_reader_is_back_within_5_seconds(console: RunningConsole, port: str) -> None:
    open_session(console, port)
    assert code(console, "GET", HC_BASIC) == 0
    bench(console, "POST", f"{BENCH_NHI}/Unplug")
    wait_for(lambda: code(console, "GET", HC_BASIC) in (1201, 1202), 10, "the console to see the reader gone")
    bench(console, "POST", f"{BENCH_NHI}/Replug")
    replugged = time.monotonic()
    wait_for(lambda: code(console, "GET", HC_BASIC) == 0, 5, "the health card read again after the replug")
    assert time.monotonic() - replugged <= 5.0
