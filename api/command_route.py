"""A route whose methods each run one declared command: read its arguments from the request by the command's
own rules, ask the broker, render the spec's answer. Most of the API is this, so it is written once.

`command_resource(core, get=OPERATION, post=OTHER)` makes the resource Falcon routes to; each `Operation`
names its command (`contract.commands`), which says what the body holds, whether the call is recorded and how
long to wait. A route that needs more than that (Record's bare list, Version's static facts, the live stream)
is a resource class of its own.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import falcon

from api.body import json_object, optional_json_object
from api.core_client import CoreClient
from api.errors import NotRecorded
from api.operations import OPERATION_ATTRIBUTE, Operation
from contract.commands import read_json, spec_of
from contract.status_codes import StatusCode

Responder = Callable[..., None]


def with_base64(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """The broker returns bytes; the spec's Base64(N) fields are standard base64 text."""
    return {key: base64.b64encode(value).decode("ascii") if key in names else value for key, value in body.items()}


def command_arguments(req: falcon.Request, operation: Operation, params: dict[str, Any]) -> dict[str, Any]:
    """The command's arguments from the body, checked by the command's rules, and from the URL's fields.

    A URL's field goes to the broker as it came, and the broker's check answers it (1704), as it always has.
    """
    assert operation.command is not None
    if not operation.takes_body:
        body: dict[str, Any] = {}
    elif operation.body_optional:
        body = optional_json_object(req)
    else:
        body = json_object(req)
    args = read_json(operation.command, body, leave_out=operation.path_arguments.values())
    for template_field, argument_name in operation.path_arguments.items():
        args[argument_name] = params[template_field]
    return args


def _responder(core: CoreClient, operation: Operation) -> Responder:
    assert operation.command is not None
    spec = spec_of(operation.command)

    def respond(self: object, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        args = command_arguments(req, operation, params)
        reply = core.call(spec.name, args, call=req.context.call, timeout=spec.api_seconds)
        if reply.code == StatusCode.NOT_RECORDED:  # the broker's disk refused the record: 503, as for 1099
            message = str(reply.body.get("message", "the console could not record the call"))
            raise NotRecorded(message, may_have_run=bool(reply.body.get("mayHaveRun", True)))
        body = with_base64(reply.body, *operation.base64_answers) if reply.code == 0 else reply.body
        resp.media = operation.render(reply.code, body)

    setattr(respond, OPERATION_ATTRIBUTE, operation)
    respond.__doc__ = operation.summary
    return respond


def command_resource(core: CoreClient, **operations: Operation) -> object:
    """A Falcon resource with one responder per method given (`get=`, `post=`, `put=`, `delete=`)."""
    responders: dict[str, Any] = {
        f"on_{method}": _responder(core, operation) for method, operation in operations.items()
    }
    name = "".join(word[:1].upper() + word[1:] for word in operations[next(iter(operations))].summary.split()[:4])
    return type(f"{name}Route", (), responders)()
