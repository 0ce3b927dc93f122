"""SETTING: the PC/SC reader settings, the cloud SAMs and the CORS allow-list."""

from __future__ import annotations

import re

import falcon

from api.body import json_object, optional_text_field, text_field
from api.core_client import CoreClient
from api.errors import BadRequest
from api.formats import name_text, text
from api.operations import Operation, documented
from contract.commands import MAX_CLOUD_SAM_CONTEXT, MAX_READER_NAME
from contract.host_names import MAX_HOST_LENGTH, NotAHostName, normalize_host

SAM_ID = re.compile("^[0-9]{12}$")
HOSPITAL_ID = re.compile("^[0-9A-Za-z]{1,10}$")
HOST_NAME = {
    "anyOf": [{"type": "string", "format": "hostname"}, {"type": "string", "format": "ipv4"},
              {"type": "string", "format": "ipv6"}],
    "maxLength": MAX_HOST_LENGTH,
    "description": "A host name or an IP address, as the browser's Origin names it",
}


READERS = Operation("The PC/SC readers", "SETTING", answers=("readers",))


class ReadersResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(READERS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ListReaders", call=req.context.call)
        resp.media = READERS.render(reply.code, reply.body)


AUTO_DETECT = Operation("Make the reader with a card the default reader", "SETTING", answers=("readerName",))


class AutoDetectedResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(AUTO_DETECT)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("AutoDetectReader", call=req.context.call)
        resp.media = AUTO_DETECT.render(reply.code, reply.body)


DEFAULT_READER = Operation("The default reader", "SETTING", answers=("readerName",))


SET_DEFAULT_READER = Operation("Set the default reader", "SETTING", body={"readerName": name_text(MAX_READER_NAME)}, required=("readerName",))


CLEAR_DEFAULT_READER = Operation("Clear the default reader", "SETTING")


class DefaultReaderResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(DEFAULT_READER)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("GetDefaultReader", call=req.context.call)
        resp.media = DEFAULT_READER.render(reply.code, reply.body)

    @documented(SET_DEFAULT_READER)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = text_field(json_object(req), "readerName", max_length=MAX_READER_NAME)
        reply = self._core.call("SetDefaultReader", {"readerName": name}, call=req.context.call)
        resp.media = SET_DEFAULT_READER.render(reply.code, reply.body)

    @documented(CLEAR_DEFAULT_READER)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ClearDefaultReader", call=req.context.call)
        resp.media = CLEAR_DEFAULT_READER.render(reply.code, reply.body)


CLOUD_SAMS = Operation("The imported cloud SAMs", "SETTING", answers=("sams",))


IMPORT_CLOUD_SAM = Operation(
    "Import a cloud SAM file", "SETTING", answers=("sam",),
    body={"cloudSamContext": name_text(MAX_CLOUD_SAM_CONTEXT, description="The file, base64"),
          "samId": text(pattern=SAM_ID.pattern, nullable=True),
          "hospitalId": text(pattern=HOSPITAL_ID.pattern, nullable=True)},
    required=("cloudSamContext",),
)


class CloudSamsResource:
    """The file's content goes to the broker and nowhere else: not into a log line, not into an error."""

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(CLOUD_SAMS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ListCloudSams", call=req.context.call)
        resp.media = CLOUD_SAMS.render(reply.code, reply.body)

    @documented(IMPORT_CLOUD_SAM)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        args = {"cloudSamContext": text_field(body, "cloudSamContext", max_length=MAX_CLOUD_SAM_CONTEXT)}
        for name, pattern in (("samId", SAM_ID), ("hospitalId", HOSPITAL_ID)):
            value = optional_text_field(body, name, max_length=12)
            if value is not None:
                if not pattern.fullmatch(value):
                    raise BadRequest(f"{name} must match {pattern.pattern}")
                args[name] = value
        reply = self._core.call("ImportCloudSam", args, call=req.context.call)
        resp.media = IMPORT_CLOUD_SAM.render(reply.code, reply.body)


REMOVE_CLOUD_SAM = Operation("Remove a cloud SAM", "SETTING")


class CloudSamResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(REMOVE_CLOUD_SAM)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, sam_id: str) -> None:
        reply = self._core.call("RemoveCloudSam", {"samId": sam_id}, call=req.context.call)
        resp.media = REMOVE_CLOUD_SAM.render(reply.code, reply.body)


CORS_HOSTS = Operation("The CORS allow-list", "SETTING", answers=("cors",))


ALLOW_CORS_HOST = Operation("Allow a host name; in effect at once", "SETTING", body={"allowHost": HOST_NAME}, required=("allowHost",))


class CorsResource:
    """`GET`/`POST /api/settings/v1/Cors`. Unlike the spec's console, a change needs no restart."""

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(CORS_HOSTS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ListCorsHosts", call=req.context.call)
        resp.media = CORS_HOSTS.render(reply.code, reply.body)

    @documented(ALLOW_CORS_HOST)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        host = text_field(json_object(req), "allowHost", max_length=MAX_HOST_LENGTH + 2)
        try:
            normalize_host(host)  # the broker normalizes it again; here a malformed one is a 400 that runs nothing
        except NotAHostName as error:
            raise BadRequest(f"allowHost: {error}") from None
        reply = self._core.call("AllowCorsHost", {"allowHost": host}, call=req.context.call)
        resp.media = ALLOW_CORS_HOST.render(reply.code, reply.body)


REMOVE_CORS_HOST = Operation("Take a host name off the allow-list", "SETTING")


class CorsHostResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(REMOVE_CORS_HOST)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, host: str) -> None:
        reply = self._core.call("RemoveCorsHost", {"id": host}, call=req.context.call)
        resp.media = REMOVE_CORS_HOST.render(reply.code, reply.body)
