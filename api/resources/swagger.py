"""The OpenAPI document at the spec's address, `/api/swagger/v1/swagger.json`, built from the app's own routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from api.operations import Operation, documented

OPENAPI_DOCUMENT = Operation(
    "This OpenAPI document",
    "COMMON",
    answer_schema={"type": "object", "required": ["openapi", "paths"]},
    description="Built from the console's routes and the operation each declares, so it lists exactly what is served.",
)


class OpenApiDocumentResource:
    """Built on the first request, when every route (the bench's too) has been added; not a call to record."""

    recorded = False

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build = build
        self._document: dict[str, Any] | None = None

    @documented(OPENAPI_DOCUMENT)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._document is None:
            self._document = self._build()
        resp.media = self._document
