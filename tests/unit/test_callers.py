"""Who may call (issue 9): `Host`, the CORS allow-list before routing, 415 for bodies that are not JSON."""

from __future__ import annotations

import json

import falcon.testing
import pytest

from api.app import create_app
from api.callers import host_of_header, host_of_origin, origin_allowed
from api.resources.common import VersionInfo
from broker.core import ConsoleCore
from broker.runtime.clock import ManualClock
from contract.commands import BadArguments, parse_command
from contract.host_names import DEFAULT_CORS_HOSTS, NotAHostName, normalize_host
from contract.protocol import Reply, Request
from eventlog.memory_store import MemoryEventStore
from tests.unit.test_api import FakeCore

LOCAL = {"Host": "localhost:5066"}


@pytest.fixture
def core() -> FakeCore:
    return FakeCore(
        replies={
            "ListCorsHosts": Reply(id="r", code=0, body={"cors": ["localhost", "www.nhi.gov.tw"]}),
            "ListDevices": Reply(id="r", code=0, body={"names": ["901000000047"]}),
        }
    )


@pytest.fixture
def client(core: FakeCore) -> falcon.testing.TestClient:
    app = create_app(core, VersionInfo("1.2.3", "/opt/nhi-console"))  # type: ignore[arg-type]  # a stand-in core
    return falcon.testing.TestClient(app, headers=LOCAL)


def commands(core: FakeCore) -> list[str]:
    """What the broker was asked to do: neither the allow-list lookup nor the keeping of a refusal."""
    return [sent.command for sent in core.sent if sent.command not in ("ListCorsHosts", "RecordRefusal")]


def refusals(core: FakeCore) -> list[tuple[int, str, str]]:
    """The refusals sent to be kept in the log (issue 22): (status, caller, url); each under the uuid it answered."""
    kept = [sent for sent in core.sent if sent.command == "RecordRefusal"]
    for sent in kept:
        assert sent.call is not None and sent.call.uuid, "the refusal travels under its request's uuid"
    return [(sent.args["status"], sent.args["caller"], sent.args["url"]) for sent in kept]


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost:5066", "localhost"),
        ("LOCALHOST", "localhost"),
        ("127.0.0.1:5066", "127.0.0.1"),
        ("[::1]:5066", "::1"),
        ("localhost.:5066", "localhost"),
        ("evil.example:5066", "evil.example"),
        ("", None),
        ("localhost:notaport", None),
        ("user@localhost", None),
        ("localhost/path", None),
        (None, None),
    ],
)
def test_host_of_header(header: str | None, host: str | None) -> None:
    assert host_of_header(header) == host


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://www.nhi.gov.tw", "www.nhi.gov.tw"),
        ("http://localhost:8080", "localhost"),
        ("HTTPS://WWW.NHI.GOV.TW", "www.nhi.gov.tw"),
        ("http://[::1]:3000", "::1"),
        ("null", None),
        ("file://", None),
        ("https://", None),
        ("ftp://localhost", None),
        ("https://localhost/page", None),
        ("https://localhost:99999", None),
    ],
)
def test_host_of_origin(origin: str, host: str | None) -> None:
    assert host_of_origin(origin) == host


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.2", "[::2]", ""])
def test_a_host_header_not_naming_this_machine_is_refused_before_anything(
    client: falcon.testing.TestClient, core: FakeCore, host: str
) -> None:
    response = client.simulate_get("/api/common/v1/Status", headers={"Host": host})
    assert response.status_code == 421
    assert "message" in response.json
    assert commands(core) == [] and refusals(core) == [(421, "native", "/api/common/v1/Status")]
    assert [sent.command for sent in core.sent] == ["RecordRefusal"], "not even the allow-list was asked for"
    assert response.headers["X-Request-Id"] == core.sent[0].call.uuid  # type: ignore[union-attr]


def test_without_origin_a_program_is_served_without_cors_headers(
    client: falcon.testing.TestClient, core: FakeCore
) -> None:
    response = client.simulate_get("/api/common/v1/Name")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert [sent.command for sent in core.sent] == ["ListDevices"], "no allow-list lookup without an Origin"


def test_an_allowed_origin_gets_its_headers(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_get("/api/common/v1/Name", headers={"Origin": "https://www.nhi.gov.tw"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://www.nhi.gov.tw"
    assert "Origin" in response.headers["vary"]
    assert commands(core) == ["ListDevices"]


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://www.nhi.gov.tw.evil.example", "x"])
@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("GET", "/api/hc/v1/Basic", None, None),
        ("POST", "/api/hc/v1/Pin", json.dumps({"pin": "000000"}), "application/json"),
        ("POST", "/api/hc/v1/Pin", '{"pin":"000000"}', "text/plain"),
        ("POST", "/api/settings/v1/Cors", "allowHost=evil.example", "application/x-www-form-urlencoded"),
        ("PUT", "/api/hc/v1/Pin", json.dumps({"newPin": "000000"}), "application/json"),
        ("DELETE", "/api/settings/v1/Cors/localhost", None, None),
        ("POST", "/no/such/path", None, None),
    ],
)
def test_a_disallowed_origin_runs_nothing(
    client: falcon.testing.TestClient,
    core: FakeCore,
    origin: str,
    method: str,
    path: str,
    body: str | None,
    content_type: str | None,
) -> None:
    headers = {"Origin": origin, **({"Content-Type": content_type} if content_type else {})}
    response = client.simulate_request(method, path, body=body, headers=headers)
    assert response.status_code == 403
    assert "message" in response.json
    assert not [name for name in response.headers if name.startswith("access-control-allow")]
    assert commands(core) == [], "no command reached the broker"
    assert refusals(core) == [(403, origin, path)], "only the refusal, kept in the log"


def test_preflight_from_an_allowed_origin(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_options(
        "/api/hc/v1/Pin",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "Content-Type, Last-Event-ID"
    assert response.headers["access-control-allow-private-network"] == "true"
    assert commands(core) == []


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site", "some-future-value"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/hc/v1/Basic"),
        ("GET", "/api/common/v1/ServerDateTime"),
        ("GET", "/api/common/v1/Status"),
        ("GET", "/console/"),
        ("GET", "/api/swagger"),
        ("POST", "/api/hc/v1/Pin"),
        ("DELETE", "/api/settings/v1/CloudSam/901000000047"),
        ("GET", "/no/such/path"),
    ],
)
def test_a_page_of_another_site_without_an_origin_runs_nothing(
    client: falcon.testing.TestClient, core: FakeCore, site: str, method: str, path: str
) -> None:
    """`<img src>`, `<script src>`, `fetch(…, {mode: "no-cors"})`: no Origin, but fetch metadata."""
    headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
    response = client.simulate_request(method, path, headers=headers)
    assert response.status_code == 403
    assert "message" in response.json
    assert [sent.command for sent in core.sent] == ["RecordRefusal"], "not even the allow-list lookup"
    assert refusals(core) == [(403, "native", path.rstrip("/"))]  # the app strips a trailing slash


@pytest.mark.parametrize("site", ["same-origin", "none", None])
def test_the_user_typing_the_address_and_the_consoles_own_pages_pass(
    client: falcon.testing.TestClient, core: FakeCore, site: str | None
) -> None:
    headers = {"Sec-Fetch-Site": site} if site else {}
    response = client.simulate_get("/api/common/v1/Name", headers=headers)
    assert response.status_code == 200
    assert commands(core) == ["ListDevices"]


def test_a_page_of_an_allowed_site_passes_with_its_origin(client: falcon.testing.TestClient, core: FakeCore) -> None:
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": "https://www.nhi.gov.tw"}
    response = client.simulate_get("/api/common/v1/Name", headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://www.nhi.gov.tw"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://www.nhi.gov.tw", True),
        ("https://www.nhi.gov.tw:8443", True),
        ("http://www.nhi.gov.tw", False),
        ("HTTP://WWW.NHI.GOV.TW", False),
        ("http://localhost:8080", True),
        ("https://localhost", True),
        ("http://127.0.0.1:3000", False),  # loopback, but not on this list
        ("http://[::1]:3000", False),
        ("https://evil.example", False),
        ("null", False),
    ],
)
def test_origin_allowed_is_scheme_aware(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, ["localhost", "www.nhi.gov.tw"]) is allowed


@pytest.mark.parametrize("origin", ["http://127.0.0.1:3000", "http://[::1]:3000", "http://localhost"])
def test_loopback_hosts_on_the_list_pass_on_any_scheme(origin: str) -> None:
    assert origin_allowed(origin, ["localhost", "127.0.0.1", "::1"])


def test_a_plain_http_origin_of_a_listed_site_runs_nothing(client: falcon.testing.TestClient, core: FakeCore) -> None:
    for method, path in [
        ("GET", "/api/hc/v1/Basic"),
        ("POST", "/api/settings/v1/Cors"),
        ("DELETE", "/api/settings/v1/CloudSam/1"),
    ]:
        response = client.simulate_request(method, path, headers={"Origin": "http://www.nhi.gov.tw"})
        assert response.status_code == 403
    assert commands(core) == []
    assert [status for status, _, _ in refusals(core)] == [403, 403, 403]


def test_a_request_without_host_is_400(client: falcon.testing.TestClient, core: FakeCore) -> None:
    """HTTP/1.0 may leave `Host` out; Falcon's test client always fills it in, so the environ is made by hand."""
    environ = falcon.testing.create_environ(path="/api/common/v1/Status", http_version="1.0")
    environ.pop("HTTP_HOST", None)
    result = falcon.testing.StartResponseMock()
    body = b"".join(client.app(environ, result))
    assert str(result.status).startswith("400"), (result.status, body)
    assert core.sent == []


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/api/common/v1/Name", {}),
        ("GET", "/api/hc/v1/Basic", {"Origin": "https://evil.example"}),
        ("GET", "/api/hc/v1/Basic", {"Sec-Fetch-Site": "cross-site"}),
        ("GET", "/api/common/v1/Status", {"Host": "evil.example"}),
        ("GET", "/no/such/path", {}),
    ],
)
def test_json_answers_are_not_stored_or_sniffed(
    client: falcon.testing.TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = client.simulate_request(method, path, headers=headers)
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_preflight_from_a_disallowed_origin_has_no_allow_headers(client: falcon.testing.TestClient) -> None:
    response = client.simulate_options(
        "/api/hc/v1/Pin", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 403
    assert not [name for name in response.headers if name.startswith("access-control-allow")]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_a_body_that_is_not_json_is_415_and_runs_nothing(
    client: falcon.testing.TestClient, core: FakeCore, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.simulate_post("/api/hc/v1/Pin", body='{"pin":"000000"}', headers=headers)
    assert response.status_code == 415
    assert "000000" not in response.text
    assert commands(core) == []
    assert refusals(core) == [(415, "native", "/api/hc/v1/Pin")]
    assert "000000" not in repr(core.sent), "the body is never kept"


def test_json_with_a_charset_is_json(client: falcon.testing.TestClient, core: FakeCore) -> None:
    response = client.simulate_post(
        "/api/settings/v1/Cors",
        body=json.dumps({"allowHost": "medvpn.nhi.gov.tw"}),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert [(sent.command, sent.args) for sent in core.sent] == [("AllowCorsHost", {"allowHost": "medvpn.nhi.gov.tw"})]


def test_the_cors_settings_routes(client: falcon.testing.TestClient, core: FakeCore) -> None:
    assert client.simulate_get("/api/settings/v1/Cors").json == {
        "statusCode": 0,
        "cors": ["localhost", "www.nhi.gov.tw"],
    }
    assert client.simulate_delete("/api/settings/v1/Cors/www.nhi.gov.tw").json == {"statusCode": 0}
    assert core.sent[-1].command == "RemoveCorsHost" and core.sent[-1].args == {"id": "www.nhi.gov.tw"}
    assert core.sent[-1].call is not None, "setting changes are in the call record"


# -- the list itself, in the broker -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("medvpn.nhi.gov.tw", "medvpn.nhi.gov.tw"),
        ("LocalHost.", "localhost"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_normalize_host(text: str, host: str) -> None:
    assert normalize_host(text) == host


@pytest.mark.parametrize(
    "text",
    ["", "https://localhost", "local host", "-bad.example", "a" * 64 + ".example", "localhost:5066", "*.nhi.gov.tw"],
)
def test_not_a_host_name(text: str) -> None:
    with pytest.raises(NotAHostName):
        normalize_host(text)
    with pytest.raises(BadArguments):
        parse_command("AllowCorsHost", {"allowHost": text})


def _core() -> ConsoleCore:
    return ConsoleCore(MemoryEventStore(), ManualClock(wall_ns=1_790_000_000 * 10**9))


def _ask(core: ConsoleCore, command: str, args: dict[str, str] | None = None) -> tuple[int, dict]:
    reply = core.handle(Request(id="r", command=command, args=args or {}))
    assert isinstance(reply, Reply)
    return reply.code, reply.body


def test_the_allow_list_starts_with_the_defaults_and_changes_at_once() -> None:
    core = _core()
    assert _ask(core, "ListCorsHosts") == (0, {"cors": list(DEFAULT_CORS_HOSTS)})
    assert _ask(core, "AllowCorsHost", {"allowHost": "MedVPN.nhi.gov.tw"}) == (0, {})
    assert _ask(core, "AllowCorsHost", {"allowHost": "medvpn.nhi.gov.tw"}) == (0, {})
    assert _ask(core, "RemoveCorsHost", {"id": "localhost"}) == (0, {})
    assert _ask(core, "ListCorsHosts") == (0, {"cors": ["www.nhi.gov.tw", "medvpn.nhi.gov.tw"]})
    code, _ = _ask(core, "RemoveCorsHost", {"id": "localhost"})
    assert code == 1704, "removing a host that is not on the list is an error and changes nothing"
    types = [stored.type for stored in core.ledger.store.events()]
    assert types == ["CorsHostAllowed", "CorsHostRemoved"], "an add that changes nothing logs nothing"
