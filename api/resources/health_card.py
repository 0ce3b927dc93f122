"""HC: the health card's endpoints (basic data here; PIN, signatures and virtual cards come with their issue)."""

from __future__ import annotations

import falcon

from api.answers import spec_answer
from api.core_client import CoreClient
from api.resources.session import FLOW_TIMEOUT

HC_BASIC_FIELDS = ("cardId", "name", "idNo", "birthday", "sex", "dateIssue", "identityStatus")


class HcBasicResource:
    def __init__(self, core: CoreClient) -> None:
        self._core = core

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._core.call("ReadHcBasic", call=req.context.call, timeout=FLOW_TIMEOUT)
        resp.media = spec_answer(reply.code, reply.body, *HC_BASIC_FIELDS)
