"""The OpenAPI 3.1 document, built from the app's own routes and the `Operation` each responder declares.

The routes come from Falcon's router, so a route added
without a declaration fails the build (`UndocumentedRoute`) instead of
silently missing from the document, and the document holds no path that is
not routed. Built once per app, when first asked for.
"""

from __future__ import annotations

import re
from typing import Any

import falcon

from api.formats import ANSWER_FIELDS, MESSAGE, STATUS_CODE
from api.operations import Operation, operation_of
from contract.schemas import Schema

COMMON_ERRORS: dict[int, str] = {
    400: "A malformed request: statusCode 1704 and which field is wrong. Nothing ran.",
    403: "The page's Origin is not on the CORS allow-list. Nothing ran.",
    404: "No such path.",
    415: "A request body that is not application/json. Nothing ran.",
    421: "A Host that is not this machine (DNS rebinding). Nothing ran.",
    503: "statusCode 1099: the console's core is restarting. Check Record before retrying a call that may have run.",
}

ERROR_ANSWER: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "properties": {"statusCode": STATUS_CODE, "message": MESSAGE},
}

_TEMPLATE_FIELD = re.compile(r"{([^}]+)}")


class UndocumentedRoute(RuntimeError):
    """A routed method whose responder declares no `Operation`: the document would be incomplete."""


def routed_operations(app: falcon.App) -> dict[tuple[str, str], Operation]:
    """(path template, method) -> Operation for every method the app routes to a responder of ours.

    Walks the compiled router's nodes as `falcon.inspect.inspect_compiled_router` does, without the
    source-file lookups that make that one take most of a second; the unit tests compare the two.
    """
    found: dict[tuple[str, str], Operation] = {}
    nodes = list(app._router._roots)  # noqa: SLF001
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        if node.resource is None or not getattr(node.resource, "in_document", True):
            continue  # no resource, or a page (api/resources/pages.py): not an API operation
        if node.method_map is None or node.uri_template is None:
            continue  # a node with a resource has both; the router's own nodes between them have neither
        for method, responder in node.method_map.items():
            if getattr(responder, "__self__", None) is not node.resource:
                continue  # Falcon's own OPTIONS and 405 responders
            operation = operation_of(responder)
            if operation is None:
                raise UndocumentedRoute(
                    f"{method} {node.uri_template} ({type(node.resource).__name__}) declares no Operation"
                )
            found[(node.uri_template, method)] = operation
    return found


def build_document(app: falcon.App, *, title: str, version: str, description: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), operation in sorted(routed_operations(app).items()):
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": {"ErrorAnswer": ERROR_ANSWER}},
    }


def _operation(path: str, method: str, operation: Operation) -> dict[str, Any]:
    document: dict[str, Any] = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "operationId": _operation_id(path, method),
        "responses": _responses(operation),
    }
    if operation.description:
        document["description"] = operation.description
    parameters = (
        [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": operation.path.get(name, {"type": "string", "minLength": 1}),
            }
            for name in _TEMPLATE_FIELD.findall(path)
        ]
        + [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in operation.query.items()
        ]
        + [
            {"name": name, "in": "header", "required": False, "schema": schema}
            for name, schema in operation.headers.items()
        ]
    )
    if parameters:
        document["parameters"] = parameters
    if operation.takes_body:
        document["requestBody"] = {
            "required": not operation.body_optional,
            "content": {"application/json": {"schema": _body_schema(operation)}},
        }
    return document


def _body_schema(operation: Operation) -> Schema:
    if operation.body_schema is not None:
        return operation.body_schema
    schema: Schema = {"type": "object", "properties": dict(operation.body or {})}
    if operation.required:
        schema["required"] = list(operation.required)
    return schema


def _responses(operation: Operation) -> dict[str, Any]:
    answer = operation.answer_schema if operation.answer_schema is not None else _envelope(operation)
    responses: dict[str, Any] = {
        "200": {"description": "The answer", "content": {operation.answer_media_type: {"schema": answer}}},
    }
    errors = dict(COMMON_ERRORS)
    for status in operation.errors:
        errors.setdefault(status, "The bench could not do it")
    for status, description in sorted(errors.items()):
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}},
        }
    responses["414"] = {
        "description": "A request line over gunicorn's limit (4094 bytes), refused by the HTTP server itself. "
        "Nothing ran.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    return responses


def _envelope(operation: Operation) -> Schema:
    """statusCode, then the operation's fields when it is 0 or the message when it is not."""
    missing = [name for name in operation.answers if name not in ANSWER_FIELDS]
    if missing:
        raise UndocumentedRoute(f"{operation.summary}: no format for {', '.join(missing)} in api.formats")
    properties: Schema = {"statusCode": STATUS_CODE, "message": MESSAGE}
    properties.update({name: ANSWER_FIELDS[name] for name in operation.answers})
    return {"type": "object", "additionalProperties": False, "required": ["statusCode"], "properties": properties}


def _operation_id(path: str, method: str) -> str:
    words = [part for part in re.split(r"[/{}]+", path) if part and part not in ("api", "v1")]
    return method.lower() + "".join(word[:1].upper() + word[1:] for word in words)
