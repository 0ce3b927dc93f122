"""Requests refused before they ran, kept in the log: who was turned away, from which page, and why (issue 22).

The gate (api/callers.py) and the body check (api/middleware.py) refuse in the request phase, so nothing runs and
nothing enters the call record (the Record API lists calls that ran). An auditor still wants to see them: a page
probing the console is exactly what the `refusals` view is for. So each refusal is sent to the broker as
`RecordRefusal`, which appends `CallRefused` with the request's uuid (its `X-Request-Id`) as the event's cause.

What a refusal keeps is the path, the `Origin` (or `native`) and the console's own reason: never the request's
headers or body. The path and origin are cut and cleaned (no control characters) before they travel, since they
are whatever a hostile page sent. A broker that does not answer loses the refusal (logged as a warning): the
refusal itself does not wait for it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Final

import falcon

from api.core_client import CoreClient, CoreUnavailable
from contract.commands import MAX_REFUSED_TEXT
from contract.protocol import CallMeta
from contract.text import CONTROL_CHARACTERS

log = logging.getLogger(__name__)

NATIVE: Final = "native"
"""The caller of a request without `Origin`: a program (a HIS, curl), which no web page can be."""

REFUSAL_SECONDS: Final = 2.0
"""How long a refusal waits for the broker to keep it; the refused caller's answer waits that long at most."""


def caller_of(origin: str | None) -> str:
    """Who called, as the log keeps it: the `Origin` as sent (cleaned, cut), or `native`."""
    if origin is None:
        return NATIVE
    return clean(origin)


def clean(text: str) -> str:
    """Text from a request made safe to keep: control characters replaced, cut to MAX_REFUSED_TEXT, never empty."""
    return CONTROL_CHARACTERS.sub("?", text)[:MAX_REFUSED_TEXT] or "?"


class RefusalLog:
    """Sends each refusal to the broker; `core` None (a test app without a broker) keeps none."""

    def __init__(self, core: CoreClient | None) -> None:
        self._core = core

    def __call__(self, req: falcon.Request, resp: falcon.Response, status: int, reason: str) -> None:
        """Keep one refusal, and give its answer the uuid it is kept under (`X-Request-Id`)."""
        request_uuid = str(uuid.uuid4())
        resp.set_header("X-Request-Id", request_uuid)
        if self._core is None:
            return
        caller = caller_of(req.get_header("Origin"))
        url = clean(req.path)
        args = {"url": url, "caller": caller, "status": status, "reason": reason}
        try:
            self._core.call(
                "RecordRefusal", args, call=CallMeta(url=url, uuid=request_uuid, caller=caller), timeout=REFUSAL_SECONDS
            )
        except CoreUnavailable:
            log.warning("a refused request (%d) could not be kept in the log: the broker is not answering", status)
