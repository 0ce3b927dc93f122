"""The bench's control API (sim-control.md), mounted under /api/sim/v1/ only in `--sim` mode.

Its paths, bodies and profile names are a contract that tests outside the
project rely on.  Errors are HTTP 400/404 with `{"message": ...}`.  Bench
calls are not console API calls: they are not put in the call record.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any

import falcon

from api.body import json_object, text_field
from api.core_client import CoreClient
from api.errors import BadRequest
from api.operations import Operation, documented
from api.resources.pages import mount_example_pages
from contract.commands import MAX_READER_NAME
from contract.protocol import Reply
from contract.schemas import Schema, digits, name_text, text
from contract.settings import SETTINGS_ENV, Settings
from contract.text import CONTROL_CHARACTERS
from sim.card_commands import counts_dir, read_count
from sim.dc_control import DcControl, DcControlError
from sim.mobile_hca import format_login_time, login_body
from sim.nhi_control import KEYPAD_MAX_DIGITS, SLOT_NAMES, NhiControlError, NhiReaderControl, valid_keys
from sim.profiles import PROFILES

CARD_COMMAND_TIMEOUT = 15.0
LOGIN_DATE_TIME = re.compile(r"^[ -~]{1,20}$")
"""What the app signs is ASCII (broker.credentials.mobile_hca.signed_text): the bench signs nothing else."""

BENCH = "BENCH (--sim only)"
BENCH_ERRORS = (400, 404, 502)
NOTHING: Schema = {"type": "object", "additionalProperties": False, "properties": {}}
PROFILE_NAME: Schema = {"type": "string", "enum": sorted(PROFILES)}
STAFF_PROFILE_NAME: Schema = {"type": "string", "enum": sorted(name for name, p in PROFILES.items() if p.kind == "hpc")}
HEALTH_PROFILE_NAME: Schema = {"type": "string", "enum": sorted(name for name, p in PROFILES.items() if p.kind == "hc")}
NHI_SLOT: Schema = {"type": "string", "enum": list(SLOT_NAMES)}
CARD_OF: Schema = {"type": ["object", "null"], "required": ["profile"], "properties": {"profile": text()}}


def bench_operation(summary: str, *, answer: Schema = NOTHING, **details: Any) -> Operation:
    """A bench control: its own answer shape (not the spec's envelope), errors 400/404/502 with a message."""
    return Operation(summary, BENCH, answer_schema=answer, errors=BENCH_ERRORS, **details)


def _answer(resp: falcon.Response, reply: Reply, **success: Any) -> None:
    if reply.code == 0:
        resp.media = success or {}
        return
    resp.status = falcon.HTTP_404 if reply.body.get("notFound") else falcon.HTTP_400
    resp.media = {"message": reply.body.get("message", f"statusCode {reply.code}")}


def _profile(body: dict[str, Any]) -> str:
    profile = text_field(body, "profile", max_length=64)
    if profile not in PROFILES:
        raise falcon.HTTPBadRequest(description="unknown profile; GET /api/sim/v1/Profiles lists them")
    return profile


SIM_READERS = bench_operation(
    "The bench's virtual PC/SC readers and their cards",
    answer={
        "type": "object",
        "required": ["readers"],
        "properties": {
            "readers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "card", "cardCommands"],
                    "properties": {
                        "name": text(),
                        "card": CARD_OF,
                        "cardCommands": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "description": "APDUs that reached this reader's cards since the bench started "
                            "(all its cards, cumulative per reader name); null where the bench keeps no count",
                        },
                    },
                },
            }
        },
    },
)


SIM_PLUG_READER = bench_operation(
    "Plug in a new empty virtual reader (400: a name in use, or the bench full)",
    body={"name": name_text(MAX_READER_NAME)},
    required=("name",),
)


SIM_UNPLUG_READER = bench_operation("Unplug a virtual reader")


def _reader_name(name: str) -> str:
    """A path's reader name that no reader can have is a reader that is not there: 404, like any other."""
    if not 0 < len(name) <= MAX_READER_NAME or CONTROL_CHARACTERS.search(name):
        raise falcon.HTTPNotFound(description="no such reader")
    return name


class BenchReaders:
    """The bench's readers from the broker, each with the count its worker keeps at the card (sim/card_commands.py):
    read here, beside the broker's answer, since the count is the worker's, not the event log's."""

    recorded = False

    def __init__(self, core: CoreClient, counts: Path | None = None) -> None:
        self._core = core
        self._counts = counts

    @documented(SIM_READERS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("SimListReaders")
        readers = [
            {**reader, "cardCommands": None if self._counts is None else read_count(self._counts, reader["name"])}
            for reader in reply.body.get("readers", [])
        ]
        _answer(resp, reply, readers=readers)

    @documented(SIM_PLUG_READER)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = text_field(json_object(req), "name", max_length=MAX_READER_NAME)
        _answer(resp, self._core.call("SimPlugReader", {"reader": name}))


class BenchReader:
    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(SIM_UNPLUG_READER)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _answer(resp, self._core.call("SimUnplugReader", {"reader": _reader_name(name)}))


SIM_PUT_CARD = bench_operation(
    "Insert a fresh card of a profile (replacing any)", body={"profile": PROFILE_NAME}, required=("profile",)
)


SIM_TAKE_CARD = bench_operation("Remove the card")


class BenchCard:
    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(SIM_PUT_CARD)
    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        profile = _profile(json_object(req))
        reply = self._core.call(
            "SimPutCard", {"reader": _reader_name(name), "profile": profile}, timeout=CARD_COMMAND_TIMEOUT
        )
        _answer(resp, reply)

    @documented(SIM_TAKE_CARD)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _answer(resp, self._core.call("SimTakeCard", {"reader": _reader_name(name)}, timeout=CARD_COMMAND_TIMEOUT))


SIM_PROFILES = bench_operation(
    "The bench's card profiles",
    answer={
        "type": "object",
        "required": ["profiles"],
        "properties": {
            "profiles": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "kind", "description"],
                    "properties": {"name": text(), "kind": {"enum": ["hc", "hpc"]}, "description": text()},
                },
            }
        },
    },
)


class BenchProfiles:
    recorded = False

    @documented(SIM_PROFILES)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "profiles": [
                {"name": profile.name, "kind": profile.kind, "description": profile.description}
                for profile in PROFILES.values()
            ]
        }


def _pass_on(
    resp: falcon.Response,
    control: DcControl | None,
    path: str,
    body: dict[str, Any] | None,
    method: str = "POST",
) -> dict[str, Any] | None:
    """Send a bench control to the DC simulator; on failure answer its status and message, and return None."""
    if control is None:
        resp.status = falcon.HTTP_404
        resp.media = {"message": "no DC simulator is running"}
        return None
    try:
        return control.call(method, path, body)
    except DcControlError as error:
        resp.status = falcon.code_to_http_status(error.status if error.status in (400, 404) else 502)
        resp.media = {"message": error.message}
        return None


SIM_CLOUD_SAM = bench_operation(
    "A new cloud SAM file, registered at the DC simulator",
    answer={"type": "object", "required": ["cloudSamContext"], "properties": {"cloudSamContext": text()}},
    body={
        "samId": text(pattern="^[0-9]{12}$"),
        "hospitalId": text(pattern="^[0-9A-Za-z]{1,10}$"),
        "hospitalName": name_text(64, nullable=True),
        "contract": {"type": "string", "enum": ["active", "expired", "suspended", "revoked"]},
    },
    required=("samId", "hospitalId", "contract"),
)


class BenchCloudSam:
    """A new cloud SAM file, registered at the DC simulator with the contract state asked for."""

    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    @documented(SIM_CLOUD_SAM)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _pass_on(resp, self._control, "CloudSam", json_object(req))
        if answer is not None:
            resp.media = {"cloudSamContext": answer["cloudSamContext"]}


SIM_DC_FAULTS = bench_operation(
    "The next count DC calls fail that way",
    body={
        "statusCode": {"type": "integer", "enum": [1700, 1702, 1703]},
        "count": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    required=("statusCode", "count"),
)


class BenchDcFaults:
    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    @documented(SIM_DC_FAULTS)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if _pass_on(resp, self._control, "Faults", json_object(req)) is not None:
            resp.media = {}


SIM_DC_CALLS = bench_operation(
    "How many DC calls the DC simulator has served",
    answer={
        "type": "object",
        "required": ["statusCode", "calls"],
        "properties": {
            "statusCode": {"const": 0},
            "calls": {
                "type": "integer",
                "minimum": 0,
                "description": "requests to the DC protocol (anything but the simulator's own /sim/v1/ controls), "
                "answered, refused or dropped by a fault, since the simulator started",
            },
        },
    },
)


class BenchDcCalls:
    """The DC simulator's count of the DC calls it served: a test counts what reached the DC, not assumes."""

    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    @documented(SIM_DC_CALLS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _pass_on(resp, self._control, "Calls", None, method="GET")
        if answer is not None:
            resp.media = {"statusCode": 0, "calls": answer.get("calls")}


SIM_CLOCK = bench_operation(
    "Move the console's and the DC's clocks forward",
    answer={
        "type": "object",
        "required": ["serverTime", "consoleTime"],
        "properties": {"serverTime": text(), "consoleTime": text()},
    },
    body={"advanceSeconds": {"type": "integer", "minimum": 0, "maximum": 10 * 366 * 86400}},
    required=("advanceSeconds",),
)


class BenchClock:
    """Moves the DC's clock, then the console's, by the same amount (the DC's first: it validates the body)."""

    recorded = False

    def __init__(self, core: CoreClient, control: DcControl | None) -> None:
        self._core = core
        self._control = control

    @documented(SIM_CLOCK)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        answer = _pass_on(resp, self._control, "Clock", body)
        if answer is None:
            return
        # The DC accepted it, so it is an integral number in range (3.0 included): the console gets the same int.
        reply = self._core.call("SimAdvanceClock", {"advanceSeconds": int(body["advanceSeconds"])})
        _answer(resp, reply, serverTime=answer.get("serverTime"), consoleTime=reply.body.get("consoleTime"))


SIM_VIRTUAL_HC_TOKEN = bench_operation(
    "A virtual health card token for a profile",
    answer={"type": "object", "required": ["token"], "properties": {"token": text()}},
    body={
        "profile": HEALTH_PROFILE_NAME,
        "expiresIn": {"type": ["integer", "null"], "minimum": 1, "maximum": 10 * 366 * 86400},
        "maxUses": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000},
        "hospitalId": text(pattern="^[0-9A-Za-z]{1,10}$", nullable=True),
    },
    required=("profile",),
)


class BenchVirtualHcToken:
    """A virtual health card token for a bench profile, issued (and signed) by the DC simulator."""

    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    @documented(SIM_VIRTUAL_HC_TOKEN)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _pass_on(resp, self._control, "VirtualHc/Token", json_object(req))
        if answer is not None:
            resp.media = {"token": answer["token"]}


SIM_WEB_API = bench_operation(
    "Where the NHI web-API twin listens, and the CA that signed its certificate (web-api.md; SIMULATION)",
    answer={
        "type": "object",
        "required": ["statusCode", "baseUrl", "caPem"],
        "properties": {"statusCode": {"const": 0}, "baseUrl": text(), "caPem": text()},
    },
)


class BenchWebApi:
    """Where a HIS points its web-API base URL on the bench, and the CA to trust (docs/web-api-twin.md)."""

    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    @documented(SIM_WEB_API)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _pass_on(resp, self._control, "WebApi", None, method="GET")
        if answer is not None:
            resp.media = {"statusCode": 0, "baseUrl": answer.get("baseUrl"), "caPem": answer.get("caPem")}


SIM_WEB_API_FAULTS = bench_operation(
    "The next count web-API calls fail that way (timeout: held unanswered for seconds, default 30)",
    body={
        "fault": {"type": "string", "enum": ["timeout", "http500", "unreadable"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 1000},
        "seconds": {"type": ["number", "null"], "minimum": 0.1, "maximum": 300},
    },
    required=("fault", "count"),
)
SIM_WEB_API_RESET = bench_operation("The NHI web-API twin's state back to the bench's start state")
SIM_WEB_API_STATE = bench_operation(
    "Everything the NHI web-API twin holds: each card's record, the visits, the signer's certificate",
    answer={
        "type": "object",
        "required": ["statusCode", "cards", "visits", "signaturesSeen", "accessTokens", "signerCertificate"],
        "properties": {
            "statusCode": {"const": 0},
            "cards": {"type": "array", "items": {"type": "object"}},
            "visits": {"type": "array", "items": {"type": "object"}},
            "signaturesSeen": {"type": "integer", "minimum": 0},
            "accessTokens": {"type": "integer", "minimum": 0},
            "pendingFault": {"type": ["object", "null"]},
            "signerCertificate": text(),
        },
    },
)


class BenchWebApiControl:
    """One of the twin's controls, passed on to the DC simulator's process where the twin runs."""

    recorded = False

    def __init__(self, control: DcControl | None, path: str) -> None:
        self._control = control
        self._path = path

    @documented(SIM_WEB_API_FAULTS)
    def on_post_faults(self, req: falcon.Request, resp: falcon.Response) -> None:
        if _pass_on(resp, self._control, self._path, json_object(req)) is not None:
            resp.media = {}

    @documented(SIM_WEB_API_RESET)
    def on_post_reset(self, req: falcon.Request, resp: falcon.Response) -> None:
        if _pass_on(resp, self._control, self._path, {}) is not None:
            resp.media = {}

    @documented(SIM_WEB_API_STATE)
    def on_get_state(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _pass_on(resp, self._control, self._path, None, method="GET")
        if answer is not None:
            resp.media = {"statusCode": 0, **answer}


SIM_MOBILE_HCA_LOGIN = bench_operation(
    "A mobile HCA login body signed by that staff member's key",
    answer={"type": "object", "required": ["idNo", "hospitalId", "loginDateTime", "signatureCertificate", "signature"]},
    body={
        "profile": STAFF_PROFILE_NAME,
        "hospitalId": name_text(10),
        "loginDateTime": text(pattern=LOGIN_DATE_TIME.pattern, nullable=True),
    },
    required=("profile", "hospitalId"),
)


class BenchMobileHcaLogin:
    """A mobile HCA login body signed by that staff member's key (the bench PKI's), at the console's time."""

    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(SIM_MOBILE_HCA_LOGIN)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        profile = _profile(body)
        if PROFILES[profile].kind != "hpc":
            raise falcon.HTTPBadRequest(description="the profile is not a staff card")
        hospital_id = text_field(body, "hospitalId", max_length=10)
        moment = body.get("loginDateTime")
        if moment is None:
            reply = self._core.call(
                "SimAdvanceClock", {"advanceSeconds": 0}
            )  # the console's clock, bench offset included
            now = datetime.datetime.fromisoformat(reply.body["consoleTime"])
            moment = format_login_time(now)
        elif not isinstance(moment, str) or not LOGIN_DATE_TIME.fullmatch(moment):
            raise falcon.HTTPBadRequest(description="loginDateTime must be 1 to 20 printable ASCII characters")
        resp.media = login_body(profile, hospital_id, moment)


def _ask_nhi_reader(
    resp: falcon.Response, control: NhiReaderControl | None, op: str, **args: Any
) -> dict[str, Any] | None:
    """Send a control to the bench NHI reader's process; on failure answer its status and message, and return None."""
    if control is None:
        _no_nhi_reader(resp)
        return None
    try:
        return control.call(op, **args)
    except NhiControlError as error:
        resp.status = falcon.code_to_http_status(error.status if error.status in (400, 404) else 502)
        resp.media = {"message": error.message}
        return None


def _no_nhi_reader(resp: falcon.Response) -> None:
    """The answer when the bench runs no NHI reader, given before the body is read, as for a route not there."""
    resp.status = falcon.HTTP_404
    resp.media = {"message": "no bench NHI reader is running"}


SIM_KEYPAD = bench_operation(
    "Keypad input for the NHI reader's next PIN prompt",
    body_schema={
        "oneOf": [
            {
                "type": "object",
                "required": ["keys"],
                "properties": {"keys": digits(1, KEYPAD_MAX_DIGITS)},
                "not": {"required": ["cancel"]},
            },
            {
                "type": "object",
                "required": ["cancel"],
                "properties": {"cancel": {"const": True}},
                "not": {"required": ["keys"]},
            },
        ]
    },
)


class BenchKeypad:
    """Keypad input for the bench NHI reader's next PIN prompt (sim-control.md). The keys are a PIN: they are
    checked here, passed on, and never echoed, logged or recorded."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None) -> None:
        self._control = control

    @documented(SIM_KEYPAD)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._control is None:
            return _no_nhi_reader(resp)
        body = json_object(req)
        keys, cancel = body.get("keys"), body.get("cancel")
        if ("keys" in body) == ("cancel" in body):  # a key given as null is given: either one, never both
            raise BadRequest(f"give either keys (1 to {KEYPAD_MAX_DIGITS} digits) or cancel: true")
        if "cancel" in body:
            if cancel is not True:
                raise BadRequest("cancel must be true")
            answer = _ask_nhi_reader(resp, self._control, "keypad", cancel=True)
        else:
            if not valid_keys(keys):
                raise BadRequest(f"keys must be a string of 1 to {KEYPAD_MAX_DIGITS} digits")
            answer = _ask_nhi_reader(resp, self._control, "keypad", keys=keys)
        if answer is not None:
            resp.media = {}


SIM_NHI_READER = bench_operation(
    "What the bench NHI reader holds, and whether its cable is in",
    answer={
        "type": "object",
        "required": ["port", "plugged", "slots", "cardCommands"],
        "properties": {
            "port": text(),
            "plugged": {"type": "boolean"},
            "cardCommands": {"type": "integer"},
            "slots": {"type": "object", "properties": {"hc": CARD_OF, "hpc": CARD_OF}},
        },
    },
)


class BenchNhiReader:
    """What the bench NHI reader holds and whether its cable is in."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None) -> None:
        self._control = control

    @documented(SIM_NHI_READER)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _ask_nhi_reader(resp, self._control, "describe")
        if answer is not None:
            resp.media = {
                "port": answer.get("port"),
                "plugged": answer.get("plugged"),
                "slots": answer.get("slots"),
                "cardCommands": answer.get("cardCommands"),
            }


def _nhi_slot(slot: str) -> str:
    if slot not in SLOT_NAMES:
        raise falcon.HTTPNotFound(description="no such slot; the bench NHI reader has hc and hpc")
    return slot


SIM_NHI_PUT_CARD = bench_operation(
    "Insert a fresh card into a slot", body={"profile": PROFILE_NAME}, required=("profile",), path={"slot": NHI_SLOT}
)


SIM_NHI_TAKE_CARD = bench_operation("Remove the card from a slot", path={"slot": NHI_SLOT})


class BenchNhiCard:
    """A fresh card of any profile in either slot (a clerk can put a staff card in the health card's slot)."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None) -> None:
        self._control = control

    @documented(SIM_NHI_PUT_CARD)
    def on_put(self, req: falcon.Request, resp: falcon.Response, slot: str) -> None:
        if self._control is None:
            return _no_nhi_reader(resp)
        _nhi_slot(slot)
        profile = _profile(json_object(req))
        if _ask_nhi_reader(resp, self._control, "insert", slot=slot, profile=profile) is not None:
            resp.media = {}

    @documented(SIM_NHI_TAKE_CARD)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, slot: str) -> None:
        if self._control is None:
            return _no_nhi_reader(resp)
        _nhi_slot(slot)
        if _ask_nhi_reader(resp, self._control, "remove", slot=slot) is not None:
            resp.media = {}


SIM_NHI_CABLE = bench_operation("Pull out the bench NHI reader cable, or put it back (a replug restarts it)")


class BenchNhiCable:
    """Pull the bench NHI reader's cable out or put it back (a replug restarts the reader)."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None, op: str) -> None:
        self._control = control
        self._op = op

    @documented(SIM_NHI_CABLE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if _ask_nhi_reader(resp, self._control, self._op) is not None:
            resp.media = {}


def _nhi_control() -> NhiReaderControl | None:
    endpoint = os.environ.get("NHI_CONSOLE_SIM_NHI_CONTROL")
    return NhiReaderControl(endpoint) if endpoint else None


def mount_nhi_reader(app: falcon.App, control: NhiReaderControl | None) -> None:
    """The bench NHI reader's routes, apart so tests can mount them over a stand-in control."""
    app.add_route("/api/sim/v1/Keypad", BenchKeypad(control))
    app.add_route("/api/sim/v1/NhiReader", BenchNhiReader(control))
    app.add_route("/api/sim/v1/NhiReader/Slots/{slot}/Card", BenchNhiCard(control))
    app.add_route("/api/sim/v1/NhiReader/Unplug", BenchNhiCable(control, "unplug"))
    app.add_route("/api/sim/v1/NhiReader/Replug", BenchNhiCable(control, "replug"))


def _dc_control() -> DcControl | None:
    url, ca = os.environ.get("NHI_CONSOLE_SIM_DC_URL"), os.environ.get("NHI_CONSOLE_SIM_DC_CA")
    return DcControl(url, Path(ca)) if url and ca else None


def _card_counts() -> Path | None:
    """Where the bench readers' workers count their cards' APDUs: in the data dir of the settings `serve` wrote."""
    settings_file = os.environ.get(SETTINGS_ENV)
    return counts_dir(Settings.read(Path(settings_file)).data_dir) if settings_file else None


def mount(app: falcon.App, core: CoreClient) -> None:
    app.add_route("/api/sim/v1/Readers", BenchReaders(core, _card_counts()))
    app.add_route("/api/sim/v1/Readers/{name}", BenchReader(core))
    app.add_route("/api/sim/v1/Readers/{name}/Card", BenchCard(core))
    app.add_route("/api/sim/v1/Profiles", BenchProfiles())
    control = _dc_control()
    app.add_route("/api/sim/v1/CloudSam", BenchCloudSam(control))
    app.add_route("/api/sim/v1/Dc/Faults", BenchDcFaults(control))
    app.add_route("/api/sim/v1/Dc/Calls", BenchDcCalls(control))
    app.add_route("/api/sim/v1/Clock", BenchClock(core, control))
    app.add_route("/api/sim/v1/MobileHca/Login", BenchMobileHcaLogin(core))
    app.add_route("/api/sim/v1/VirtualHc/Token", BenchVirtualHcToken(control))
    app.add_route("/api/sim/v1/WebApi", BenchWebApi(control))
    for name in ("Faults", "Reset", "State"):
        app.add_route(f"/api/sim/v1/WebApi/{name}", BenchWebApiControl(control, f"WebApi/{name}"), suffix=name.lower())
    mount_nhi_reader(app, _nhi_control())
    mount_example_pages(app)  # /console/examples/: the bench's example page for HIS developers
