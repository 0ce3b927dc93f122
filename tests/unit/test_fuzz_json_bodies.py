"""Fuzzing the HTTP API's request bodies: every route that takes one (POST and PUT), through the real Falcon app
(`api.app.create_app`), with a recording stand-in for the broker client.

Why it matters: the API listens on localhost, where any program and, through the browser, any page the CORS
list lets through can send it a body. The contract (contract.md, issue 9) is that a body the console will
not take is a 400 with statusCode 1704 that ran nothing (only the rejected call is recorded), a body that is
not JSON by its Content-Type is a 415 that ran nothing at all, and anything else is the endpoint's normal
answer; never a 5xx, which would mean an exception the API did not expect. A 400's message names the field,
never its value (bodies carry PINs, PUKs and tokens).

The stand-in (`RecordingCore`) answers every command with a failure status code, so that each route renders
its ordinary answer without needing the success fields of each command; and it encodes each request exactly
as the real `api.core_client.CoreClient` does (`contract.protocol.build`), so an argument that the real client
could not send fails here as it would there. The fake is fine here: the app is pure request/response logic.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import string
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import falcon.inspect
import falcon.testing
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

import api
from api.app import create_app
from api.resources.common import VersionInfo
from contract.commands import parse_command
from contract.protocol import CallMeta, Reply, Request, build, parse
from contract.status_codes import StatusCode
from tests.fuzzing import fuzz
from tests.mutations import leaked_pieces, own_words

MAX_BODY_BYTES = 64 * 1024
"""contract.md's cap (api.middleware.MAX_BODY_BYTES, restated: the test is of the contract, not of the constant)."""
LOCAL = {"Host": "localhost:5066"}
BAD_PARAMETER = int(StatusCode.BAD_PARAMETER)
ANSWER_CODE = int(StatusCode.NOT_INITIALIZED)
"""What the stand-in answers every command with: a spec failure, rendered as `{"statusCode", "message"}`."""


@dataclass
class RecordingCore:
    """Stands in for `CoreClient`: records each command, encodes it as the real client does, answers ANSWER_CODE."""

    sent: list[Request] = field(default_factory=list)

    def call(
        self,
        command: str,
        args: dict[str, Any] | None = None,
        call: CallMeta | None = None,
        timeout: float | None = None,
    ) -> Reply:
        request = Request(id=f"r{len(self.sent)}", command=command, args=args or {}, call=call)
        self.sent.append(parse(build(request)))  # type: ignore[arg-type]  # the real client's encoding
        return Reply(id=request.id, code=ANSWER_CODE, body={"message": "the console is not initialized"})

    def commands(self) -> list[str]:
        return [request.command for request in self.sent]


def new_client() -> tuple[falcon.testing.TestClient, RecordingCore]:
    core = RecordingCore()
    app = create_app(core, VersionInfo("1.2.3", "/opt/nhi-console/bin/nhi-console"))  # type: ignore[arg-type]  # a stand-in core
    return falcon.testing.TestClient(app, headers=LOCAL), core


def body_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the app whose responder reads a body, found in the app itself, so that a route
    added later is fuzzed without anyone remembering to list it here."""
    client, _ = new_client()
    routes = []
    for route in falcon.inspect.inspect_routes(client.app):
        path = route.path.replace("{sam_id}", "901000000047").replace("{host}", "www.nhi.gov.tw")
        routes += [
            (method.method, path)
            for method in route.methods
            if not method.internal and method.method in ("POST", "PUT")
        ]
    return sorted(routes)


ROUTES = body_routes()


def test_the_routes_taking_a_body_were_found() -> None:
    """The fuzzing below covers what this finds; an empty or short list would make it pass vacuously."""
    assert len(ROUTES) >= 20
    assert ("POST", "/api/hc/v1/Pin") in ROUTES and ("PUT", "/api/hpc/v1/Pin") in ROUTES
    assert ("POST", "/api/hpc/v1/Verification/MobiliHca") in ROUTES and ("POST", "/api/settings/v1/CloudSam") in ROUTES


# --- bodies -----------------------------------------------------------------------------------------------

FIELD_NAMES = (
    "pin",
    "newPin",
    "puk",
    "serviceType",
    "token",
    "transferToken",
    "name",
    "readerName",
    "cloudSamContext",
    "samId",
    "hospitalId",
    "allowHost",
    "idNo",
    "birthday",
    "cName",
    "eName",
    "medId",
    "loginDateTime",
    "signatureCertificate",
    "signature",
)
"""The names the routes read: a random key would almost never be one, and a body of them reaches every check."""


def _api_modules() -> list[ModuleType]:
    return [importlib.import_module(found.name) for found in pkgutil.walk_packages(api.__path__, "api.")]


API_WORDS = (*FIELD_NAMES, *own_words(*_api_modules()), "statusCode")
"""What a 400's message may say in its own words: the API's literals (found in the package, whichever module
holds them) and the field names it names."""

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64),
    st.floats(),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
PLAUSIBLE = st.one_of(
    JSON_VALUES,
    st.text(string.digits, max_size=10),
    st.text(string.digits, max_size=10).map(lambda digits: "\uff11" + digits),  # a fullwidth digit first
    st.text(string.ascii_letters + string.digits + "+/=", max_size=80),  # base64-ish
    st.text(max_size=200),
    st.integers(0, 1300).map(lambda size: "x" * size),  # around each max_length
    st.sampled_from(["", " ", "01", "AB", "www.nhi.gov.tw", "localhost", "2025-03-01T12:00:00Z", "E123456789"]),
)
OBJECTS = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), PLAUSIBLE, max_size=6)


def _encode(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")


BODIES = st.one_of(
    st.builds(_encode, OBJECTS, st.booleans()),
    st.builds(_encode, JSON_VALUES, st.booleans()),
    OBJECTS.map(lambda value: json.dumps(value).encode("utf-16")),  # json.loads reads UTF-16 and UTF-32 too
    st.binary(max_size=200),  # not JSON
    st.builds(
        lambda value, pad: _encode(value, True) + b" " * pad,
        OBJECTS,
        st.integers(MAX_BODY_BYTES - 64, MAX_BODY_BYTES + 64),
    ),
    st.builds(
        lambda name, size: _encode({name: "1" * size}, True),
        st.sampled_from(FIELD_NAMES),
        st.integers(MAX_BODY_BYTES - 64, MAX_BODY_BYTES + 64),
    ),
    st.just(b""),
)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6
    + [
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        None,
    ]
)


def _text_values(value: Any) -> list[str]:
    """Every string in a decoded body, walked without recursion: bodies thousands of levels deep are fuzzed too."""
    found, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def post(method: str, path: str, body: bytes, content_type: str | None) -> tuple[falcon.testing.Result, RecordingCore]:
    client, core = new_client()
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return client.simulate_request(method, path, body=body, headers=headers), core


def assert_contract(result: falcon.testing.Result, core: RecordingCore, body: bytes) -> None:
    """400 (1704, ran nothing, the rejection recorded), 415 (ran nothing), or the route's ordinary answer."""
    assert result.status_code < 500, f"HTTP {result.status_code}: {result.text[:200]}"
    if result.status_code == 400:
        answer = result.json
        assert set(answer) == {"statusCode", "message"} and answer["statusCode"] == BAD_PARAMETER
        assert isinstance(answer["message"], str) and answer["message"]
        assert leaked_pieces(answer["message"], *_text_values(_decoded(body)), vocabulary=API_WORDS) == []
        assert [(request.command, request.args) for request in core.sent] in (
            [],
            [("RecordCall", {"statusCode": BAD_PARAMETER})],
        ), "a refused body ran a command"
    elif result.status_code == 415:
        assert [request.command for request in core.sent] == ["RecordRefusal"], "only its refusal is kept (a log event)"
        assert core.sent[0].call is not None and core.sent[0].args["status"] == 415
    else:
        assert result.status_code == 200, f"HTTP {result.status_code}: {result.text[:200]}"
        assert len(body) <= MAX_BODY_BYTES
        assert result.json == {"statusCode": ANSWER_CODE, "message": "the console is not initialized"}
        assert len(core.sent) == 1 and core.sent[0].command != "RecordCall", "one command, the route's own"


@fuzz(share=1.5)
@given(st.sampled_from(ROUTES), BODIES, CONTENT_TYPES)
@example(("POST", "/api/hc/v1/Pin"), b'{"pin": "1234"}', "application/json")
@example(("POST", "/api/hc/v1/Pin"), b'{"pin": "\\uff11234"}', "application/json")
@example(("POST", "/api/settings/v1/Cors"), b"{" + b" " * MAX_BODY_BYTES + b"}", "application/json")
def test_fuzz_any_body_to_any_route_is_a_400_a_415_or_an_answer(
    route: tuple[str, str], body: bytes, content_type: str | None
) -> None:
    method, path = route
    event(f"route: {method} {path}")
    result, core = post(method, path, body, content_type)
    event(f"HTTP {result.status_code}")
    assert_contract(result, core, body)


# --- what the API takes, the broker takes ------------------------------------------------------------------


@fuzz(share=0.5)
@given(st.sampled_from(ROUTES), BODIES)
@example(("POST", "/api/hpc/v1/Verification/Hpc"), b'{"pin": "\\uff11234"}')  # a fullwidth digit
def test_fuzz_a_body_the_api_takes_is_a_command_the_broker_takes(route: tuple[str, str], body: bytes) -> None:
    """contract.md: a field outside its format is an HTTP 400. If the API passes on what the broker's own check
    (`parse_command`) then refuses, the HIS gets HTTP 200 with statusCode 1704 instead, and the call is recorded
    as run."""
    method, path = route
    result, core = post(method, path, body, "application/json")
    assert_contract(result, core, body)
    if result.status_code == 200:
        for request in core.sent:
            parse_command(request.command, request.args)  # BadArguments here is the finding


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (("POST", "/api/settings/v1/Cors"), {"allowHost": "exa mple"}),
        (("POST", "/api/settings/v1/CloudSam"), {"cloudSamContext": "TkhJQ1NBTTEK", "samId": "abc"}),
    ],
    ids=["Cors allowHost not a host name", "CloudSam samId not 12 digits"],
)
def test_the_api_refuses_what_the_broker_refuses(route: tuple[str, str], body: dict[str, str]) -> None:
    method, path = route
    result, core = post(method, path, json.dumps(body).encode(), "application/json")
    assert_contract(result, core, json.dumps(body).encode())
    for request in core.sent:
        parse_command(request.command, request.args)


# --- API bugs the fuzzing found (fixed in api/body.py and api/resources/settings.py; pinned here) ----------


@fuzz(share=0.1)
@given(st.sampled_from(ROUTES), st.integers(1_000, 30_000), st.sampled_from([b"[]", b'{"a":}']))
@example(("POST", "/api/hc/v1/Pin"), 5_000, b"[]")
def test_fuzz_a_deeply_nested_body_is_a_400(route: tuple[str, str], depth: int, brackets: bytes) -> None:
    opening, closing = brackets[:1], brackets[-1:]
    body = (opening if opening == b"[" else b'{"a":') * depth + closing * depth
    method, path = route
    result, core = post(method, path, body, "application/json")
    assert_contract(result, core, body)


ROUTES_WITH_TEXT = {
    ("POST", "/api/hc/v1/Verification/VirtualHc"): "token",
    ("POST", "/api/hc/v1/VirtualHc/ReadBasic"): "token",
    ("POST", "/api/hc/v1/VirtualHc/Import"): "transferToken",
    ("POST", "/api/common/v1/Initial"): "name",
    ("POST", "/api/settings/v1/PcscReader/Default"): "readerName",
    ("POST", "/api/settings/v1/Cors"): "allowHost",
    ("POST", "/api/settings/v1/CloudSam"): "cloudSamContext",
}


@fuzz(share=0.1)
@given(
    st.sampled_from(sorted(ROUTES_WITH_TEXT)),
    st.text(string.ascii_letters, max_size=10),
    st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]),
)
@example(("POST", "/api/hc/v1/Verification/VirtualHc"), "", "\ud800")
def test_fuzz_a_lone_surrogate_in_a_text_field_is_a_400(route: tuple[str, str], prefix: str, surrogate: str) -> None:
    body = json.dumps({ROUTES_WITH_TEXT[route]: prefix + surrogate}).encode("ascii")  # the \\udXXX escape
    method, path = route
    result, core = post(method, path, body, "application/json")
    assert_contract(result, core, body)
