"""The console bench's way to the DC simulator's controls (`/sim/v1/` on the simulator, over HTTPS).

The control API (`/api/sim/v1/CloudSam`, `/Dc/Faults`, `/Clock`) passes these
calls on, so a HIS developer drives the whole bench through the console's port.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT = 10.0


class DcControlError(Exception):
    """The simulator refused (`status` 400/404, its message) or could not be reached (`status` 502)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class DcControl:
    base_url: str
    ca_file: Path

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = urllib.parse.urlsplit(self.base_url)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        connection = http.client.HTTPSConnection(
            url.hostname or "127.0.0.1", url.port, context=context, timeout=TIMEOUT
        )
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            connection.request(method, f"/sim/v1/{path}", body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise DcControlError(502, f"the DC simulator is not answering: {type(error).__name__}") from None
        finally:
            connection.close()
        try:
            answer = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.status != 200:
            raise DcControlError(response.status, str(answer.get("message", f"HTTP {response.status}")))
        return answer
