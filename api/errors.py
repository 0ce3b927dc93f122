"""How every failure becomes an HTTP answer, in one place.

Spec'd business outcomes are HTTP 200 with a statusCode (rendered by the
resources); what is handled here is the rest: malformed requests (400 with
1704, and the call is still recorded), unknown paths (404), wrong methods
(405), a broker that is not answering (503 with nhi-console's 1099), and a broker
that could not record the call (503 with nhi-console's 1098: its disk is full or
read-only).
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from api.core_client import CoreClient, CoreUnavailable
from contract.arguments import BadArguments
from contract.protocol import CallMeta
from contract.status_codes import StatusCode

log = logging.getLogger(__name__)


NOT_RECORDED_RETRY_AFTER = "5"
"""Seconds a HIS may wait before retrying a call that did not run: a full disk is not cleared in one second."""


class NotRecorded(Exception):
    """The broker answered 1098: it could not write its log, so the call's own answer was withheld.

    `may_have_run`: card or DC steps ran for it (a flow), so a blind retry could run it twice (a PIN try)."""

    def __init__(self, message: str, *, may_have_run: bool) -> None:
        super().__init__(message)
        self.message = message
        self.may_have_run = may_have_run


class NotRecordedStatus:
    """Middleware: any other answer carrying 1098 (Version, Record) is a 503 too, never a 200.

    Command routes raise NotRecorded instead (they know whether the call may have run); these answers are
    rendered by their own resources, so they are caught on the way out, without a Retry-After (the safe side).
    """

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        media = resp.media if req_succeeded else None
        if isinstance(media, dict) and media.get("statusCode") == StatusCode.NOT_RECORDED and resp.status_code == 200:
            resp.status = falcon.HTTP_503


class BadRequest(Exception):
    """A request outside the spec's formats; the message names the field and why, never its value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def install_error_handling(app: falcon.App, core: CoreClient) -> None:
    def bad_request(
        req: falcon.Request, resp: falcon.Response, error: BadRequest | BadArguments, params: dict[str, Any]
    ) -> None:
        call: CallMeta | None = getattr(req.context, "call", None)
        if call is not None:
            try:
                recorded = core.call("RecordCall", {"statusCode": int(StatusCode.BAD_PARAMETER)}, call=call)
            except CoreUnavailable:
                log.warning("could not record a rejected call: broker unavailable")
            else:
                if recorded.code == StatusCode.NOT_RECORDED:  # no answer without its record, a 400 included
                    not_recorded(
                        req, resp, NotRecorded(str(recorded.body.get("message", "")), may_have_run=False), params
                    )
                    return
        resp.status = falcon.HTTP_400
        resp.media = {"statusCode": int(StatusCode.BAD_PARAMETER), "message": str(error)}

    def core_unavailable(
        req: falcon.Request, resp: falcon.Response, error: CoreUnavailable, params: dict[str, Any]
    ) -> None:
        log.warning("%s %s: %s", req.method, req.path, error)
        resp.status = falcon.HTTP_503
        if error.delivered:
            # It may have run (a card command, a DC call): a blind retry could run it twice.
            message = (
                "the console's core did not answer in time; the call may have run: "
                "check Status and Record before retrying"
            )
        else:
            resp.set_header("Retry-After", "1")
            message = "the console's core is not answering (restarting?); nothing was done, retry shortly"
        resp.media = {"statusCode": int(StatusCode.CONSOLE_UNAVAILABLE), "message": message}

    def not_recorded(req: falcon.Request, resp: falcon.Response, error: NotRecorded, params: dict[str, Any]) -> None:
        log.warning("%s %s: not recorded (the console could not write its log)", req.method, req.path)
        resp.status = falcon.HTTP_503
        if not error.may_have_run:
            resp.set_header("Retry-After", NOT_RECORDED_RETRY_AFTER)
        resp.media = {"statusCode": int(StatusCode.NOT_RECORDED), "message": error.message}

    def serialize_http_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
        body: dict[str, Any] = {"message": error.description or error.title}
        if error.status_code == 400:
            body = {"statusCode": int(StatusCode.BAD_PARAMETER), **body}
        resp.content_type = "application/json; charset=utf-8"
        resp.media = body

    app.add_error_handler(BadRequest, bad_request)
    app.add_error_handler(BadArguments, bad_request)  # a command's own rules refused the body (contract.arguments)
    app.add_error_handler(CoreUnavailable, core_unavailable)
    app.add_error_handler(NotRecorded, not_recorded)
    app.add_middleware(NotRecordedStatus())
    app.set_error_serializer(serialize_http_error)
