"""What each responder takes and answers, declared beside it: the OpenAPI document is built from these.

A responder is marked with `@documented(Operation(...))`. Its answer is
rendered by the same `Operation` (`render` picks the fields it declares), so
the document and the answer cannot name different fields; its request body's
schema is the one schemathesis fuzzes the running console with, so a
validation that drifts from the schema fails the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from api.answers import spec_answer
from contract.commands import body_schema, spec_of
from contract.schemas import Schema

Responder = TypeVar("Responder", bound=Callable[..., Any])

OPERATION_ATTRIBUTE = "operation"


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    command: type | None = None
    """The declared command (`contract.commands`) the operation runs: its arguments are the request body's,
    checked by the command's own rules and documented by their schemas, and the API waits as long as it says."""
    answers: tuple[str, ...] = ()
    """The spec's fields of a statusCode 0 answer, in the spec's order (formats in `api.formats.ANSWER_FIELDS`)."""
    body: Mapping[str, Schema] | None = None
    """The JSON body's properties; None: the operation reads no body."""
    required: tuple[str, ...] = ()
    body_optional: bool = False
    """The body may be left out entirely (`Initial` without a name, the spec's `{}` bodies)."""
    body_schema: Schema | None = None
    """A whole body schema, where properties and `required` cannot say it (either keys or cancel)."""
    query: Mapping[str, Schema] = field(default_factory=dict)
    path: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, Schema] = field(default_factory=dict)
    """Request headers the operation reads (beyond Content-Type)."""
    answer_schema: Schema | None = None
    """An answer outside the spec's envelope (Record's list, the bench's own answers)."""
    answer_media_type: str = "application/json"
    errors: tuple[int, ...] = ()
    """HTTP statuses beyond the ones every route can give (the bench's 400, 404 and 502)."""
    description: str = ""
    base64_answers: tuple[str, ...] = ()
    """Answer fields the broker sends as bytes and the spec's answer carries as base64 text."""
    path_arguments: Mapping[str, str] = field(default_factory=dict)
    """URL template field -> the command's argument it carries (`/Cors/{host}` carries `id`)."""
    arguments_from: Literal["body", "query", "resource"] = "body"
    """Where the command's arguments come from: the JSON body (the rule), the query string (Record), or the
    resource itself (the stream's long poll, Version's record): only "body" documents them as a body."""

    def __post_init__(self) -> None:
        if (
            self.command is None
            or self.arguments_from != "body"
            or self.body is not None
            or self.body_schema is not None
        ):
            return
        properties, required = body_schema(self.command)
        for name in self.path_arguments.values():
            properties.pop(name, None)
        if properties:
            object.__setattr__(self, "body", properties)
            object.__setattr__(self, "required", tuple(name for name in required if name in properties))

    @property
    def recorded(self) -> bool:
        """Whether its call goes into the call record: the command's declaration says (True without one)."""
        return self.command is None or spec_of(self.command).recorded

    def render(self, code: int, body: dict[str, Any]) -> dict[str, Any]:
        """The spec's answer: statusCode, then this operation's fields on success, the message on failure."""
        return spec_answer(code, body, *self.answers)

    @property
    def takes_body(self) -> bool:
        return self.body is not None or self.body_schema is not None


def documented(operation: Operation) -> Callable[[Responder], Responder]:
    def mark(responder: Responder) -> Responder:
        setattr(responder, OPERATION_ATTRIBUTE, operation)
        return responder

    return mark


def operation_of(responder: Callable[..., Any]) -> Operation | None:
    found = getattr(responder, OPERATION_ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None
