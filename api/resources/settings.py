"""SETTING: the PC/SC reader settings (the CloudSam and Cors settings come with their issues)."""

from __future__ import annotations

import falcon

from api.answers import spec_answer
from api.body import json_object, text_field
from api.core_client import CoreClient
from broker.commands import MAX_READER_NAME


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
