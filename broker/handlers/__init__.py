"""The broker's command handlers, one module per area; importing the package registers them all
(`registry.HANDLERS`)."""

from broker.handlers import agents, cards, readers, records, session, settings  # noqa: F401 - registers the handlers
from broker.handlers.registry import HANDLERS, Answer, Handler, StartFlow, handles

__all__ = ["HANDLERS", "Answer", "Handler", "StartFlow", "handles"]
