"""Who may call: the `Host` check and the CORS allow-list, enforced before routing, so a refused call runs nothing.

Falcon's stock CORS middleware adds its headers after the responder has run and fixes its list at start; a page
from a host that is not allowed would still have made its card command or setting change happen. Here a request
whose `Origin` is present and not on the list (`null` included) is answered 403 in the request phase: no route,
no broker command, no record. The list lives in the broker's state, asked for on each request that carries an
`Origin` (HIS programs send none and pay nothing), so a change is in effect for the very next request.

A browser sends no `Origin` on a no-cors GET (`<img src>`, `<script src>`, `<link>`, `fetch(…, {mode: "no-cors"})`),
but it does send fetch metadata: `Sec-Fetch-Site` says whether the page that made the request is this site. A request
whose `Sec-Fetch-Site` is anything but `same-origin` or `none` (the user typing the address) must carry an allowed
`Origin`, or it is refused the same way. A request with neither fetch metadata nor `Origin` comes from a program
(a HIS, curl), which no web page can make: it passes, as it always has.

An allowed host that is not loopback is allowed over `https` only: an `http://` origin of a real site is what anyone
on the clinic's network can forge. Loopback hosts (`localhost`, `127.0.0.1`, `[::1]`) are allowed on any scheme and
port, as the spec's own example (a local page) needs.

`Host` must name this machine: a page on another site whose name was rebound to 127.0.0.1 (DNS rebinding) sends
its own name, and is refused before anything else; a request with no `Host` at all (HTTP/1.0) is malformed (400).
"""

from __future__ import annotations

import ipaddress
import logging
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

import falcon

from api.core_client import CoreUnavailable
from api.refusals import RefusalLog

log = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""The names `Host` may carry; `serve --host` adds its address. Also the hosts whose origins may use any scheme."""
LOOPBACK_ORIGIN_HOSTS = LOCAL_HOSTS
"""Hosts whose pages may call over plain `http` too: nobody off this machine can serve them."""
SAFE_FETCH_SITES = frozenset({"same-origin", "none"})
"""`Sec-Fetch-Site` values that need no allowed `Origin`: the console's own pages, and the user typing the address.
`cross-site`, `same-site` and any value we do not know need one (a new value is refused until it is understood)."""
ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOWED_REQUEST_HEADERS = "Content-Type, Last-Event-ID"
"""What a page may send besides the CORS-safelisted headers: JSON bodies, and a fetch-based event-stream client
resuming where it stopped."""
PREFLIGHT_MAX_AGE = "600"


def host_of_header(value: str | None) -> str | None:
    """The host name in a `Host` header (`localhost:5066`, `[::1]:5066`), lower case; None if malformed."""
    if not value or len(value) > 300:
        return None
    parsed = urllib.parse.urlsplit(f"//{value.strip()}")
    try:
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    if not host or parsed.username is not None or parsed.path or parsed.query:
        return None
    return host.rstrip(".")


def host_of_origin(origin: str) -> str | None:
    """The host name of an `Origin` (`https://www.nhi.gov.tw`), lower case; None for `null` or anything else."""
    parsed = urllib.parse.urlsplit(origin.strip())
    try:
        host = parsed.hostname
        parsed.port  # noqa: B018
    except ValueError:
        return None
    if parsed.scheme not in ("http", "https") or not host or parsed.path not in ("", "/"):
        return None
    host = host.rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """On the list, and over `https` unless the host is loopback (see the module's docstring)."""
    host = host_of_origin(origin)
    if host is None or host not in set(allowed):
        return False
    return host in LOOPBACK_ORIGIN_HOSTS or urllib.parse.urlsplit(origin.strip()).scheme.lower() == "https"


def needs_allowed_origin(fetch_site: str | None) -> bool:
    """Whether a browser said this request came from a page of another site (`Sec-Fetch-Site`); None: a program."""
    return fetch_site is not None and fetch_site.strip().lower() not in SAFE_FETCH_SITES


def is_own_origin(origin: str, host_header: str | None) -> bool:
    """A page this console served itself (`/console/`, Swagger UI): `https://` and exactly the `Host` it was asked
    by. Always allowed, so the console's own pages work whatever the allow-list says; no other site can have it."""
    return host_header is not None and origin.strip().lower() == f"https://{host_header.strip().lower()}"


def _refuse(resp: falcon.Response, status: str, message: str) -> None:
    resp.status = status
    resp.media = {"message": message}
    resp.complete = True  # no routing, no responder: nothing runs


class CallerGate:
    """The request-phase gate; `allowed_hosts` asks the broker for the CORS list."""

    def __init__(
        self,
        allowed_hosts: Callable[[], list[str]],
        local_hosts: frozenset[str] = LOCAL_HOSTS,
        refusals: RefusalLog | None = None,
    ) -> None:
        self._allowed_hosts = allowed_hosts
        self._local_hosts = local_hosts
        self._refusals = refusals or RefusalLog(None)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        host_header = req.get_header("Host")
        if host_header is None:
            _refuse(resp, falcon.HTTP_400, "a request must carry a Host header naming this machine")
            return
        host = host_of_header(host_header)
        if host is None or host not in self._local_hosts:
            _refuse(resp, falcon.HTTP_421, "the Host header must name this machine (localhost, 127.0.0.1 or [::1])")
            self._refusals(req, resp, 421, "Host is not this machine")
            return
        origin = req.get_header("Origin")
        if origin is None:
            if needs_allowed_origin(req.get_header("Sec-Fetch-Site")):
                _refuse(
                    resp,
                    falcon.HTTP_403,
                    "a request from another site's page must carry an Origin on the console's CORS allow-list "
                    "(GET /api/settings/v1/Cors); nothing was done",
                )
                self._refusals(req, resp, 403, "another site's request without an Origin")
            return
        try:
            allowed = is_own_origin(origin, host_header) or origin_allowed(origin, self._allowed_hosts())
        except CoreUnavailable:
            log.warning("could not check an Origin: the broker is not answering")
            resp.set_header("Retry-After", "1")
            _refuse(resp, falcon.HTTP_503, "the console's core is not answering; nothing was done, retry shortly")
            return
        if not allowed:
            _refuse(
                resp,
                falcon.HTTP_403,
                "this page's origin is not on the console's CORS allow-list "
                "(GET /api/settings/v1/Cors); nothing was done",
            )
            self._refusals(req, resp, 403, "origin not on the allow-list")
            return
        req.context.cors_origin = origin
        if req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method") is not None:
            resp.status = falcon.HTTP_204
            resp.set_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
            resp.set_header("Access-Control-Allow-Headers", ALLOWED_REQUEST_HEADERS)
            resp.set_header("Access-Control-Allow-Private-Network", "true")
            resp.set_header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE)
            resp.complete = True

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        resp.append_header("Vary", "Origin")
        origin = getattr(req.context, "cors_origin", None)
        if origin is not None:
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Expose-Headers", "X-Request-Id")
