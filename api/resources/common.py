"""COMMON: Status, Version and the call Record (the other COMMON endpoints come with the SAM)."""

from __future__ import annotations

from dataclasses import dataclass

import falcon

from api.core_client import CoreClient
from api.errors import BadRequest
from api.formats import ANSWER_FIELDS, MESSAGE, RECORD, STATUS_CODE
from api.operations import Operation, documented
from contract import commands
from contract.commands import MAX_RECORD_TAKE
from contract.status_codes import StatusCode

STATUS = Operation(
    "The console's state: SAM, staff card, health card", "COMMON", commands.GetStatus, answers=("status",)
)


@dataclass(frozen=True)
class VersionInfo:
    file_version: str
    location: str


VERSION = Operation(
    "The console's version",
    "COMMON",
    commands.RecordCall,
    arguments_from="resource",
    answer_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["fileVersion", "shortVersion", "longVersion", "location", "statusCode"],
        "properties": {
            **{name: ANSWER_FIELDS[name] for name in ("fileVersion", "shortVersion", "longVersion", "location")},
            "statusCode": STATUS_CODE,
        },
    },
)


class VersionResource:
    """Static facts; the broker is asked only to record the call. Needs no session (contract.md)."""

    def __init__(self, core: CoreClient, info: VersionInfo) -> None:
        self._core = core
        self._info = info

    @documented(VERSION)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("RecordCall", {"statusCode": int(StatusCode.OK)}, call=req.context.call)
        resp.media = {
            "fileVersion": self._info.file_version,
            "shortVersion": "60",
            "longVersion": "6000",
            "location": self._info.location,
            "statusCode": reply.code,
        }


MAX_QUERY_INTEGER = 999_999_999
"""skip and take: up to 9 digits."""

RECORD_FAILED = {
    "type": "object",
    "additionalProperties": False,
    "required": ["statusCode"],
    "properties": {"statusCode": STATUS_CODE, "message": MESSAGE},
}


def _non_negative(req: falcon.Request, name: str, default: int) -> int:
    raw = req.params.get(name)
    if raw is None:
        return default
    if isinstance(raw, list):
        raise BadRequest(f"{name} is given more than once")
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_QUERY_INTEGER)):
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(raw)


RECORDS = Operation(
    "The call record, newest first",
    "COMMON",
    commands.ListRecords,
    arguments_from="query",
    query={
        "skip": {"type": "integer", "minimum": 0, "maximum": MAX_QUERY_INTEGER},
        "take": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_QUERY_INTEGER,
            "description": f"At most {MAX_RECORD_TAKE} are answered",
        },
    },
    answer_schema={"oneOf": [{"type": "array", "items": RECORD}, RECORD_FAILED]},
)


CLEAR_RECORDS = Operation(
    "Clear the call record (it stays in the audit log)",
    "COMMON",
    commands.ClearRecords,
    answer_schema={"type": "string", "maxLength": 0, "description": "An empty 200, as the spec says"},
    answer_media_type="text/plain",
)


class RecordResource:
    """The call record, newest first; these two endpoints are not recorded themselves (their commands say so)."""

    def __init__(self, core: CoreClient) -> None:
        self._core = core

    @documented(RECORDS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        skip = _non_negative(req, "skip", 0)
        take = min(_non_negative(req, "take", 100), MAX_RECORD_TAKE)
        reply = self._core.call("ListRecords", {"skip": skip, "take": take})
        if reply.code != StatusCode.OK:
            resp.media = RECORDS.render(reply.code, reply.body)
            return
        resp.media = reply.body["records"]

    @documented(CLEAR_RECORDS)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ClearRecords")
        if reply.code != StatusCode.OK:  # the core has no such answer today; were it to, the spec's envelope
            resp.media = CLEAR_RECORDS.render(reply.code, reply.body)
            return
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_TEXT  # an empty body is not a JSON document
        resp.content_length = 0
