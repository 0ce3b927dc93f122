"""The console's pages in a real headless Chromium (Debian's, driven by Playwright), against the running console.

Swagger UI loads from the console's own files and lists every operation; the status-light page turns a light
from white as a card goes in, without a reload, within a second; a web page from an allowed origin can call the
console, one from a disallowed origin cannot, and for that one the console ran nothing.

The console's certificate is accepted for these pages by the browser context (`ignore_https_errors`): making a
browser trust the console's CA properly is the deployment's job (`nhi-console cert --install`), tested there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.browser import ARTIFACTS, chromium, page_server
from tests.integration.console import RunningConsole, running_console

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

READER_0 = "NHI Sim Reader 0"
WHITE, BROWN, GREEN = "rgb(255, 255, 255)", "rgb(139, 90, 43)", "rgb(46, 157, 70)"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data") as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def lamp(page: Any, card: str) -> tuple[str, str]:
    """The light's level attribute and the colour the browser paints it once its colour transition (0.15 s in
    console.css) has ended: read until two reads 0.2 s apart agree, or a mid-transition shade fails the test."""
    read = None
    for _ in range(10):
        level, colour = page.eval_on_selector(
            f"#light-{card} .lamp", "lamp => [lamp.dataset.level, getComputedStyle(lamp).backgroundColor]"
        )
        if (level, colour) == read:
            break
        read = (level, colour)
        page.wait_for_timeout(200)
    return level, colour


def counts(console: RunningConsole) -> tuple[int, int]:
    """(events, calls) in the console's log: what 'ran nothing' is measured by. Refusals are left out: each is kept
    as a `CallRefused` event (issue 22), which is the log noting that nothing ran."""
    [(events,)] = console.database_rows("SELECT count(*) FROM events WHERE type != 'CallRefused'")
    [(calls,)] = console.database_rows("SELECT count(*) FROM calls")
    return events, calls


def refusals(console: RunningConsole) -> list[tuple[int, str]]:
    """The refusals kept in the log: (status, caller)."""
    return console.database_rows(
        "SELECT json_extract(CAST(payload AS TEXT), '$.status'), json_extract(CAST(payload AS TEXT), '$.caller')"
        " FROM events WHERE type = 'CallRefused' ORDER BY seq"
    )


def test_swagger_ui_loads_from_the_console_and_lists_every_operation(console: RunningConsole, browser: Any) -> None:
    document = console.request("GET", "/api/swagger/v1/swagger.json").body
    operations = sum(len(methods) for methods in document["paths"].values())
    origin = f"https://localhost:{console.port}"
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    elsewhere: list[str] = []
    page.on(
        "request", lambda request: None if request.url.startswith((origin, "data:")) else elsewhere.append(request.url)
    )
    page.goto(f"{origin}/api/swagger/index.html")
    page.wait_for_selector(".opblock", timeout=20_000)
    listed = page.locator(".opblock").count()
    paths = page.eval_on_selector_all(".opblock-summary-path", "nodes => nodes.map(node => node.dataset.path)")
    page.screenshot(path=str(ARTIFACTS / "swagger-ui.png"))
    context.close()
    assert listed == operations
    assert {"/api/common/v1/Status", "/api/hc/v1/Basic", "/api/events/v1/Stream"} <= set(paths)
    assert elsewhere == []  # no CDN, nothing but this console


def test_a_light_turns_from_white_as_a_card_goes_in_without_a_reload(console: RunningConsole, browser: Any) -> None:
    assert console.request("POST", "/api/common/v1/Initial").body["statusCode"] == 0
    path = f"/api/sim/v1/Readers/{quote(READER_0)}/Card"
    assert console.request("DELETE", path).status == 200
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 760})
    page = context.new_page()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    # Waits are on selectors, not on JavaScript predicates: the page's CSP (no eval) stays in force.
    page.goto(f"https://localhost:{console.port}/console/")
    page.wait_for_selector("#connection[data-state=live]", timeout=10_000)
    page.wait_for_selector("#light-hc .lamp[data-level='0']", timeout=10_000)
    assert lamp(page, "hc") == ("0", WHITE)
    page.wait_for_selector("#light-sam .lamp[data-level='2']", timeout=10_000)
    assert lamp(page, "sam") == ("2", GREEN)
    loaded = list(navigations)
    started = time.monotonic()
    assert console.request("PUT", path, {"profile": "hc-basic"}).status == 200
    page.wait_for_selector("#light-hc .lamp:not([data-level='0'])", timeout=5_000)
    took = time.monotonic() - started
    page.wait_for_timeout(200)  # the colour's 0.15 s transition, for the screenshot
    page.screenshot(path=str(ARTIFACTS / "console-light.png"))
    assert lamp(page, "hc") == ("1", BROWN)
    assert navigations == loaded  # no reload: the light changed in the page as it was
    rows = page.eval_on_selector_all(
        "#readers tr", "rows => rows.map(row => [row.dataset.reader, row.cells[1].textContent])"
    )
    assert [READER_0, "健保卡 health card"] in rows
    # The bench's own controls on the page: remove the card again; the light goes back to white.
    page.locator(f"#readers tr[data-reader='{READER_0}'] button", has_text="remove").click()
    page.wait_for_selector("#light-hc .lamp[data-level='0']", timeout=5_000)
    context.close()
    print(f"\nthe health card light left white {took * 1000:.0f} ms after the bench inserted the card")
    assert took < 1.0


CALLER_PAGE = "<!DOCTYPE html><title>a clinic's page</title><p>calls the console</p>"

CALL = """async ([url, method, contentType, body]) => {
  try {
    const answer = await fetch(url, body === null ? {method} : {method, headers: {"Content-Type": contentType}, body});
    return "answered " + answer.status + " " + JSON.stringify(await answer.json());
  } catch (error) {
    return "refused " + error.name;
  }
}"""


def test_an_allowed_page_can_call_the_console_and_a_disallowed_one_runs_nothing(
    console: RunningConsole, browser: Any
) -> None:
    assert console.request("POST", "/api/common/v1/Initial").body["statusCode"] == 0
    console.request("GET", "/api/hc/v1/Basic")  # the card authenticated once: later calls would change nothing
    api = f"https://localhost:{console.port}"
    signature = [f"{api}/api/hc/v1/Signature/Hc", "POST"]
    with page_server(CALLER_PAGE) as port:
        context = browser.new_context(ignore_https_errors=True)
        allowed, disallowed = context.new_page(), context.new_page()
        allowed.goto(f"http://localhost:{port}/page.html")  # host localhost: on the allow-list
        disallowed.goto(f"http://127.0.0.1:{port}/page.html")  # host 127.0.0.1: not on it
        assert console.request("GET", "/api/settings/v1/Cors").body["cors"] == ["localhost", "www.nhi.gov.tw"]

        before = counts(console)
        status = allowed.evaluate(CALL, [f"{api}/api/common/v1/Status", "GET", None, None])
        assert status.startswith('answered 200 {"statusCode":0')
        signed = allowed.evaluate(CALL, [*signature, "application/json", '{"serviceType":"01"}'])  # preflighted
        assert signed.startswith('answered 200 {"statusCode":0') and '"signature"' in signed
        after_allowed = counts(console)
        assert after_allowed[1] == before[1] + 2  # both calls ran and were recorded

        refused = [
            disallowed.evaluate(CALL, [f"{api}/api/common/v1/Status", "GET", None, None]),
            # Sent without a preflight (a "simple" request): it reaches the console, which must run nothing.
            disallowed.evaluate(CALL, [*signature, "text/plain", '{"serviceType":"01"}']),
            disallowed.evaluate(CALL, [*signature, "application/json", '{"serviceType":"01"}']),  # preflight refused
            disallowed.evaluate(CALL, [f"{api}/api/common/v1/Finalize", "POST", "text/plain", "{}"]),
        ]
        context.close()
    assert refused == ["refused TypeError"] * 4
    assert counts(console) == after_allowed  # no event, no record: nothing ran
    # Each reached the console (the third as its preflight) and was kept as a refusal from that page.
    assert refusals(console)[-4:] == [(403, f"http://127.0.0.1:{port}")] * 4
    assert console.request("GET", "/api/common/v1/Status").body["status"]["initialized"] is True
