"""The bench's control API (sim-control.md), mounted under /api/sim/v1/ only in `--sim` mode.

Its paths, bodies and profile names are a contract that tests outside the
project rely on.  Errors are HTTP 400/404 with `{"message": ...}`.  Bench
calls are not console API calls: they are not put in the call record.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import falcon

from api.body import json_object, text_field
from api.core_client import CoreClient
from api.errors import BadRequest
from broker.commands import MAX_READER_NAME
from broker.protocol import Reply
from sim.dc_control import DcControl, DcControlError
from sim.mobile_hca import format_login_time, login_body
from sim.nhi_control import KEYPAD_MAX_DIGITS, SLOT_NAMES, NhiControlError, NhiReaderControl, valid_keys
from sim.profiles import PROFILES

CARD_COMMAND_TIMEOUT = 15.0


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


class BenchReaders:
    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("SimListReaders")
        _answer(resp, reply, readers=reply.body.get("readers", []))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = text_field(json_object(req), "name", max_length=MAX_READER_NAME)
        _answer(resp, self._core.call("SimPlugReader", {"reader": name}))


class BenchReader:
    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _answer(resp, self._core.call("SimUnplugReader", {"reader": name}))


class BenchCard:
    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        profile = _profile(json_object(req))
        reply = self._core.call("SimPutCard", {"reader": name, "profile": profile}, timeout=CARD_COMMAND_TIMEOUT)
        _answer(resp, reply)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        _answer(resp, self._core.call("SimTakeCard", {"reader": name}, timeout=CARD_COMMAND_TIMEOUT))


class BenchProfiles:
    recorded = False

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "profiles": [
                {"name": profile.name, "kind": profile.kind, "description": profile.description}
                for profile in PROFILES.values()
            ]
        }


def _pass_on(resp: falcon.Response, control: DcControl | None, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Send a bench control to the DC simulator; on failure answer its status and message, and return None."""
    if control is None:
        resp.status = falcon.HTTP_404
        resp.media = {"message": "no DC simulator is running"}
        return None
    try:
        return control.call("POST", path, body)
    except DcControlError as error:
        resp.status = falcon.code_to_http_status(error.status if error.status in (400, 404) else 502)
        resp.media = {"message": error.message}
        return None


class BenchCloudSam:
    """A new cloud SAM file, registered at the DC simulator with the contract state asked for."""

    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _pass_on(resp, self._control, "CloudSam", json_object(req))
        if answer is not None:
            resp.media = {"cloudSamContext": answer["cloudSamContext"]}


class BenchDcFaults:
    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if _pass_on(resp, self._control, "Faults", json_object(req)) is not None:
            resp.media = {}


class BenchClock:
    """Moves the DC's clock, then the console's, by the same amount (the DC's first: it validates the body)."""

    recorded = False

    def __init__(self, core: CoreClient, control: DcControl | None) -> None:
        self._core = core
        self._control = control

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        answer = _pass_on(resp, self._control, "Clock", body)
        if answer is None:
            return
        reply = self._core.call("SimAdvanceClock", {"advanceSeconds": body.get("advanceSeconds")})
        _answer(resp, reply, serverTime=answer.get("serverTime"), consoleTime=reply.body.get("consoleTime"))


class BenchVirtualHcToken:
    """A virtual health card token for a bench profile, issued (and signed) by the DC simulator."""

    recorded = False

    def __init__(self, control: DcControl | None) -> None:
        self._control = control

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _pass_on(resp, self._control, "VirtualHc/Token", json_object(req))
        if answer is not None:
            resp.media = {"token": answer["token"]}


class BenchMobileHcaLogin:
    """A mobile HCA login body signed by that staff member's key (the bench PKI's), at the console's time."""

    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        profile = _profile(body)
        if PROFILES[profile].kind != "hpc":
            raise falcon.HTTPBadRequest(description="the profile is not a staff card")
        hospital_id = text_field(body, "hospitalId", max_length=10)
        moment = body.get("loginDateTime")
        if moment is None:
            reply = self._core.call("SimAdvanceClock", {"advanceSeconds": 0})  # the console's clock, bench offset included
            now = datetime.datetime.fromisoformat(reply.body["consoleTime"])
            moment = format_login_time(now)
        elif not isinstance(moment, str) or len(moment) > 20:
            raise falcon.HTTPBadRequest(description="loginDateTime must be a string of at most 20 characters")
        resp.media = login_body(profile, hospital_id, moment)


def _ask_nhi_reader(resp: falcon.Response, control: NhiReaderControl | None, op: str,
                    **args: Any) -> dict[str, Any] | None:
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


class BenchKeypad:
    """Keypad input for the bench NHI reader's next PIN prompt (sim-control.md). The keys are a PIN: they are
    checked here, passed on, and never echoed, logged or recorded."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None) -> None:
        self._control = control

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._control is None:
            return _no_nhi_reader(resp)
        body = json_object(req)
        keys, cancel = body.get("keys"), body.get("cancel")
        if (keys is None) == (cancel is None):
            raise BadRequest(f"give either keys (1 to {KEYPAD_MAX_DIGITS} digits) or cancel: true")
        if cancel is not None:
            if cancel is not True:
                raise BadRequest("cancel must be true")
            answer = _ask_nhi_reader(resp, self._control, "keypad", cancel=True)
        else:
            if not valid_keys(keys):
                raise BadRequest(f"keys must be a string of 1 to {KEYPAD_MAX_DIGITS} digits")
            answer = _ask_nhi_reader(resp, self._control, "keypad", keys=keys)
        if answer is not None:
            resp.media = {}


class BenchNhiReader:
    """What the bench NHI reader holds and whether its cable is in."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None) -> None:
        self._control = control

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = _ask_nhi_reader(resp, self._control, "describe")
        if answer is not None:
            resp.media = {"port": answer.get("port"), "plugged": answer.get("plugged"), "slots": answer.get("slots"),
                          "cardCommands": answer.get("cardCommands")}


def _nhi_slot(slot: str) -> str:
    if slot not in SLOT_NAMES:
        raise falcon.HTTPNotFound(description="no such slot; the bench NHI reader has hc and hpc")
    return slot


class BenchNhiCard:
    """A fresh card of any profile in either slot (a clerk can put a staff card in the health card's slot)."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None) -> None:
        self._control = control

    def on_put(self, req: falcon.Request, resp: falcon.Response, slot: str) -> None:
        if self._control is None:
            return _no_nhi_reader(resp)
        _nhi_slot(slot)
        profile = _profile(json_object(req))
        if _ask_nhi_reader(resp, self._control, "insert", slot=slot, profile=profile) is not None:
            resp.media = {}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, slot: str) -> None:
        if self._control is None:
            return _no_nhi_reader(resp)
        _nhi_slot(slot)
        if _ask_nhi_reader(resp, self._control, "remove", slot=slot) is not None:
            resp.media = {}


class BenchNhiCable:
    """Pull the bench NHI reader's cable out or put it back (a replug restarts the reader)."""

    recorded = False

    def __init__(self, control: NhiReaderControl | None, op: str) -> None:
        self._control = control
        self._op = op

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


def mount(app: falcon.App, core: CoreClient) -> None:
    app.add_route("/api/sim/v1/Readers", BenchReaders(core))
    app.add_route("/api/sim/v1/Readers/{name}", BenchReader(core))
    app.add_route("/api/sim/v1/Readers/{name}/Card", BenchCard(core))
    app.add_route("/api/sim/v1/Profiles", BenchProfiles())
    control = _dc_control()
    app.add_route("/api/sim/v1/CloudSam", BenchCloudSam(control))
    app.add_route("/api/sim/v1/Dc/Faults", BenchDcFaults(control))
    app.add_route("/api/sim/v1/Clock", BenchClock(core, control))
    app.add_route("/api/sim/v1/MobileHca/Login", BenchMobileHcaLogin(core))
    app.add_route("/api/sim/v1/VirtualHc/Token", BenchVirtualHcToken(control))
    mount_nhi_reader(app, _nhi_control())
