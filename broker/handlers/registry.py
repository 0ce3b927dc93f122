"""Handlers by command type: what each declared command does in the broker.

A handler takes the context (`broker.context.ConsoleContext`) and the parsed command, and answers with
`(statusCode, body)` at once, or with a flow to run (`StartFlow`) when it needs cards or the DC. It is looked up by
the command's type: no ladders. Preconditions the declaration states (a session) are checked before it runs,
and the call is recorded after it answers, by the application service (`broker.core`), never by the handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from broker.flows.runner import CardStep, Flow

if TYPE_CHECKING:
    from broker.context import ConsoleContext

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class StartFlow:
    """A command that takes steps (cards, the DC): the loop runs `flow` and answers with its outcome."""

    flow: Flow


Handler = Callable[["ConsoleContext", Any], "Answer | StartFlow"]
HANDLERS: dict[type, Handler] = {}
"""The console's own handlers; the bench adds its own to a core's table (`ConsoleCore.install`), never here."""

Command = TypeVar("Command")


def handles(
    command_class: type[Command],
) -> Callable[
    [Callable[[ConsoleContext, Command], Answer | StartFlow]], Callable[[ConsoleContext, Command], Answer | StartFlow]
]:
    def register(
        handler: Callable[[ConsoleContext, Command], Answer | StartFlow],
    ) -> Callable[[ConsoleContext, Command], Answer | StartFlow]:
        if command_class in HANDLERS:
            raise ValueError(f"{command_class.__name__} has a handler already")
        HANDLERS[command_class] = handler
        return handler

    return register


def one_card_step(
    reader: str,
    command: str,
    args: dict[str, Any] | None = None,
    then: Callable[[int, dict[str, Any]], None] | None = None,
    *,
    ahead: bool = False,
) -> Flow:
    """A card command of one step, as a flow like any other (the loop knows one kind of card work). `then` sees
    the worker's answer before it is returned (the bench records a card change it asked for); `ahead`: see
    `CardStep.ahead`."""
    reply = yield CardStep(reader, command, args or {}, ahead=ahead)
    if then is not None:
        then(reply.code, reply.body)
    return reply.code, reply.body
