"""gunicorn does not kill a request that waits on the NHI reader's keypad (issue 9).

The API runs gthread workers: gunicorn's worker timeout is a heartbeat of each worker's main loop, and a
request waiting on the keypad waits in one of the worker's threads, so the heartbeat goes on. Shown here by
making the timeout short (`serve --gunicorn-timeout`, read by deploy/gunicorn_conf.py) and having the holder
type the PIN several timeouts after the request started: the request still answers OK, from the same API
processes, and the arbiter never reported a worker timeout. With a sync worker (one thread, heartbeat only
between requests) the same test fails: the arbiter kills the waiting worker and the client gets no answer.

Real here: every process, gunicorn, TLS, the bench's NHI reader on a pseudo-terminal and its keypad, which
takes keys while its PIN prompt is already waiting (sim/nhi_reader.py: the prompt reads a queue).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.deadlines import KEYPAD_SECONDS
from tests.integration.console import RunningConsole, running_console, wait_for
from tests.typed_secrets import HC_PROFILE_PIN, PROFILE_PIN

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GUNICORN_TIMEOUT = 3
HELD_FOR = 3 * GUNICORN_TIMEOUT
"""How long the holder takes to type the PIN: well past gunicorn's timeout (and its 1 s check), within the
keypad's own wait."""
assert HELD_FOR + 5 < KEYPAD_SECONDS, "the keypad must still be waiting when the PIN is typed"

BENCH_NHI = "/api/sim/v1/NhiReader"
HC_PIN = "/api/hc/v1/Pin"


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningConsole]:
    """The console with a short gunicorn timeout; gunicorn at debug level prints the configuration it runs with."""
    monkeypatch.setenv("NHI_CONSOLE_LOG_LEVEL", "debug")
    with running_console(tmp_path / "data", "--gunicorn-timeout", str(GUNICORN_TIMEOUT)) as running:
        yield running


def ok(console: RunningConsole, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=70)
    assert answer.status == 200, answer.body
    return dict(answer.body)


class PinRequest:
    """`POST /api/hc/v1/Pin` in a thread, on its own HTTPS connection, as a HIS waiting for the holder."""

    def __init__(self, console: RunningConsole) -> None:
        self._connection = http.client.HTTPSConnection(
            "localhost", console.port, context=console.ssl_context(), timeout=KEYPAD_SECONDS + 30
        )
        self.done = threading.Event()
        self.status: int | None = None
        self.body: Any = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="his-pin-request", daemon=True)

    def start(self) -> PinRequest:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        try:
            # With the NHI reader the holder types the PIN on its keypad; the body carries 000000 (contract.md).
            self._connection.request(
                "POST", HC_PIN, body=json.dumps({"pin": PROFILE_PIN}), headers={"Content-Type": "application/json"}
            )
            response = self._connection.getresponse()
            self.status, raw = response.status, response.read()
            try:
                self.body = json.loads(raw)
            except ValueError:
                self.body = raw[:200]
        except BaseException as error:  # reported by the test: a dropped connection is the failure looked for
            self.error = error
        finally:
            self.seconds = time.monotonic() - started
            self._connection.close()
            self.done.set()


def test_a_request_waiting_on_the_keypad_outlives_gunicorns_timeout(console: RunningConsole) -> None:
    log = console.log_path.read_text(errors="replace")
    assert f"  timeout: {GUNICORN_TIMEOUT}\n" in log, "gunicorn is not running with the short timeout"
    port = ok(console, "GET", BENCH_NHI)["port"]
    ok(console, "PUT", f"{BENCH_NHI}/Slots/hc/Card", {"profile": "hc-pin"})
    assert ok(console, "POST", "/api/common/v1/Initial", {"name": port})["statusCode"] == 0
    assert ok(console, "POST", "/api/sam/v1/Verification")["statusCode"] == 0
    wait_for(lambda: ok(console, "GET", "/api/hc/v1/Basic")["statusCode"] == 0, 10, "the hc-pin card read")
    api_processes = set(console.processes()["api"])
    assert len(api_processes) >= 2, "the arbiter and its workers"

    request = PinRequest(console).start()
    answered_early = request.done.wait(HELD_FOR)
    assert not answered_early, f"answered before the PIN was typed: {request.status} {request.body} {request.error}"
    assert console.status_ok(), "the API serves other calls while one waits on the keypad"
    ok(console, "POST", "/api/sim/v1/Keypad", {"keys": HC_PROFILE_PIN})
    wait_for(request.done.is_set, 30, "the PIN request's answer")

    print(f"\nthe PIN request answered after {request.seconds:.1f}s (gunicorn timeout {GUNICORN_TIMEOUT}s)")
    assert request.error is None, f"the request died waiting: {request.error!r}"
    assert (request.status, request.body) == (200, {"statusCode": 0})
    assert ok(console, "GET", "/api/common/v1/Status")["status"]["hc"]["verifiedPin"] is True
    assert set(console.processes()["api"]) == api_processes, "gunicorn replaced an API process"
    assert "WORKER TIMEOUT" not in console.log_path.read_text(errors="replace")
