"""Reading a JSON request body: an object, at most 64 KiB, or a 400 naming what is wrong."""

from __future__ import annotations

import json
from typing import Any

import falcon

from api.errors import BadRequest
from contract.text import CONTROL_CHARACTERS
from api.middleware import MAX_BODY_BYTES


def json_object(req: falcon.Request) -> dict[str, Any]:
    body = optional_json_object(req)
    if not body:
        raise BadRequest("a JSON object body is required")
    return body


def text_field(body: dict[str, Any], name: str, *, max_length: int = 128) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise BadRequest(f"{name} must be a string of 1 to {max_length} characters")
    if CONTROL_CHARACTERS.search(value):
        raise BadRequest(f"{name} must not hold control characters")
    return unicode_text(value, name)


def unicode_text(value: str, name: str) -> str:
    """JSON's `\\ud800` escape decodes to a lone surrogate, which no UTF-8 (nor msgpack) can carry: a 400, not a 500."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{name} is not valid Unicode text (a lone surrogate)") from None
    return value


def optional_json_object(req: falcon.Request) -> dict[str, Any]:
    """A body that may be left out (`Initial` without a name): empty means `{}`, anything else must be an object."""
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
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


def optional_text_field(body: dict[str, Any], name: str, *, max_length: int = 128) -> str | None:
    if body.get(name) is None:
        return None
    return text_field(body, name, max_length=max_length)
