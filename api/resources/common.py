"""COMMON: Status, Version and the call Record (the other COMMON endpoints come with the SAM)."""

from __future__ import annotations

from dataclasses import dataclass

import falcon

from api.answers import spec_answer
from api.core_client import CoreClient
from api.errors import BadRequest
from broker.commands import MAX_RECORD_TAKE
from broker.status_codes import StatusCode


class StatusResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("GetStatus", call=req.context.call)
        resp.media = spec_answer(reply.code, reply.body, "status")


@dataclass(frozen=True)
class VersionInfo:
    file_version: str
    location: str


class VersionResource:
    """Static facts; the broker is asked only to record the call. Needs no session (contract.md)."""

    def __init__(self, core: CoreClient, info: VersionInfo) -> None:
        self._core = core
        self._info = info

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("RecordCall", {"statusCode": int(StatusCode.OK)}, call=req.context.call)
        resp.media = {
            "fileVersion": self._info.file_version,
            "shortVersion": "60",
            "longVersion": "6000",
            "location": self._info.location,
            "statusCode": reply.code,
        }


def _non_negative(req: falcon.Request, name: str, default: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(raw)


class RecordResource:
    """The call record, newest first; these two endpoints are not recorded themselves."""

    recorded = False

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        skip = _non_negative(req, "skip", 0)
        take = min(_non_negative(req, "take", 100), MAX_RECORD_TAKE)
        reply = self._core.call("ListRecords", {"skip": skip, "take": take})
        if reply.code != StatusCode.OK:
            resp.media = spec_answer(reply.code, reply.body)
            return
        resp.media = reply.body["records"]

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ClearRecords")
        if reply.code != StatusCode.OK:
            resp.media = spec_answer(reply.code, reply.body)
            return
        resp.status = falcon.HTTP_200
        resp.content_length = 0
