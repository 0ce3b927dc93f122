"""A small HTTPS client for the web-API twin: what a test or an example registration calls it with.

Why: the twin is called as a HIS would call the NHI's web API (a JSON body POSTed to a path under a base URL,
the server verified against a CA), and `GET /api/sim/v1/WebApi` gives exactly the base URL and the CA. This
keeps that to two lines, trusting the twin's CA and nothing else (not the system's store).
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class WebApiAnswer:
    status: int
    body: Any
    """The JSON answer, or None when it is not JSON (the `unreadable` and `http500` faults)."""
    raw: bytes


class WebApiClient:
    def __init__(self, base_url: str, ca_pem: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme != "https" or url.hostname is None:
            raise ValueError("the web API's base URL is https://host:port")
        self.host = url.hostname
        self.port = url.port or 443
        self.timeout = timeout
        self.context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2

    @classmethod
    def from_bench(cls, where: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> WebApiClient:
        """From the answer of the console's `GET /api/sim/v1/WebApi` (`baseUrl`, `caPem`)."""
        return cls(str(where["baseUrl"]), str(where["caPem"]), timeout)

    def post(self, path: str, body: Any, timeout: float | None = None) -> WebApiAnswer:
        """POST `body` as JSON (bytes are sent as they are) on a fresh connection; raises OSError (TimeoutError
        included; an untrusted certificate is an ssl.SSLError) or http.client.HTTPException when no answer comes."""
        payload = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout if timeout is None else timeout
        )
        try:
            connection.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            parsed = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            parsed = None
        return WebApiAnswer(response.status, parsed, raw)
