"""The bench's controls of the web-API twin, served on the DC simulator's port under `/sim/v1/WebApi`.

Why there: the console's control API reaches the bench's other half through the DC simulator's port already
(`sim.dc_control`); the twin lives in that process, so the DC service hands these paths over
(`DcService.mount_bench_controls`). The console's routes (`/api/sim/v1/WebApi...`, sim/control_api.py) pass
them on. Answers and errors in the DC simulator's bench style: JSON, HTTP 400/404 with `{"message": ...}`.

- GET `/sim/v1/WebApi` → `{"baseUrl", "caPem"}`: where the twin listens and the CA to trust;
- POST `/sim/v1/WebApi/Faults` `{"fault": "timeout"|"http500"|"unreadable", "count": n, "seconds"?: s}`: the
  next `count` web-API calls fail that way (`seconds`: how long a timeout holds the call, default 30);
- POST `/sim/v1/WebApi/Reset`: the twin's state back to the bench's start;
- GET `/sim/v1/WebApi/State`: everything the twin holds (`WebApiState` snapshot) and its signer's certificate.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable

from sim.dc.service import Reply, Request
from sim.web_api.signer import Signer
from sim.web_api.state import Fault, WebApiState

CONTROL_NAME = "WebApi"
PREFIX = f"/sim/v1/{CONTROL_NAME}"
MAX_FAULT_COUNT = 1000
DEFAULT_HOLD_SECONDS = 30.0
"""A `timeout` fault holds the call longer than public HIS code's 10-second timeout."""
MAX_HOLD_SECONDS = 300.0


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.reply = Reply(status, {"message": message})


class WebApiControls:
    def __init__(self, state: WebApiState, base_url: str, ca_pem: str, signer: Signer) -> None:
        self.state = state
        self.base_url = base_url
        self.ca_pem = ca_pem
        self.signer = signer
        self._routes: dict[tuple[str, str], Callable[[Request], dict[str, object]]] = {
            ("GET", ""): self._where,
            ("POST", "/Faults"): self._faults,
            ("POST", "/Reset"): self._reset,
            ("GET", "/State"): self._state,
        }

    def handle(self, request: Request) -> Reply:
        path = urllib.parse.urlsplit(request.path).path
        route = self._routes.get((request.method.upper(), path.removeprefix(PREFIX)))
        try:
            if not path.startswith(PREFIX) or route is None:
                raise ControlError(404, "no such web-API twin control")
            return Reply(200, route(request))
        except ControlError as error:
            return error.reply

    def _where(self, request: Request) -> dict[str, object]:
        return {"baseUrl": self.base_url, "caPem": self.ca_pem}

    def _faults(self, request: Request) -> dict[str, object]:
        document = _json_object(request)
        fault = document.get("fault")
        if not isinstance(fault, str) or fault not in tuple(Fault):
            raise ControlError(400, "fault must be one of " + ", ".join(Fault))
        count = _number(document, "count", 1, MAX_FAULT_COUNT)
        if not count.is_integer():
            raise ControlError(400, "count must be a whole number")
        seconds = (
            DEFAULT_HOLD_SECONDS
            if document.get("seconds") is None
            else _number(document, "seconds", 0.1, MAX_HOLD_SECONDS)
        )
        with self.state.transaction() as tx:
            tx.set_fault(Fault(fault), int(count), float(seconds))
        return {}

    def _reset(self, request: Request) -> dict[str, object]:
        with self.state.transaction() as tx:
            tx.reset()
        return {}

    def _state(self, request: Request) -> dict[str, object]:
        with self.state.transaction() as tx:
            snapshot = tx.snapshot()
        return {**snapshot, "signerCertificate": self.signer.certificate_pem}


def _json_object(request: Request) -> dict[str, object]:
    try:
        document = json.loads((request.body or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ControlError(400, "the body is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise ControlError(400, "the body is not a JSON object")
    return document


def _number(document: dict[str, object], name: str, lowest: float, highest: float) -> float:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lowest <= value <= highest:
        raise ControlError(400, f"{name} must be a number from {lowest:g} to {highest:g}")
    return float(value)
