"""SETTING: the PC/SC reader settings, the cloud SAMs and the CORS allow-list."""

from __future__ import annotations

import falcon

from api.answers import spec_answer
from api.body import json_object, optional_text_field, text_field
from api.core_client import CoreClient
from broker.commands import MAX_CLOUD_SAM_CONTEXT, MAX_READER_NAME
from broker.cors_hosts import MAX_HOST_LENGTH


class ReadersResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ListReaders", call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body, "readers")


class AutoDetectedResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("AutoDetectReader", call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body, "readerName")


class DefaultReaderResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("GetDefaultReader", call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body, "readerName")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = text_field(json_object(req), "readerName", max_length=MAX_READER_NAME)
        reply = self._core.call("SetDefaultReader", {"readerName": name}, call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body)

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ClearDefaultReader", call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body)


class CloudSamsResource:
    """The file's content goes to the broker and nowhere else: not into a log line, not into an error."""

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ListCloudSams", call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body, "sams")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        args = {"cloudSamContext": text_field(body, "cloudSamContext", max_length=MAX_CLOUD_SAM_CONTEXT)}
        for name, longest in (("samId", 12), ("hospitalId", 10)):
            value = optional_text_field(body, name, max_length=longest)
            if value is not None:
                args[name] = value
        reply = self._core.call("ImportCloudSam", args, call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body, "sam")


class CloudSamResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_delete(self, req: falcon.Request, resp: falcon.Response, sam_id: str) -> None:
        reply = self._core.call("RemoveCloudSam", {"samId": sam_id}, call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body)


class CorsResource:
    """`GET`/`POST /api/settings/v1/Cors`. Unlike the spec's console, a change needs no restart."""

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ListCorsHosts", call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body, "cors")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        host = text_field(json_object(req), "allowHost", max_length=MAX_HOST_LENGTH + 2)
        reply = self._core.call("AllowCorsHost", {"allowHost": host}, call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body)


class CorsHostResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_delete(self, req: falcon.Request, resp: falcon.Response, host: str) -> None:
        reply = self._core.call("RemoveCorsHost", {"id": host}, call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body)
