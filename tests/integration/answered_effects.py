"""What the state must hold, given the state-changing calls the console answered (and the ones it did not).

The calls come from one stream, one at a time, so their order is the order they ran in. A call the console
answered has its effect (or, answered with an error, none); a call it did not answer (its broker was killed
holding it) may have run or not, so what it touches is unknown until a later answered call settles it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contract.status_codes import StatusCode
from tests.integration.call_streams import Call, CallOutcome

CORS = "/api/settings/v1/Cors"
DEFAULT_READER = "/api/settings/v1/PcscReader/Default"
INITIAL = "/api/common/v1/Initial"
FINALIZE = "/api/common/v1/Finalize"


def allow_host(host: str) -> Call:
    return Call("POST", CORS, {"allowHost": host})


def remove_host(host: str) -> Call:
    return Call("DELETE", f"{CORS}/{host}")


def set_default_reader(reader: str) -> Call:
    return Call("POST", DEFAULT_READER, {"readerName": reader})


@dataclass
class Expected:
    """None anywhere means "unknown": the last call that touched it was not answered."""

    cors: dict[str, bool | None] = field(default_factory=dict)
    """Host -> on the allow-list; only the hosts the stream touched."""
    default_reader: str | None = None
    initialized: bool | None = None


def expected_after(outcomes: Iterable[CallOutcome], start: Expected) -> Expected:
    expected = Expected(dict(start.cors), start.default_reader, start.initialized)
    for outcome in outcomes:
        _apply(expected, outcome)
    return expected


def _apply(expected: Expected, outcome: CallOutcome) -> None:
    call, code = outcome.call, outcome.status_code
    known = outcome.answered
    if call.path == CORS and call.method == "POST":
        host = str(call.body["allowHost"]) if call.body else ""
        if not known:
            expected.cors[host] = None
        elif code == StatusCode.OK:
            expected.cors[host] = True
    elif call.path.startswith(f"{CORS}/") and call.method == "DELETE":
        host = call.path.rsplit("/", 1)[1]
        # Answered, it is off the list: removed now (0), or it never got on it (1704, its adding did not run).
        expected.cors[host] = False if known and code in (StatusCode.OK, StatusCode.BAD_PARAMETER) else None
    elif call.path == DEFAULT_READER:
        if not known:
            expected.default_reader = None
        elif code == StatusCode.OK and call.body:
            expected.default_reader = str(call.body["readerName"])
    elif call.path == INITIAL:
        if not known:
            expected.initialized = None
        elif code in (StatusCode.OK, StatusCode.ALREADY_INITIALIZED):
            expected.initialized = True
    elif call.path == FINALIZE:
        if not known:
            expected.initialized = None
        elif code in (StatusCode.OK, StatusCode.NOT_INITIALIZED):
            expected.initialized = False


def differences(expected: Expected, state: dict[str, Any]) -> list[str]:
    """What in `state` (a `snapshot()`) contradicts an answered call; [] when nothing does."""
    found = []
    hosts = set(state["corsHosts"])
    for host, present in sorted(expected.cors.items()):
        if present is not None and (host in hosts) != present:
            found.append(f"{host} {'missing from' if present else 'still on'} the CORS allow-list")
    if expected.default_reader is not None and state["defaultReader"] != expected.default_reader:
        found.append(f"default reader {state['defaultReader']!r}, answered calls set {expected.default_reader!r}")
    if expected.initialized is not None and state["status"]["initialized"] != expected.initialized:
        found.append(f"initialized {state['status']['initialized']}, answered calls say {expected.initialized}")
    return found
