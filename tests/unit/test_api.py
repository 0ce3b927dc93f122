"""The Falcon app with a recording fake of the broker client: what HTTP a HIS sees.

The fake is fine here: the app is pure request/response logic; the real broker
behind a real socket is exercised by tests/integration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import falcon.testing
import pytest

from api.app import create_app
from api.core_client import CoreUnavailable
from api.resources.common import VersionInfo
from contract.protocol import CallMeta, Reply
from tests.spec_samples import EMPTY_STATUS


@dataclass
class SentCommand:
    command: str
    args: dict[str, Any]
    call: CallMeta | None
    timeout: float | None = None


@dataclass
class FakeCore:
    replies: dict[str, Reply] = field(default_factory=dict)
    sent: list[SentCommand] = field(default_factory=list)
    unavailable: bool = False
    delivered: bool = False

    def call(
        self,
        command: str,
        args: dict[str, Any] | None = None,
        call: CallMeta | None = None,
        timeout: float | None = None,
    ) -> Reply:
        self.sent.append(SentCommand(command, args or {}, call, timeout))
        if self.unavailable:
            raise CoreUnavailable("down", delivered=self.delivered)
        return self.replies.get(command, Reply(id="r", code=0, body={}))


@pytest.fixture
def core() -> FakeCore:
    return FakeCore(
        replies={
            "GetStatus": Reply(id="r", code=0, body={"status": EMPTY_STATUS}),
            "ListRecords": Reply(
                id="r",
                code=0,
                body={
                    "records": [
                        {"url": "/api/common/v1/Status", "uuid": "u2", "timestamp": "t2", "statusCode": 0},
                        {"url": "/api/common/v1/Version", "uuid": "u1", "timestamp": "t1", "statusCode": 0},
                    ]
                },
            ),
        }
    )


@pytest.fixture
def client(core: FakeCore) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(
        create_app(core, VersionInfo("1.2.3", "/opt/nhi-console/bin/nhi-console")),  # type: ignore[arg-type]  # a stand-in core: only .call is used
        headers={"Host": "localhost:5066"},
    )


def test_status_is_the_spec_object_and_the_call_is_recorded(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_get("/api/common/v1/Status")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json == {"statusCode": 0, "status": EMPTY_STATUS}
    [sent] = core.sent
    assert sent.command == "GetStatus"
    assert sent.call is not None and sent.call.url == "/api/common/v1/Status"
    assert sent.call.uuid == response.headers["x-request-id"]


def test_each_call_gets_its_own_uuid(client: falcon.testing.TestClient, core: FakeCore) -> None:
    client.simulate_get("/api/common/v1/Status")
    client.simulate_get("/api/common/v1/Status")
    first, second = (sent.call for sent in core.sent)
    assert first is not None and second is not None and first.uuid != second.uuid


def test_version_answers_the_api_generation_and_records_itself(
    client: falcon.testing.TestClient, core: FakeCore
) -> None:
    response = client.simulate_get("/api/common/v1/Version")
    assert response.json == {
        "fileVersion": "1.2.3",
        "shortVersion": "60",
        "longVersion": "6000",
        "location": "/opt/nhi-console/bin/nhi-console",
        "statusCode": 0,
    }
    [sent] = core.sent
    assert sent.call is not None
    assert (sent.command, sent.args["statusCode"], sent.call.url) == ("RecordCall", 0, "/api/common/v1/Version")


def test_record_is_a_bare_array_and_not_recorded_itself(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_get("/api/common/v1/Record")
    assert response.status_code == 200
    assert [row["uuid"] for row in response.json] == ["u2", "u1"]
    [sent] = core.sent
    assert sent.command == "ListRecords" and sent.args == {"skip": 0, "take": 100} and sent.call is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("skip=5&take=7", {"skip": 5, "take": 7}),
        ("take=0", {"skip": 0, "take": 0}),
        ("take=50000", {"skip": 0, "take": 1000}),
    ],
)
def test_record_skip_and_take(
    client: falcon.testing.TestClient, core: FakeCore, query: str, expected: dict[str, int]
) -> None:
    assert client.simulate_get("/api/common/v1/Record", query_string=query).status_code == 200
    assert core.sent[0].args == expected


@pytest.mark.parametrize("query", ["take=x", "skip=-1", "take=1.5", "skip=%EF%BC%91", "take=99999999999"])
def test_malformed_record_query_is_400_1704_and_runs_nothing(
    client: falcon.testing.TestClient, core: FakeCore, query: str
) -> None:
    response = client.simulate_get("/api/common/v1/Record", query_string=query)
    assert response.status_code == 400
    assert response.json["statusCode"] == 1704
    assert ("skip" in response.json["message"]) or ("take" in response.json["message"])
    assert core.sent == []  # the Record endpoints are not recorded, and nothing was listed


def test_record_delete_answers_an_empty_200(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_delete("/api/common/v1/Record")
    assert response.status_code == 200
    assert response.content == b""
    assert [sent.command for sent in core.sent] == ["ClearRecords"]
    assert core.sent[0].call is None


def test_oversized_body_is_400_and_the_rejection_is_recorded(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_get(
        "/api/common/v1/Status", body=b"x" * (64 * 1024 + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json["statusCode"] == 1704
    assert [(s.command, s.args) for s in core.sent] == [("RecordCall", {"statusCode": 1704})]
    assert core.sent[0].call is not None and core.sent[0].call.uuid == response.headers["x-request-id"]


def test_unknown_path_is_404_json_and_not_recorded(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_get("/api/common/v1/Nope")
    assert response.status_code == 404
    assert "message" in response.json
    assert core.sent == []


def test_wrong_method_is_405_json_with_allow(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_put("/api/common/v1/Status", body=json.dumps({}))
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
    assert "message" in response.json
    assert core.sent == []


def test_broker_down_is_503_with_the_console_code_and_retry_after(
    core: FakeCore, client: falcon.testing.TestClient
) -> None:
    core.unavailable = True
    response = client.simulate_get("/api/common/v1/Status")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json["statusCode"] == 1099


def test_a_call_the_broker_took_but_did_not_answer_is_503_without_retry_after(
    core: FakeCore, client: falcon.testing.TestClient
) -> None:
    """It may have run (a PIN verification, say): the answer must not invite a blind retry."""
    core.unavailable, core.delivered = True, True
    response = client.simulate_get("/api/common/v1/Status")
    assert response.status_code == 503 and response.json["statusCode"] == 1099
    assert "retry-after" not in response.headers and "may have run" in response.json["message"]


def test_a_broker_failure_code_is_passed_through(core: FakeCore, client: falcon.testing.TestClient) -> None:
    core.replies["GetStatus"] = Reply(id="r", code=1704, body={"message": "skip must be 0 or more"})
    assert client.simulate_get("/api/common/v1/Status").json == {
        "statusCode": 1704,
        "message": "skip must be 0 or more",
    }


def test_a_pin_call_waits_for_the_keypad_on_top_of_the_flow(client: falcon.testing.TestClient, core: FakeCore) -> None:
    """On an NHI reader the holder types the PIN: the API must outwait the broker's keypad step, or it would
    answer 1099 while the holder is still typing (and the card then verified behind the client's back)."""
    from contract.deadlines import FLOW_SECONDS, KEYPAD_STEP_SECONDS

    for method, body in (("POST", {"pin": "5791"}), ("PUT", {"newPin": "864213"})):
        client.simulate_request(method, "/api/hc/v1/Pin", json=body)
        sent = core.sent[-1]
        assert sent.command in ("VerifyHcPin", "SetHcPin")
        assert sent.timeout is not None and sent.timeout >= FLOW_SECONDS + KEYPAD_STEP_SECONDS
