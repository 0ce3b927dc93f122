"""Reading a JSON request body: an object, at most 64 KiB, or a 400 naming what is wrong."""

from __future__ import annotations

import json
from typing import Any

import falcon

from api.errors import BadRequest
from api.middleware import MAX_BODY_BYTES
from contract.arguments import Text


def json_object(req: falcon.Request) -> dict[str, Any]:
    body = optional_json_object(req)
    if not body:
        raise BadRequest("a JSON object body is required")
    return body


def text_field(body: dict[str, Any], name: str, *, max_length: int = 128) -> str:
    """A text field of a body that is not a declared command's (the bench's own): the same rule as every
    command's text (`contract.arguments.Text`)."""
    return Text(max_length=max_length).from_json(name, body.get(name))


def optional_json_object(req: falcon.Request) -> dict[str, Any]:
    """A body that may be left out (`Initial` without a name): none at all means `{}`, anything else must be an
    object. Whitespace alone is not "none": it is a body that is not JSON (400), as a fuzzer rightly expects."""
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    except RecursionError:  # thousands of nested brackets fit in 64 KiB
        raise BadRequest("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body
