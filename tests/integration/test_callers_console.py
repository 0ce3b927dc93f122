"""Who may call, through the running console (issue 9): every method × {no Origin, allowed, disallowed, `null`} ×
{JSON, text/plain, form}, counting at the card what ran.

The count is the bench NHI reader's: the commands that reached its cards or its SAM (`cardCommands` of
`GET /api/sim/v1/NhiReader`), read before and after each call. A refused row must leave it, the event log and the
call record as they were.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.integration.console import RunningConsole
from tests.typed_secrets import PROFILE_PIN, PROFILE_PUK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BENCH_NHI = "/api/sim/v1/NhiReader"
ALLOWED = "http://localhost:8080"
ORIGINS: dict[str, str | None] = {
    "none": None,
    "allowed": ALLOWED,
    "disallowed": "https://evil.example",
    "null": "null",
}
ROUTES = {
    "GET": ("/api/hc/v1/Basic", {}),
    "POST": ("/api/hc/v1/Pin", {"pin": PROFILE_PIN}),  # the keypad's reader: hc-basic has no PIN (1510)
    "PUT": ("/api/hpc/v1/Pin", {"puk": PROFILE_PUK, "newPin": PROFILE_PIN}),
    "DELETE": ("/api/hc/v1/Pin", {}),
}
BODIES = {
    "json": ("application/json", lambda fields: json.dumps(fields)),
    "text": ("text/plain", lambda fields: json.dumps(fields)),  # what a page can send without a preflight
    "form": ("application/x-www-form-urlencoded", lambda fields: "&".join(f"{k}={v}" for k, v in fields.items())),
}


def _counts(console: RunningConsole) -> tuple[int, int, int, int]:
    """Card commands, events (but refusals), calls, and refusals kept in the log (`CallRefused`, issue 22)."""
    card = console.request("GET", BENCH_NHI).body["cardCommands"]
    events = console.database_rows("SELECT count(*) FROM events WHERE type != 'CallRefused'")[0][0]
    calls = console.database_rows("SELECT count(*) FROM calls")[0][0]
    refusals = console.database_rows("SELECT count(*) FROM events WHERE type = 'CallRefused'")[0][0]
    return int(card), int(events), int(calls), int(refusals)


def _send(console: RunningConsole, method: str, path: str, body: str | None, headers: dict[str, str]) -> Any:
    return console.send(method, path, body, headers)


@pytest.fixture
def session(console: RunningConsole) -> RunningConsole:
    port = console.request("GET", BENCH_NHI).body["port"]
    assert console.request("POST", "/api/common/v1/Initial", {"name": port}).body["statusCode"] == 0
    assert console.request("POST", "/api/sam/v1/Verification").body["statusCode"] == 0
    assert console.request("GET", "/api/hc/v1/Basic").body["statusCode"] == 0
    return console


def test_the_matrix(session: RunningConsole) -> None:
    rows: list[tuple[str, str, str, int, int, int, int, int]] = []
    for method, (path, fields) in ROUTES.items():
        for origin_name, origin in ORIGINS.items():
            for body_name, (content_type, encode) in BODIES.items():
                headers = {"Content-Type": content_type, **({"Origin": origin} if origin else {})}
                body = encode(fields)
                before = _counts(session)
                status, response_headers, payload = _send(session, method, path, body, headers)
                after = _counts(session)
                delta = tuple(b - a for a, b in zip(before, after, strict=True))
                rows.append((method, origin_name, body_name, status, *delta))
                refused = origin_name in ("disallowed", "null")
                if refused:
                    assert status == 403, (method, origin_name, body_name, payload)
                    assert delta == (0, 0, 0, 1), f"a refused call ran something (or was not kept): {rows[-1]}"
                    assert not [h for h in response_headers if h.startswith("access-control-allow")]
                elif body_name != "json" and body:  # an empty form is no body: nothing to refuse
                    assert status == 415, (method, origin_name, body_name, payload)
                    assert delta == (0, 0, 0, 1), f"a body that is not JSON ran something: {rows[-1]}"
                else:
                    assert status == 200, (method, origin_name, payload)
                    assert delta[0] >= 1, f"the call should have reached the card: {rows[-1]}"
                    assert delta[2] == 1, "a call that ran is recorded once"
                if origin_name == "allowed":
                    assert response_headers.get("access-control-allow-origin") == ALLOWED
    refused_rows = [row for row in rows if row[1] in ("disallowed", "null")]
    assert len(rows) == 48 and len(refused_rows) == 24
    assert sum(row[4] for row in refused_rows) == 0, "commands at the card for the refused rows"
    print(
        f"\nmatrix: {len(rows)} requests; card commands for the {len(refused_rows)} refused rows: 0; "
        f"for the {sum(1 for r in rows if r[3] == 200)} served rows: {sum(r[4] for r in rows if r[3] == 200)}"
    )


def test_the_allow_list_changes_at_once(session: RunningConsole) -> None:
    page = "https://medvpn.nhi.gov.tw"
    status, _, _ = _send(session, "GET", "/api/common/v1/Status", None, {"Origin": page})
    assert status == 403
    assert session.request("POST", "/api/settings/v1/Cors", {"allowHost": "medvpn.nhi.gov.tw"}).body == {
        "statusCode": 0
    }
    status, headers, _ = _send(session, "GET", "/api/common/v1/Status", None, {"Origin": page})
    assert status == 200 and headers["access-control-allow-origin"] == page
    assert "medvpn.nhi.gov.tw" in session.request("GET", "/api/settings/v1/Cors").body["cors"]
    assert session.request("DELETE", "/api/settings/v1/Cors/medvpn.nhi.gov.tw").body == {"statusCode": 0}
    status, _, _ = _send(session, "GET", "/api/common/v1/Status", None, {"Origin": page})
    assert status == 403


def test_a_host_that_is_not_this_machine_is_refused(session: RunningConsole) -> None:
    before = _counts(session)
    status, _, _ = _send(session, "GET", "/api/hc/v1/Basic", None, {"Host": "rebound.example:5066"})
    assert status == 421
    card, events, calls, refusals = _counts(session)
    assert (card, events, calls, refusals) == (*before[:3], before[3] + 1), "nothing ran; the refusal is kept"
    [(payload,)] = session.database_rows(
        "SELECT payload FROM events WHERE type = 'CallRefused' ORDER BY seq DESC LIMIT 1"
    )
    refusal = json.loads(payload)
    assert (refusal["status"], refusal["caller"], refusal["url"]) == (421, "native", "/api/hc/v1/Basic")
    assert "rebound" not in payload.decode() if isinstance(payload, bytes) else "rebound" not in payload


def test_http_1_0_without_host_is_400_through_gunicorn(session: RunningConsole) -> None:
    """Falcon's test client always sends `Host`; this is the real server and a raw HTTP/1.0 request."""
    before = _counts(session)
    raw = socket.create_connection(("127.0.0.1", session.port), timeout=10)
    with session.ssl_context().wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /api/hc/v1/Basic HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:100]
    assert b"no-store" in answer.lower() and b"nosniff" in answer.lower()
    assert _counts(session) == before
