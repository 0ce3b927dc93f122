"""A registration at the counter, end to end, the way a real HIS calls the console (issue 21).

Public HIS code written against the official console sends a JSON body with `Content-Type: application/json` on
every method, `{}` on GET and DELETE too, and takes any HTTP status but 2xx as "the console is broken". So here:
every console call carries a body, TLS is verified against the console's CA and the twin's `caPem` (each trusting
nothing else), every step's answer is checked, and the visit is followed in the twin's reads and its state.

- the registration, step by step in the test (each answer checked, the twin's state between the steps);
- the example `examples/register_visit.py` run as a HIS developer runs it, against the running console, so it
  cannot rot; and its exit status and message when a step fails;
- every route of the OpenAPI document that takes no body (GET, DELETE, POSTs without a required body) takes `{}`
  and answers HTTP 200;
- the example page (`/console/examples/`, `--sim` only) clicked through in a headless Chromium, served by the
  console and, through the allow-list, from another localhost origin.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sim.web_api.client import WebApiClient
from tests.integration.browser import ARTIFACTS, chromium
from tests.integration.console import RunningConsole

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "register_visit.py"
EXAMPLE_PAGE = ROOT / "api" / "pages" / "examples"
HC_CARD_ID, HC_ID_NO, HC_NAME = "900000000711", "R88855084A", "測試資料"
BENCH_SAM_ID, BENCH_HOSPITAL = "901000000047", "777777777"
SIGNATURE_BLOCK = ("clientRandom", "hospitalId", "samId", "signature", "hcId", "hcIdNo")
HC_SIGNATURE = "/api/hc/v1/Signature/Hc"


def his(console: RunningConsole, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call as public HIS code makes it: a JSON body always (`{}` when there is nothing to send), and only an
    HTTP 200 with a JSON object is an answer at all."""
    answer = console.request(method, path, {} if body is None else body, timeout=70)
    assert answer.status == 200, (method, path, answer.status, answer.body)
    assert isinstance(answer.body, dict), (method, path, answer.body)
    return dict(answer.body)


def zero(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer.get("statusCode") == 0, answer
    return answer


def twin_state(console: RunningConsole) -> dict[str, Any]:
    return zero(his(console, "GET", "/api/sim/v1/WebApi/State"))


def records(console: RunningConsole) -> list[dict[str, Any]]:
    """`GET /api/common/v1/Record` answers a JSON array (the spec's form), with a body like every HIS call."""
    answer = console.request("GET", "/api/common/v1/Record?take=100", {}, timeout=10)
    assert answer.status == 200 and isinstance(answer.body, list), answer
    return list(answer.body)


def card_of(state: dict[str, Any]) -> dict[str, Any]:
    [card] = [card for card in state["cards"] if card["cardId"] == HC_CARD_ID]
    return dict(card)


def visit_at(state: dict[str, Any], when: str) -> dict[str, Any]:
    [visit] = [
        visit for visit in state["visits"] if visit["cardId"] == HC_CARD_ID and visit["treatmentDateTime"] == when
    ]
    return dict(visit)


class Counter:
    """The HIS side of the registration: the console signs, the twin acts; every answer checked."""

    def __init__(self, console: RunningConsole) -> None:
        self.console = console
        where = zero(his(console, "GET", "/api/sim/v1/WebApi"))
        assert where["baseUrl"].startswith("https://localhost:") and "BEGIN CERTIFICATE" in where["caPem"]
        self.twin = WebApiClient.from_bench(where)  # trusts caPem, and nothing else
        self.signatures = 0

    def signed(self, service_type: str) -> dict[str, Any]:
        answer = zero(his(self.console, "POST", HC_SIGNATURE, {"serviceType": service_type}))
        assert (answer["serviceType"], answer["samId"], answer["hospitalId"]) == (
            service_type,
            BENCH_SAM_ID,
            BENCH_HOSPITAL,
        )
        assert (answer["hcId"], answer["hcIdNo"]) == (HC_CARD_ID, HC_ID_NO)
        assert len(base64.b64decode(answer["clientRandom"], validate=True)) == 8
        assert len(base64.b64decode(answer["signature"], validate=True)) == 256
        self.signatures += 1
        return {name: answer[name] for name in SIGNATURE_BLOCK}

    def web_api(self, path: str, service_type: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.twin.post(path, {**self.signed(service_type), **(fields or {})})
        assert answer.status == 200 and isinstance(answer.body, dict), (path, answer.status, answer.raw[:300])
        return zero(dict(answer.body))

    def visits(self) -> list[dict[str, Any]]:
        return list(self.web_api("/api/v1/Treatment/NoNeedHPC", "01")["treatments"])


def test_a_registration_end_to_end_as_a_his_calls_it(console: RunningConsole) -> None:
    counter = Counter(console)
    before = twin_state(console)
    visits_left = card_of(before)["treatmentCounter"]

    assert zero(his(console, "POST", "/api/common/v1/Initial")) == {"statusCode": 0}
    assert zero(his(console, "POST", "/api/sam/v1/Verification")) == {"statusCode": 0}
    status = zero(his(console, "GET", "/api/common/v1/Status"))["status"]
    assert status["initialized"] is True and status["name"] == BENCH_SAM_ID and status["sam"]["status"] == 2

    data = counter.web_api("/api/v1/BasicData/Register", "01")
    assert (data["cardSn"], data["idCardNum"], data["name"]) == (HC_CARD_ID, HC_ID_NO, HC_NAME)
    assert data["treatmentCounter"] == visits_left and data["cardValidity"] == card_of(before)["cardValidity"]

    visit = counter.web_api(
        "/api/v1/SequelNumber/Next", "03", {"treatmentItem": "01", "babyTreatment": " ", "afterCheck": "1"}
    )
    when, number = visit["treatmentDateTime"], visit["sequenceNumber"]
    assert len(when) == 13 and when.isdigit() and len(number) == 4 and len(visit["treatmentNumber"]) == 20
    assert (visit["hospitalId"], visit["samId"], visit["isSameDay"]) == (BENCH_HOSPITAL, BENCH_SAM_ID, False)
    assert len(base64.b64decode(visit["signature"], validate=True)) == 256
    taken = twin_state(console)
    assert visit_at(taken, when)["rolledBack"] is False and visit_at(taken, when)["sequenceNumber"] == number
    assert card_of(taken)["treatmentCounter"] == visits_left - 1

    codes = {"treatmentDateTime": when, "afterCheck": "1", "mainCode": "J069", "outpatientFee": 350, "costFee": 50}
    assert counter.web_api("/api/v1/Treatment/WriteCodeFee", "02", codes) == {"statusCode": 0}
    prescription = {
        "treatmentDateTime": when,
        "treatmentItem": "1",
        "treatmentItemCode": "A000001100",
        "treatmentPosition": "",
        "usage": "TID",
        "days": "3",
        "totalQuantity": "9.00",
        "deliveryNotes": "01",
    }
    written = counter.web_api(
        "/api/v1/Prescription/Write", "02", {"treatmentDateTime": when, "prescriptions": [prescription]}
    )
    assert len(written["signatureItems"]) == len(written["hexSignatureItems"]) == 1
    assert base64.b64decode(written["signatureItems"][0]) == bytes.fromhex(written["hexSignatureItems"][0])

    [shown] = [entry for entry in counter.visits() if entry["treatDateTime"] == when]
    assert (shown["hospitalVisit"], shown["hospitalId"], shown["treatmentItem"]) == (number, BENCH_HOSPITAL, "01")
    assert (shown["outpatientFee"], shown["costFee"]) == (350, 50)
    kept = visit_at(twin_state(console), when)
    assert kept["codes"]["mainCode"] == "J069" and kept["prescriptions"] == [prescription]

    assert counter.web_api("/api/v1/SequelNumber/Rollback", "03", {"treatmentDateTime": when}) == {"statusCode": 0}
    assert when not in {entry["treatDateTime"] for entry in counter.visits()}
    after = twin_state(console)
    assert visit_at(after, when)["rolledBack"] is True
    assert card_of(after)["treatmentCounter"] == visits_left

    # The console recorded every signature it made, each answered 0: what an auditor finds for this visit.
    signatures = [record for record in records(console) if record["url"] == HC_SIGNATURE]
    assert len(signatures) == counter.signatures == 7 and {record["statusCode"] for record in signatures} == {0}


# --- the example, as a HIS developer runs it -----------------------------------------------------------------


def run_example(console: RunningConsole, *args: str) -> subprocess.CompletedProcess[str]:
    """`python examples/register_visit.py` against this console: its address and CA by option, nothing inherited
    from the environment that could point it elsewhere."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NHI_CONSOLE")}
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--console",
            f"https://localhost:{console.port}",
            "--console-ca",
            str(console.ca_file),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env=environment,
        cwd=ROOT,
        check=False,
    )


def test_the_example_registration_runs_against_the_bench(console: RunningConsole) -> None:
    before = twin_state(console)
    finished = run_example(console)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    out = finished.stdout
    assert out.startswith("SIMULATION") and out.rstrip().endswith("done: every step answered statusCode 0")
    for step in (
        "/api/common/v1/Initial",
        "/api/sam/v1/Verification",
        "/api/v1/BasicData/Register",
        "/api/v1/SequelNumber/Next",
        "/api/v1/Treatment/WriteCodeFee",
        "/api/v1/Prescription/Write",
        "/api/v1/Treatment/NoNeedHPC",
        "/api/v1/SequelNumber/Rollback",
    ):
        assert step in out, step
    assert "is there" in out and "is gone" in out

    after = twin_state(console)
    [visit] = [visit for visit in after["visits"] if visit not in before["visits"]]
    assert (visit["cardId"], visit["hospitalId"], visit["samId"]) == (HC_CARD_ID, BENCH_HOSPITAL, BENCH_SAM_ID)
    assert visit["rolledBack"] is True and visit["codes"]["mainCode"] == "J069" and len(visit["prescriptions"]) == 1
    assert f"visit {visit['treatmentDateTime']}, sequence {visit['sequenceNumber']}" in out
    assert card_of(after)["treatmentCounter"] == card_of(before)["treatmentCounter"]
    assert after["signaturesSeen"] - before["signaturesSeen"] == 7  # 01, 03, 02, 02, 01, 03, 01: each once
    signatures = [record for record in records(console) if record["url"] == HC_SIGNATURE]
    assert len(signatures) == 7 and {record["statusCode"] for record in signatures} == {0}

    again = run_example(console)  # the session is open now: Initial answers 1001, and the HIS goes on with it
    assert again.returncode == 0, again.stdout + again.stderr
    assert "statusCode 1001" in again.stdout


def test_the_example_says_which_step_failed_and_exits_non_zero(console: RunningConsole) -> None:
    fault = {"fault": "http500", "count": 1}
    assert his(console, "POST", "/api/sim/v1/WebApi/Faults", fault) == {}
    failed = run_example(console)
    assert failed.returncode == 1
    assert "FAILED: the web-API twin answered HTTP 500 to POST /api/v1/BasicData/Register" in failed.stderr
    assert "/api/v1/SequelNumber/Next" not in failed.stdout  # it stopped there

    wrong_ca = run_example(console, "--console-ca", str(console.data_dir / "sim-dc" / "web-api" / "ca.pem"))
    assert wrong_ca.returncode == 1 and "TLS failed" in wrong_ca.stderr
    missing = run_example(console, "--console-ca", str(console.data_dir / "no-such-ca.pem"))
    assert missing.returncode == 2 and "no CA certificate" in missing.stderr


# --- every route without a body takes `{}` -------------------------------------------------------------------

PATH_VALUES = {
    "sam_id": "901000000601",  # imported by the test first, so that its removal does what it says
    "host": "his.example.org",  # allowed by the test first
    "slot": "hc",
    "name": "Desk 2",  # a bench reader the test adds
}
"""A value for each path parameter of a body-less route; a new one fails the test until it is given here."""
METHOD_ORDER = {"get": 0, "post": 1, "put": 1, "patch": 1, "delete": 2}
"""Reads first, then the POSTs without a body, then the removals, so that each route acts on something."""
LAST = ("/api/sim/v1/NhiReader/Unplug", "/api/sim/v1/NhiReader/Replug", "/api/sim/v1/Readers/{name}")
"""Within their method: unplugging before replugging, and removing the bench reader after its card."""


def bodiless_routes(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) of every operation whose request body is absent or optional, in the order to call them."""
    found = [
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in METHOD_ORDER and not (operation.get("requestBody") or {}).get("required", False)
    ]
    return sorted(
        found,
        key=lambda route: (METHOD_ORDER[route[0]], route[1] in LAST, LAST.index(route[1]) if route[1] in LAST else 0),
    )


def stream_takes_an_empty_body(console: RunningConsole) -> None:
    """The live event stream with `{}`: HTTP 200 and its first event, then the connection closed (it never ends)."""
    connection = http.client.HTTPSConnection("localhost", console.port, context=console.ssl_context(), timeout=10)
    try:
        connection.request("GET", "/api/events/v1/Stream", body=b"{}", headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type", "").startswith("text/event-stream")
        assert response.readline()  # the snapshot's first line: the stream is running, not refused
    finally:
        connection.close()


def test_every_route_without_a_body_takes_an_empty_json_object(console: RunningConsole) -> None:
    document = console.request("GET", "/api/swagger/v1/swagger.json", {}).body
    routes = bodiless_routes(document)
    assert ("get", "/api/hc/v1/Basic") in routes and ("delete", "/api/sam/v1/Logout") in routes
    assert ("post", "/api/common/v1/Finalize") in routes and ("post", "/api/common/v1/Initial") in routes

    # What the removals act on: a reader with a card, an allowed host, an imported cloud SAM.
    assert console.request("POST", "/api/sim/v1/Readers", {"name": PATH_VALUES["name"]}).status == 200
    card = {"profile": "hc-pin"}
    assert console.request("PUT", f"/api/sim/v1/Readers/{quote(PATH_VALUES['name'])}/Card", card).status == 200
    assert zero(his(console, "POST", "/api/settings/v1/Cors", {"allowHost": PATH_VALUES["host"]}))
    imported_sam = {"samId": PATH_VALUES["sam_id"], "hospitalId": BENCH_HOSPITAL}
    issued = his(console, "POST", "/api/sim/v1/CloudSam", {**imported_sam, "contract": "active"})
    imported = {**imported_sam, "cloudSamContext": issued["cloudSamContext"]}
    assert zero(his(console, "POST", "/api/settings/v1/CloudSam", imported))
    zero(his(console, "POST", "/api/common/v1/Initial"))

    answered: dict[str, int] = {}
    for method, path in routes:
        if path == "/api/events/v1/Stream":
            stream_takes_an_empty_body(console)
            answered[f"{method.upper()} {path}"] = 200
            continue
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        missing = [name for name in names if name not in PATH_VALUES]
        assert not missing, f"{method.upper()} {path}: give PATH_VALUES a value for {missing}"
        url = path
        for name in names:
            url = url.replace("{" + name + "}", quote(PATH_VALUES[name], safe=""))
        answer = console.request(method.upper(), url, {}, timeout=70)
        answered[f"{method.upper()} {path}"] = answer.status
        assert answer.status == 200, (method.upper(), url, answer.status, answer.body)
    print(f"\n{len(answered)} body-less routes answered HTTP 200 to {{}}")
    # The removals did what they say (so the route ran, not a refusal at HTTP 200).
    assert PATH_VALUES["host"] not in zero(his(console, "GET", "/api/settings/v1/Cors"))["cors"]
    assert PATH_VALUES["sam_id"] not in zero(his(console, "GET", "/api/settings/v1/CloudSam"))["sams"]
    readers = his(console, "GET", "/api/sim/v1/Readers")["readers"]
    assert PATH_VALUES["name"] not in {reader["name"] for reader in readers}


# --- the example page, in a browser ---------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


STEPS = ("initial", "sam", "basic", "signature")


def click_through(page: Any) -> dict[str, Any]:
    """Run the page's four steps with its own buttons, each after the one before answered statusCode 0 (waits on
    selectors: the page's CSP, no eval, stays on); the answers the page shows."""
    shown: dict[str, Any] = {}
    for step in STEPS:
        page.click(f"button[data-step={step}]")
        page.wait_for_selector(f"#step-{step}:not([data-code=''])", timeout=70_000)
        code = page.get_attribute(f"#step-{step}", "data-code")
        text = page.text_content(f"#step-{step} .answer")
        assert code == "0", (step, code, page.text_content(f"#step-{step} .outcome"), text)
        shown[step] = json.loads(text or "null")
    return shown


def check_shown(shown: dict[str, Any]) -> None:
    assert shown["initial"] == {"statusCode": 0} and shown["sam"] == {"statusCode": 0}
    assert (shown["basic"]["cardId"], shown["basic"]["idNo"], shown["basic"]["name"]) == (HC_CARD_ID, HC_ID_NO, HC_NAME)
    signature = shown["signature"]
    assert (signature["serviceType"], signature["samId"], signature["hcId"]) == ("01", BENCH_SAM_ID, HC_CARD_ID)


def test_the_example_page_does_the_first_half_from_the_console(console: RunningConsole, browser: Any) -> None:
    origin = f"https://localhost:{console.port}"
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1000, "height": 1100})
    page = context.new_page()
    elsewhere: list[str] = []
    page.on(
        "request", lambda request: None if request.url.startswith((origin, "data:")) else elsewhere.append(request.url)
    )
    page.goto(f"{origin}/console/examples/")  # redirected to .../index.html, from which its files resolve
    assert page.url == f"{origin}/console/examples/index.html"
    assert page.text_content("#console-url") == origin
    check_shown(click_through(page))
    page.screenshot(path=str(ARTIFACTS / "example-page.png"), full_page=True)
    context.close()
    assert elsewhere == []
    urls = [record["url"] for record in records(console)]
    assert {"/api/common/v1/Initial", "/api/sam/v1/Verification", "/api/hc/v1/Basic", HC_SIGNATURE} <= set(urls)


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture
def localhost_site() -> Iterator[int]:
    """The example page's files served over plain HTTP by another localhost server, as
    `python3 -m http.server --directory api/pages/examples` serves them: another origin than the console's."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietFiles, directory=str(EXAMPLE_PAGE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_the_example_page_from_another_localhost_origin_goes_through_the_allow_list(
    console: RunningConsole, browser: Any, localhost_site: int
) -> None:
    context = browser.new_context(ignore_https_errors=True)  # the console's certificate: see test_pages_browser
    page = context.new_page()
    calls: list[Any] = []  # the page's requests to the console; their headers read once the page is done
    page.on("request", lambda request: calls.append(request) if "/api/" in request.url else None)
    page.goto(f"http://localhost:{localhost_site}/index.html?port={console.port}")
    assert page.text_content("#console-url") == f"https://localhost:{console.port}"
    page.click("#run-all")
    page.wait_for_selector("#step-signature:not([data-code=''])", timeout=70_000)
    shown = {step: json.loads(page.text_content(f"#step-{step} .answer") or "null") for step in STEPS}
    check_shown(shown)
    assert [call.url.split("/api/", 1)[0] for call in calls] == [f"https://localhost:{console.port}"] * len(STEPS)
    origins = {call.all_headers().get("origin") for call in calls}
    assert origins == {f"http://localhost:{localhost_site}"}  # fetch() in cors mode sent it

    # Off the allow-list, the same page gets nothing from the console, and the console runs nothing for it.
    assert zero(his(console, "DELETE", "/api/settings/v1/Cors/localhost"))
    before = len(records(console))
    page.reload()
    page.click("#run-all")
    page.wait_for_selector("#step-initial[data-code='error']", timeout=20_000)
    context.close()
    assert len(records(console)) == before
