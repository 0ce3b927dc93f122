"""The hostile-caller attack of issue 20 in a real headless Chromium: a page of another origin points `<img>`,
`<script>`, `<link rel=stylesheet>`, a form, an `EventSource` and `fetch(…, {mode: "no-cors"})` at the console's
card routes; the bench's counters must show that nothing ran.

The attack page is served from `http://127.0.0.1:<port>`: a loopback page, but `127.0.0.1` is not on the default
allow-list (`localhost`, `www.nhi.gov.tw`; asserted), so its requests carry no allowed origin, and its no-cors GETs
carry no `Origin` at all, only `Sec-Fetch-Site: cross-site`. Serving it from loopback keeps Chrome's Local Network
Access out of the way (a loopback page calling loopback is not a more private address space), so a request that
was not answered could only be the browser's doing: each request to the console is watched from the browser's side
and must have come back an HTTP 403, the console's refusal.

The control: the very same page from `http://localhost:<port>` (on the list). Its CORS fetch of the health card
carries an allowed `Origin` and must run: card commands, a record. That proves this browser, here, sends such
requests and that the counters see them; its no-cors GETs, which carry no `Origin`, are refused all the same.

The console's certificate is accepted by the browser context (`ignore_https_errors`), as in test_pages_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.bench_counts import NOTHING, counts
from tests.integration.browser import chromium, page_server
from tests.integration.console import RunningConsole, running_console
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ATTACK_PAGE = """<!DOCTYPE html><title>a page of another site</title>
<img src="{api}/api/hc/v1/Basic">
<img src="{api}/api/hpc/v1/Basic">
<script src="{api}/api/sam/v1/Basic"></script>
<link rel="stylesheet" href="{api}/api/hc/v1/Pin">
<iframe name="sink"></iframe>
<form id="csrf" method="post" action="{api}/api/sam/v1/Signature" target="sink" enctype="text/plain">
<input name='{{"serviceType":"01","x":"' value='"}}'></form>
<script>
document.getElementById("csrf").submit();
const stream = new EventSource("{api}/api/events/v1/Stream");
const opened = new Promise(resolve => {{
  stream.onopen = () => resolve("open");
  stream.onerror = () => resolve("error");
}});
const status = answer => answer.type === "opaque" ? "opaque" : String(answer.status);
window.settled = Promise.allSettled([
  fetch("{api}/api/hc/v1/Basic", {{mode: "no-cors"}}).then(status),
  fetch("{api}/api/hpc/v1/Basic", {{mode: "no-cors", credentials: "include"}}).then(status),
  fetch("{api}/api/sam/v1/Signature", {{mode: "no-cors", method: "POST", body: '{{"serviceType":"01"}}'}}).then(status),
  fetch("{api}/api/hc/v1/Basic").then(status),
  opened,
]).then(results => results.map(result => result.status === "fulfilled" ? result.value : "failed"));
</script>
"""
"""Every kind of request a page can make without the console's consent; `{api}` is the console's origin."""
SENT_ELEMENTS = 10
"""Requests the page makes of the console: 2 img, script, link, form, EventSource, 4 fetch."""


@dataclass
class Sent:
    """One request of the page to the console as the browser's network stack saw it (DevTools protocol)."""

    method: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    """What went on the wire, fetch metadata and `Origin` included (names in lower case)."""
    status: int | None = None
    """The console's HTTP status, as received: before ORB or CORS hid the answer from the page."""


@dataclass
class Watched:
    """Every request the page sent to the console, with what the console answered, from the DevTools protocol.

    Playwright's own `response` events miss most of them: Chromium's Opaque Response Blocking drops a no-cors
    JSON answer (`net::ERR_BLOCKED_BY_ORB`) and its status with it. The network domain's `ExtraInfo` events carry
    the raw request headers and status line, before any of that: the console's own answer.
    """

    api: str
    sent: dict[str, Sent] = field(default_factory=dict)

    def attach(self, context: Any, page: Any) -> None:
        session = context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", self._request)
        session.on("Network.requestWillBeSentExtraInfo", self._request_headers)
        session.on("Network.responseReceivedExtraInfo", self._response)
        session.send("Network.enable")

    def _one(self, request_id: str) -> Sent:
        return self.sent.setdefault(request_id, Sent())

    def _request(self, event: dict[str, Any]) -> None:
        request = self._one(event["requestId"])
        request.method, request.path = event["request"]["method"], event["request"]["url"]

    def _request_headers(self, event: dict[str, Any]) -> None:
        self._one(event["requestId"]).headers = {name.lower(): value for name, value in event["headers"].items()}

    def _response(self, event: dict[str, Any]) -> None:
        self._one(event["requestId"]).status = int(event["statusCode"])

    def to_console(self) -> list[Sent]:
        return [
            Sent(request.method, request.path.removeprefix(self.api), request.headers, request.status)
            for request in self.sent.values()
            if request.path.startswith(self.api)
        ]

    def answered(self) -> bool:
        requests = self.to_console()
        return len(requests) >= SENT_ELEMENTS and all(request.status is not None for request in requests)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data") as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _visit(browser: Any, console: RunningConsole, url: str) -> tuple[list[str], Watched]:
    """Open `url`, wait for its load event and every request it made to settle; what the page and browser saw."""
    api = f"https://localhost:{console.port}"
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        watched = Watched(api)
        watched.attach(context, page)
        page.goto(url, wait_until="load")
        settled: list[str] = page.evaluate("() => window.settled")
        wait_for(watched.answered, 10, "the console's answer to every request the page sent")
    finally:
        context.close()
    return settled, watched


def test_a_hostile_page_in_chromium_runs_nothing_and_the_same_page_from_an_allowed_origin_does(
    console: RunningConsole, browser: Any
) -> None:
    assert console.request("POST", "/api/common/v1/Initial").body["statusCode"] == 0
    assert console.request("GET", "/api/hc/v1/Basic").body["statusCode"] == 0  # card and SAM authenticated once
    cors = console.request("GET", "/api/settings/v1/Cors").body["cors"]
    assert "127.0.0.1" not in cors and "localhost" in cors, cors
    html = ATTACK_PAGE.format(api=f"https://localhost:{console.port}")
    with page_server(html) as port:
        before = counts(console)
        attack, attack_seen = _visit(browser, console, f"http://127.0.0.1:{port}/attack.html")
        after_attack = counts(console)
        control, control_seen = _visit(browser, console, f"http://localhost:{port}/attack.html")
        after_control = counts(console)  # its card read was answered 200 before the page settled
    attack_sent, control_sent = attack_seen.to_console(), control_seen.to_console()
    print(f"\nattack page: fetch/EventSource settled as {attack}; the console answered:")
    for request in sorted(attack_sent, key=lambda r: (r.path, r.method)):
        fetch_site, origin = request.headers.get("sec-fetch-site"), request.headers.get("origin")
        print(f"  {request.method} {request.path}: {request.status} (Sec-Fetch-Site {fetch_site}, Origin {origin})")
    print(f"control page: settled as {control}; the console answered:")
    for request in sorted(control_sent, key=lambda r: (r.path, r.method)):
        fetch_site, origin = request.headers.get("sec-fetch-site"), request.headers.get("origin")
        print(f"  {request.method} {request.path}: {request.status} (Sec-Fetch-Site {fetch_site}, Origin {origin})")
    print(f"counted: attack {after_attack - before}; control {after_control - after_attack}")

    attacked = after_attack - before
    assert replace(attacked, refusals=0) == NOTHING, "the hostile page made the console run something"
    assert attacked.refusals == len(attack_sent), "each refused request is kept in the log, once"
    assert len(attack_sent) >= SENT_ELEMENTS, "the browser sent every request of the page"
    assert {request.status for request in attack_sent} == {403}, [(r.method, r.path, r.status) for r in attack_sent]
    assert all(request.headers.get("sec-fetch-site") == "cross-site" for request in attack_sent)
    assert attack[3:] == ["failed", "error"]  # the CORS fetch and the stream: refused, so no answer to read

    assert control[3] == "200" and control[4] == "open", control
    delta = after_control - after_attack
    assert delta.card_commands > 0 and delta.records >= 1
    no_origin = [request for request in control_sent if "origin" not in request.headers]
    assert no_origin and {request.status for request in no_origin} == {403}  # no-cors GETs: no Origin, refused
