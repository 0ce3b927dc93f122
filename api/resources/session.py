"""COMMON's session endpoints (Name, Initial, Finalize, ServerDateTime) and the SAM's (Basic, Verification,
Logout, Signature). Thin: validate, ask the broker, render the spec's fields."""

from __future__ import annotations

import base64
from typing import Any

import falcon

from api.answers import spec_answer
from api.body import optional_json_object, optional_text_field, json_object, text_field
from api.core_client import CoreClient
from api.errors import BadRequest
from broker.commands import MAX_DEVICE_NAME

FLOW_TIMEOUT = 60.0
"""Seconds the API waits for a call that may take several DC round trips (each bounded by the DC client)."""


def service_type(body: dict[str, Any]) -> str:
    value = text_field(body, "serviceType", max_length=2)
    if len(value) != 2 or not value.isascii() or not value.isalnum():
        raise BadRequest("serviceType must be 2 ASCII letters or digits")
    return value


def with_base64(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """The broker returns bytes; the spec's Base64(N) fields are standard base64 text."""
    return {key: base64.b64encode(value).decode("ascii") if key in names else value for key, value in body.items()}


class FlowResource:
    """A resource whose calls may take several card and DC steps: recorded, with the flows' longer timeout."""

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def _call(self, req: falcon.Request, command: str, args: dict[str, Any] | None = None) -> Any:
        return self._core.call(command, args or {}, call=req.context.call, timeout=FLOW_TIMEOUT)


class NameResource(FlowResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ListDevices")
        resp.media = spec_answer(reply.code, reply.body, "names")


class InitialResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = optional_text_field(optional_json_object(req), "name", max_length=MAX_DEVICE_NAME)
        reply = self._call(req, "Initialize", {"name": name} if name is not None else {})
        resp.media = spec_answer(reply.code, reply.body)


class FinalizeResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "Finalize")
        resp.media = spec_answer(reply.code, reply.body)


class ServerDateTimeResource(FlowResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "GetServerDateTime")
        resp.media = spec_answer(reply.code, reply.body, "serverDateTime")


class SamBasicResource(FlowResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "GetSamBasic")
        resp.media = spec_answer(reply.code, reply.body, "samId", "hospitalId", "hospitalName", "hospitalShortName")


class SamVerificationResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "VerifySam")
        resp.media = spec_answer(reply.code, reply.body)


class SamLogoutResource(FlowResource):
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "LogoutSam")
        resp.media = spec_answer(reply.code, reply.body)


class SamSignatureResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = service_type(json_object(req))
        reply = self._call(req, "SignWithSam", {"serviceType": kind})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = spec_answer(
            reply.code, body, "signature", "clientRandom", "samId", "hospitalId", "serviceType"
        )
