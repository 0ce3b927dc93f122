"""Request-phase checks and the call's identity, before any resource runs."""

from __future__ import annotations

import uuid
from typing import Any

import falcon

from api.errors import BadRequest
from api.operations import operation_of
from api.refusals import RefusalLog, caller_of
from contract.protocol import CallMeta

MAX_BODY_BYTES = 64 * 1024
JSON_UTF8 = "application/json; charset=utf-8"


class CallIdentity:
    """Give every routed `/api/` call its record uuid (echoed as X-Request-Id) and enforce the body cap.

    `process_resource` runs only when a route matched, so unknown paths (404) are
    never recorded; commands declared `recorded=False` (the Record endpoints, the
    live stream) are not either. The call's caller is its `Origin` (the gate let only allowed ones through) or
    `native`. A body that is not JSON is refused (415) before the call gets an identity, and the refusal is kept
    in the log (api/refusals.py).
    """

    def __init__(self, refusals: RefusalLog | None = None) -> None:
        self._refusals = refusals or RefusalLog(None)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if resource is None:
            return
        answers = hasattr(resource, f"on_{req.method.lower()}")  # otherwise 405 comes first
        if answers and _has_body(req) and not _is_json(req.content_type):
            # Checked before the call gets its identity: a body we will not read runs nothing and is not recorded.
            self._refusals(req, resp, 415, "body is not JSON")
            raise falcon.HTTPUnsupportedMediaType(description="a request body must be application/json")
        call_uuid = str(uuid.uuid4())
        resp.set_header("X-Request-Id", call_uuid)
        if _is_recorded(resource, req.method) and req.path.startswith("/api/"):
            req.context.call = CallMeta(url=req.path, uuid=call_uuid, caller=caller_of(req.get_header("Origin")))
        if (req.content_length or 0) > MAX_BODY_BYTES:
            raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")


class PrivateAnswers:
    """Every answer is `nosniff`, and every JSON answer and event stream `no-store`.

    A JSON answer can carry a patient's name and ID number: a browser must not keep it in its disk cache (where the
    next user of the clinic's PC, or a forensic copy, finds it), and must never run it as a script or style sheet
    whatever a page's `<script src>` says. Runs for every answer, refused ones (403, 421) included.
    """

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        if resp.status_code in (204, 304):
            return  # no body, no content type
        content_type = resp.content_type or JSON_UTF8  # unset: the app's media type (api/app.py), JSON
        if content_type.startswith("application/json"):
            resp.content_type = JSON_UTF8
        if content_type.startswith(("application/json", "text/event-stream")):
            resp.set_header("Cache-Control", "no-store")


def _is_recorded(resource: Any, method: str) -> bool:
    """A route of a declared command is recorded as the command's declaration says; another resource (a page,
    the OpenAPI document) says so itself."""
    responder = getattr(resource, f"on_{method.lower()}", None)
    operation = operation_of(responder) if responder is not None else None
    if operation is not None and operation.command is not None:
        return operation.recorded
    return bool(getattr(resource, "recorded", True))


def _has_body(req: falcon.Request) -> bool:
    return bool(req.content_length) or req.get_header("Transfer-Encoding") is not None


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/json"
