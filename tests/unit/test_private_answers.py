"""Every JSON answer of every operation in the OpenAPI document is `no-store` and `nosniff` (issue 20).

A JSON answer may carry a patient's name and ID number; the browser must neither keep it in its disk cache nor run
it as a script. The operations come from the console's own document, so a route added later is covered without
anyone remembering to add it here. The core is a stand-in answering every command with status 0 and an empty body:
whatever each operation makes of that (an answer, a 400, a 502), its headers are what is checked.
"""

from __future__ import annotations

import json
import re
from typing import Any

import falcon.testing
import pytest

from api.app import create_app, load_mount
from api.resources.common import VersionInfo
from deploy.cli import SIM_CONTROL_API
from tests.unit.test_api import FakeCore

LOCAL = {"Host": "localhost:5066"}
STREAMS = {"/api/events/v1/Stream"}
"""Answers as an event stream (its headers are checked below, on its refusal and its start)."""


def _app() -> falcon.App:
    """The console with the bench's control API mounted, as `serve --sim` has it."""
    return create_app(
        FakeCore(),  # type: ignore[arg-type]  # a stand-in core
        VersionInfo("1.2.3", "/opt/nhi-console"),
        extra_routes=load_mount(SIM_CONTROL_API),
    )


def _operations() -> list[tuple[str, str]]:
    document = falcon.testing.TestClient(_app(), headers=LOCAL).simulate_get("/api/swagger/v1/swagger.json").json
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete")
    ]


OPERATIONS = _operations()


def test_the_document_lists_the_operations() -> None:
    assert len(OPERATIONS) >= 40, OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_json_answer_is_no_store_and_nosniff(method: str, path: str) -> None:
    client = falcon.testing.TestClient(_app(), headers=LOCAL)
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    body: Any = None if method in ("GET", "DELETE") else json.dumps({})
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if path in STREAMS:
        headers["Sec-Fetch-Site"] = "cross-site"  # refused at once: the answer is JSON, and nothing streams
    response = client.simulate_request(method, concrete, body=body, headers=headers)
    assert response.headers["x-content-type-options"] == "nosniff", (method, path)
    if not response.headers["content-type"].startswith("application/json"):
        # `DELETE Record` answers an empty text body, as the spec shows: nothing there to cache
        assert response.content == b"", (method, path, response.headers["content-type"])
        return
    assert response.headers["cache-control"] == "no-store", (method, path)
