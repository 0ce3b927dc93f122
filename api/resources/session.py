"""COMMON's session endpoints (Name, Initial, Finalize, ServerDateTime) and the SAM's (Basic, Verification,
Logout, Signature). Thin: validate, ask the broker, render the spec's fields."""

from __future__ import annotations

import base64
from typing import Any

import falcon

from api.body import optional_json_object, optional_text_field, json_object, text_field
from api.core_client import CoreClient
from api.errors import BadRequest
from api.formats import name_text, text
from api.operations import Operation, documented
from contract.deadlines import FLOW_SECONDS
from contract.commands import MAX_DEVICE_NAME



SERVICE_TYPE = text(pattern="^[A-Za-z0-9]{2}$", description="The service type, 2 ASCII letters or digits")
"""The one body field of every signature endpoint."""


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

    def _call(self, req: falcon.Request, command: str, args: dict[str, Any] | None = None,
              timeout: float = FLOW_SECONDS) -> Any:
        return self._core.call(command, args or {}, call=req.context.call, timeout=timeout)


NAME = Operation("List the devices: cloud SAMs, then serial ports", "COMMON", answers=("names",))


class NameResource(FlowResource):
    @documented(NAME)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ListDevices")
        resp.media = NAME.render(reply.code, reply.body)


INITIAL = Operation("Initialize with a device (a cloud SAM or an NHI reader's port)", "COMMON", body={"name": name_text(MAX_DEVICE_NAME, nullable=True)}, body_optional=True)


class InitialResource(FlowResource):
    @documented(INITIAL)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = optional_text_field(optional_json_object(req), "name", max_length=MAX_DEVICE_NAME)
        reply = self._call(req, "Initialize", {"name": name} if name is not None else {})
        resp.media = INITIAL.render(reply.code, reply.body)


FINALIZE = Operation("End the session", "COMMON")


class FinalizeResource(FlowResource):
    @documented(FINALIZE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "Finalize")
        resp.media = FINALIZE.render(reply.code, reply.body)


SERVER_DATE_TIME = Operation("The DC's (or the NHI reader's) date and time", "COMMON", answers=("serverDateTime",))


class ServerDateTimeResource(FlowResource):
    @documented(SERVER_DATE_TIME)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "GetServerDateTime")
        resp.media = SERVER_DATE_TIME.render(reply.code, reply.body)


SAM_BASIC = Operation("The SAM's public data", "SAM", answers=("samId", "hospitalId", "hospitalName", "hospitalShortName"))


class SamBasicResource(FlowResource):
    @documented(SAM_BASIC)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "GetSamBasic")
        resp.media = SAM_BASIC.render(reply.code, reply.body)


SAM_VERIFICATION = Operation("Verify the SAM with the DC (level 2)", "SAM")


class SamVerificationResource(FlowResource):
    @documented(SAM_VERIFICATION)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "VerifySam")
        resp.media = SAM_VERIFICATION.render(reply.code, reply.body)


SAM_LOGOUT = Operation("Log the SAM out", "SAM")


class SamLogoutResource(FlowResource):
    @documented(SAM_LOGOUT)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "LogoutSam")
        resp.media = SAM_LOGOUT.render(reply.code, reply.body)


SAM_SIGNATURE = Operation("Sign with the SAM", "SAM", answers=("signature", "clientRandom", "samId", "hospitalId", "serviceType"), body={"serviceType": SERVICE_TYPE}, required=("serviceType",))


class SamSignatureResource(FlowResource):
    @documented(SAM_SIGNATURE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = service_type(json_object(req))
        reply = self._call(req, "SignWithSam", {"serviceType": kind})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = SAM_SIGNATURE.render(reply.code, body)
