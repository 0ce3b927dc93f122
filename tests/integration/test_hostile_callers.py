"""Hostile callers through the running console (issue 20): every route of the console's own OpenAPI document (the
bench's `/api/sim/v1/...` included), the live stream, the pages and paths no route has, × every way a page of
another site can reach it, counting at the bench what ran.

What a refused case must leave as it was, counted, not assumed (the bench's counters, docs/virtual-cards.md):
the commands that reached a card or a SAM (`cardCommands` of the bench NHI reader, where the session is, plus
those of every bench PC/SC reader), the calls that reached the DC simulator (`GET /api/sim/v1/Dc/Calls`), the
call record's rows and the event log's rows. They are read before and after the whole block of one case's
requests: every counter only grows, so a total change of zero over the block proves zero for each request of it.

The allowed cases run a representative subset of the routes (`ALLOWED_ROUTES`: reads, a card read, a SAM
verification at the DC, a bench card swap, the pages, the stream's first answer), not every route: every route run
for real would spend the bench's PIN tries, end the session, unplug its readers and empty the allow-list.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from tests.integration.bench_counts import BENCH_NHI, BENCH_READERS, NOTHING, Counts, counts
from tests.integration.console import RunningConsole
from tests.typed_secrets import NEW_PIN, PROFILE_PIN, PROFILE_PUK
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OPENAPI = "/api/swagger/v1/swagger.json"
EVIL = "https://evil.example"
LOOPBACK_PAGE = "http://localhost:8080"
REFUSED_TIMEOUT = 5.0
"""A refused request is answered at once; one let through to the live stream would hang here, and fail."""

NO_CORS = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
CROSS_SITE_FETCH = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}

PATH_VALUES = {
    "sam_id": "901000000047",  # the bench's cloud SAM: a removal let through would show as an event
    "host": "www.nhi.gov.tw",
    "name": "NHI Sim Reader 1",
    "slot": "hc",
}
QUERIES = {("GET", "/api/common/v1/Record"): "skip=0&take=10"}
FIELD_VALUES: dict[str, Any] = {
    "pin": PROFILE_PIN,
    "newPin": NEW_PIN,
    "puk": PROFILE_PUK,
    "serviceType": "01",
    "profile": "hc-basic",
    "samId": "901000000088",
    "hospitalId": "777777777",
    "contract": "active",
    "allowHost": "evil.example",
    "readerName": "NHI Sim Reader 1",
    "advanceSeconds": 3700,
    "statusCode": 1700,
    "count": 1,
    "keys": "1234",
}
"""Plausible values, so that a request let through would really run (a PIN, a SAM, a fault the DC would take)."""
EXTRA_ROUTES = [
    ("GET", "/console/"),  # the status-light page and its script
    ("GET", "/console/console.js"),
    ("GET", "/api/swagger/index.html"),  # Swagger UI's page
    ("GET", "/api/swagger"),
    ("GET", "/api/no/such/Route"),  # refused before routing: not 404
    ("PATCH", "/api/common/v1/Status"),  # not 405
    ("OPTIONS", "/api/hc/v1/Basic"),  # a preflight from a page not allowed
]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """With path parameters filled and the query, if any."""
    body: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Case:
    name: str
    headers: dict[str, str]
    body_type: str = "json"
    """How a body is sent: `json`, `text` (text/plain: no preflight), `form` (urlencoded: no preflight)."""


REFUSED_CASES = [
    Case("no-cors GET, fetch metadata, no Origin (an <img>)", NO_CORS),
    Case("Sec-Fetch-Site: same-site, no Origin", {"Sec-Fetch-Site": "same-site"}),
    Case("cross-site text/plain + fetch metadata", {"Origin": EVIL, **CROSS_SITE_FETCH}, "text"),
    Case("cross-site text/plain, no fetch metadata", {"Origin": EVIL}, "text"),
    Case("cross-site form + fetch metadata", {"Origin": EVIL, **CROSS_SITE_FETCH}, "form"),
    Case("cross-site form, no fetch metadata", {"Origin": EVIL}, "form"),
    Case("Origin: http://www.nhi.gov.tw (allowed host, plain http)", {"Origin": "http://www.nhi.gov.tw"}),
    Case("Origin: null", {"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
]
LOCALHOST_REMOVED = Case(
    "loopback page after localhost left the list", {"Origin": LOOPBACK_PAGE, "Sec-Fetch-Site": "cross-site"}
)
ALLOWED_CASES = [
    Case("no headers (a HIS, curl)", {}),
    Case("Sec-Fetch-Site: none (typed address)", {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}),
    Case("same-origin, the console's own page", {"Sec-Fetch-Site": "same-origin"}),  # + Origin: see _own_origin
    Case(
        "Origin: https://www.nhi.gov.tw, cross-site",
        {"Origin": "https://www.nhi.gov.tw", "Sec-Fetch-Site": "cross-site"},
    ),
    Case("Origin: http://localhost:8080, same-site", {"Origin": LOOPBACK_PAGE, "Sec-Fetch-Site": "same-site"}),
]
SESSION_READER = "NHI Sim Reader 1"
ALLOWED_ROUTES = [
    Route("GET", "/api/common/v1/Status"),
    Route("GET", "/api/common/v1/Record?skip=0&take=5"),
    Route("GET", "/api/settings/v1/Cors"),
    Route("GET", "/api/hc/v1/Basic"),  # reaches the NHI reader's health card
    Route("POST", "/api/sam/v1/Verification"),  # the physical SAM, verified at the DC
    Route("PUT", f"/api/sim/v1/Readers/{urllib.parse.quote(SESSION_READER)}/Card", {"profile": "hpc-doctor"}),
    Route("GET", BENCH_READERS),
    Route("GET", "/api/sim/v1/Profiles"),
    Route("GET", OPENAPI),
    Route("GET", "/console/"),
    Route("GET", "/api/swagger/index.html"),
    Route("GET", "/api/events/v1/Stream"),  # its status line only: the stream itself never ends
]
STREAMS = {"/api/events/v1/Stream"}


@dataclass
class Answered:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Caller:
    """One kept-alive HTTPS connection for a case's requests, opened again only when the server closed it."""

    console: RunningConsole
    timeout: float
    _connection: http.client.HTTPSConnection | None = field(default=None, repr=False)

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], stream: bool = False
    ) -> Answered:
        for attempt in range(2):
            fresh = self._connection is None
            if self._connection is None:
                self._connection = http.client.HTTPSConnection(
                    "localhost", self.console.port, context=self.console.ssl_context(), timeout=self.timeout
                )
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                answer_headers = {name.lower(): value for name, value in response.getheaders()}
                if stream and response.status == 200:  # a stream let through: its first answer, then hang up
                    self.close()
                    return Answered(response.status, answer_headers, b"")
                payload = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if fresh or attempt == 1:
                    raise
                continue  # the kept-alive connection was closed by the server: once more on a new one
            except TimeoutError as error:
                self.close()
                raise AssertionError(f"{method} {path} was not answered within {self.timeout}s") from error
            if answer_headers.get("connection", "").lower() == "close":
                self.close()
            return Answered(response.status, answer_headers, payload)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@contextmanager
def caller(console: RunningConsole, timeout: float) -> Iterator[Caller]:
    client = Caller(console, timeout)
    try:
        yield client
    finally:
        client.close()


def _example(schema: dict[str, Any], name: str = "") -> Any:
    """A value the schema takes, preferring the plausible ones of FIELD_VALUES (enough that the call would run)."""
    if name in FIELD_VALUES:
        return FIELD_VALUES[name]
    if "oneOf" in schema:
        return _example(schema["oneOf"][0], name)
    if "anyOf" in schema:
        return _example(schema["anyOf"][0], name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {key: _example(inner, key) for key, inner in schema.get("properties", {}).items()}
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    return "x"


def operations(console: RunningConsole) -> list[Route]:
    """Every operation of the console's own OpenAPI document, with its path filled and a body it would take."""
    document = console.request("GET", OPENAPI).body
    routes: list[Route] = []
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: urllib.parse.quote(PATH_VALUES[m.group(1)], safe=""), template)
            query = QUERIES.get((method.upper(), template))
            if query:
                path = f"{path}?{query}"
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema is not None and "$ref" in schema:
                schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            routes.append(Route(method.upper(), path, None if schema is None else _example(schema)))
    return routes


def _encode(route: Route, case: Case) -> tuple[bytes | None, dict[str, str]]:
    if route.body is None and case.body_type == "json":
        return None, dict(case.headers)
    fields = route.body or {}
    if case.body_type == "form":
        text = urllib.parse.urlencode({key: str(value) for key, value in fields.items()})
        content_type = "application/x-www-form-urlencoded"
    else:
        text = json.dumps(fields)
        content_type = "text/plain" if case.body_type == "text" else "application/json"
    return text.encode(), {**case.headers, "Content-Type": content_type}


@dataclass
class Row:
    case: str
    refused: bool
    requests: int
    answered_403: int
    delta: Counts


def _run_refused(console: RunningConsole, case: Case, routes: list[Route]) -> Row:
    before = counts(console)
    refused = 0
    with caller(console, REFUSED_TIMEOUT) as client:
        for route in routes:
            body, headers = _encode(route, case)
            answer = client.send(route.method, route.path, body, headers)
            where = (case.name, route.label)
            assert answer.status == 403, (*where, answer.status, answer.body[:200])
            assert json.loads(answer.body).keys() == {"message"}, where
            assert not [name for name in answer.headers if name.startswith("access-control-allow")], where
            refused += 1
    delta = counts(console) - before
    assert delta == replace(NOTHING, refusals=refused), f"a refused case ran something: {case.name}: {delta}"
    return Row(case.name, True, len(routes), refused, delta)


def _run_allowed(console: RunningConsole, case: Case) -> Row:
    before = counts(console)
    before_insertion = _last_insertion(console, SESSION_READER)
    own = f"https://localhost:{console.port}"
    headers = {**case.headers, **({"Origin": own} if case.headers.get("Sec-Fetch-Site") == "same-origin" else {})}
    statuses: dict[str, int] = {}
    with caller(console, 30) as client:
        for route in ALLOWED_ROUTES:
            body, sent = _encode(route, Case(case.name, headers))
            answer = client.send(route.method, route.path, body, sent, stream=route.path in STREAMS)
            statuses[route.label] = answer.status
            assert answer.status == 200, (case.name, route.label, answer.status, answer.body[:200])
            if answer.headers.get("content-type", "").startswith("application/json") and route.path != OPENAPI:
                payload = json.loads(answer.body)
                if isinstance(payload, dict):  # Record answers a list
                    assert payload.get("statusCode", 0) == 0, (case.name, route.label, payload)
            if "Origin" in headers:
                assert answer.headers.get("access-control-allow-origin") == headers["Origin"], (case.name, route.label)
    # The card swap's identification runs in the reader's worker after the answer; its CardInserted event comes
    # after it: wait for the event, so that this case's count is all this case's.
    wait_for(lambda: _last_insertion(console, SESSION_READER) > before_insertion, 10, "the swapped card identified")
    delta = counts(console) - before
    assert delta.nhi_commands >= 1 and delta.pcsc_commands >= 1 and delta.dc_calls >= 1, (case.name, delta)
    return Row(case.name, False, len(ALLOWED_ROUTES), sum(1 for s in statuses.values() if s == 403), delta)


def _last_insertion(console: RunningConsole, reader: str) -> int:
    """The seq of the newest CardInserted event of `reader` (0 if none)."""
    rows = console.database_rows(
        "SELECT max(seq) FROM events WHERE type = 'CardInserted' AND json_extract(payload, '$.reader') = ?", reader
    )
    return int(rows[0][0] or 0)


@pytest.fixture
def session(console: RunningConsole) -> RunningConsole:
    """A session on the bench NHI reader, as in test_callers_console.py, so that card commands would really run."""
    port = console.request("GET", BENCH_NHI).body["port"]
    assert console.request("POST", "/api/common/v1/Initial", {"name": port}).body["statusCode"] == 0
    assert console.request("POST", "/api/sam/v1/Verification").body["statusCode"] == 0
    assert console.request("GET", "/api/hc/v1/Basic").body["statusCode"] == 0
    return console


def _table(rows: list[Row]) -> str:
    """One line a case: what was sent, how much was refused, and what each counter moved by."""
    head = f"{'case':<68} {'requests':>8} {'403':>4} {'NHI':>4} {'PC/SC':>5} {'DC':>3} {'records':>7} {'events':>6}"
    lines = [head]
    for row in rows:
        d = row.delta
        case = ("refused: " if row.refused else "allowed: ") + row.case
        lines.append(
            f"{case:<68} {row.requests:>8} {row.answered_403:>4} {d.nhi_commands:>4} {d.pcsc_commands:>5} "
            f"{d.dc_calls:>3} {d.records:>7} {d.events:>6}"
        )
    return "\n".join(lines)


def test_every_route_refuses_every_hostile_case_and_serves_the_allowed_ones(session: RunningConsole) -> None:
    started = time.monotonic()
    routes = operations(session)
    assert len(routes) >= 60, "the OpenAPI document lists the console's routes"
    assert any(route.path.startswith("/api/sim/v1/") for route in routes), "the bench's routes are in it"
    assert any(route.path in STREAMS for route in routes), "the live stream is in it"
    routes += [Route(method, path) for method, path in EXTRA_ROUTES]

    rows = [_run_refused(session, case, routes) for case in REFUSED_CASES]
    assert session.request("DELETE", "/api/settings/v1/Cors/localhost").body == {"statusCode": 0}
    try:
        rows.append(_run_refused(session, LOCALHOST_REMOVED, routes))
    finally:
        assert session.request("POST", "/api/settings/v1/Cors", {"allowHost": "localhost"}).body == {"statusCode": 0}
    assert "localhost" in session.request("GET", "/api/settings/v1/Cors").body["cors"]

    rows += [_run_allowed(session, case) for case in ALLOWED_CASES]

    refused_rows = [row for row in rows if row.refused]
    allowed_rows = [row for row in rows if not row.refused]
    total = sum((row.delta for row in refused_rows), NOTHING)
    served = sum((row.delta for row in allowed_rows), NOTHING)
    print(f"\n{_table(rows)}")
    print(
        f"hostile-caller matrix: {len(routes)} routes; {len(refused_rows)} refused cases, "
        f"{sum(row.requests for row in refused_rows)} requests, {sum(row.answered_403 for row in refused_rows)} "
        f"answered 403; card commands run {total.card_commands}, DC calls {total.dc_calls}, records written "
        f"{total.records}, events {total.events}, refusals kept {total.refusals}. {len(allowed_rows)} allowed cases, "
        f"{sum(row.requests for row in allowed_rows)} requests, none refused; card commands {served.card_commands}, "
        f"DC calls {served.dc_calls}, records {served.records}, events {served.events}. "
        f"{time.monotonic() - started:.1f}s"
    )
    assert total == replace(NOTHING, refusals=sum(row.requests for row in refused_rows)), "each refusal kept, once"
    assert all(row.answered_403 == row.requests for row in refused_rows)
    assert all(row.answered_403 == 0 and row.delta.records >= 1 for row in allowed_rows)


def _reader_counts(console: RunningConsole) -> dict[str, int]:
    return {reader["name"]: reader["cardCommands"] for reader in console.request("GET", BENCH_READERS).body["readers"]}


def test_the_bench_counts_what_reaches_its_cards_and_its_dc(console: RunningConsole) -> None:
    """The counters themselves, through the console: a counter that never moved would make every zero above a lie."""
    before = counts(console)
    # Initial with no name: the default PC/SC reader (hc-basic) and the bench's cloud SAM, verified at the DC.
    assert console.request("POST", "/api/common/v1/Initial").body["statusCode"] == 0
    after_initial = counts(console)
    assert (after_initial - before).dc_calls >= 2  # a challenge and a login at least
    readers = _reader_counts(console)
    assert console.request("GET", "/api/hc/v1/Basic").body["statusCode"] == 0
    now = _reader_counts(console)
    assert (
        now["NHI Sim Reader 0"] > readers["NHI Sim Reader 0"] and now["NHI Sim Reader 1"] == readers["NHI Sim Reader 1"]
    )
    delta = counts(console) - after_initial
    assert delta.records == 1 and delta.nhi_commands == 0, delta
    # A card put in is identified by its worker after the answer: counted in that reader only.
    inserted = _last_insertion(console, SESSION_READER)
    path = f"/api/sim/v1/Readers/{urllib.parse.quote(SESSION_READER)}/Card"
    assert console.request("PUT", path, {"profile": "hpc-nurse"}).status == 200
    wait_for(lambda: _last_insertion(console, SESSION_READER) > inserted, 10, "the new card identified")
    swapped = _reader_counts(console)
    assert swapped[SESSION_READER] > now[SESSION_READER] and swapped["NHI Sim Reader 0"] == now["NHI Sim Reader 0"]
    print(f"\ncounted: {counts(console) - before} over Initial, a card read and a card swap; per reader {swapped}")
