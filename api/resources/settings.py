"""SETTING: the PC/SC reader settings (the CloudSam and Cors settings come with their issues)."""

from __future__ import annotations

import falcon

from api.body import json_object, text_field
from api.core_client import CoreClient
from broker.commands import MAX_READER_NAME


def _render(resp: falcon.Response, code: int, body: dict[str, object], *fields: str) -> None:
    """The spec's answer: statusCode, then the named fields on success, our message on failure."""
    answer: dict[str, object] = {"statusCode": code}
    if code == 0:
        answer.update({name: body[name] for name in fields})
    elif "message" in body:
        answer["message"] = body["message"]
    resp.media = answer


class ReadersResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ListReaders", call=req.context.call)
        _render(resp, reply.code, reply.body, "readers")


class AutoDetectedResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("AutoDetectReader", call=req.context.call)
        _render(resp, reply.code, reply.body, "readerName")


class DefaultReaderResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("GetDefaultReader", call=req.context.call)
        _render(resp, reply.code, reply.body, "readerName")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = text_field(json_object(req), "readerName", max_length=MAX_READER_NAME)
        reply = self._core.call("SetDefaultReader", {"readerName": name}, call=req.context.call)
        _render(resp, reply.code, reply.body)

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ClearDefaultReader", call=req.context.call)
        _render(resp, reply.code, reply.body)
