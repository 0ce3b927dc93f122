"""The bench's control API (sim-control.md), mounted under /api/sim/v1/ only in `--sim` mode.

Its paths, bodies and profile names are a contract that tests outside the
project rely on.  Errors are HTTP 400/404 with `{"message": ...}`.  Bench
calls are not console API calls: they are not put in the call record.
"""

from __future__ import annotations

from typing import Any

import falcon

from api.body import json_object, text_field
from api.core_client import CoreClient
from broker.commands import MAX_READER_NAME
from broker.protocol import Reply
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


def mount(app: falcon.App, core: CoreClient) -> None:
    app.add_route("/api/sim/v1/Readers", BenchReaders(core))
    app.add_route("/api/sim/v1/Readers/{name}", BenchReader(core))
    app.add_route("/api/sim/v1/Readers/{name}/Card", BenchCard(core))
    app.add_route("/api/sim/v1/Profiles", BenchProfiles())
