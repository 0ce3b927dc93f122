"""The DC simulator's HTTPS server: a thin adapter from `http.server` to `DcService`.

Why so thin: every rule lives in `sim.dc.service` (tested without sockets);
this module only reads a bounded body, writes JSON, closes the connection for
the 1700 fault, and keeps secrets out of its log (method, path and status
only: never a body, a header, or a query string).
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import ssl
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from sim.dc.sam_files import SamCa
from sim.dc.service import DEFAULT_SESSION_TTL_SECONDS, DROP, DcService, Reply, Request
from sim.dc.state import DcState, StateDir
from sim.dc.tls import server_context
from sim.dc.vhc_issuer import VhcIssuer

MAX_BODY_BYTES = 64 * 1024
"""The protocol's bodies are a few hundred bytes; a larger one is refused unread."""
CONNECTION_TIMEOUT_SECONDS = 30.0
"""A silent client (or a TLS handshake that never finishes) frees its thread after this long."""

logger = logging.getLogger("sim.dc")


class JsonRequestHandler(BaseHTTPRequestHandler):
    """One connection (HTTP/1.1 keep-alive) of a bench HTTPS server: bounded bodies in, JSON out, a log line of
    method, path and status only. Subclasses answer in `_serve`; the DC simulator's and the web-API twin's
    (sim/web_api) share the rest, so both keep secrets out of their logs the same way."""

    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_TIMEOUT_SECONDS
    disable_nagle_algorithm = True
    """TCP_NODELAY (socketserver sets it in `setup`). An answer leaves in two writes, the head and then the body;
    with Nagle's algorithm the body waited for the client's delayed ACK of the head, about 40 ms on Linux, on
    every call (bench/dc_round_trip.py: 44 ms a DC call before, 2.5 ms after)."""
    logger = logger
    _status: str = "-"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        """The TLS handshake runs here, in the connection's thread, not in the accepting one."""
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _read_body(self) -> bytes | None:
        """The body, or None if it is too large or unreadable (the connection then closes: bytes remain unread)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        raise NotImplementedError

    def _request(self) -> Request | None:
        """The request as the services take it, or None when the client went away mid-body (nobody to answer)."""
        body = self._read_body()
        if body is not None and len(body) < int(self.headers.get("Content-Length") or "0"):
            self.close_connection = True
            return None
        return Request(self.command, self.path, dict(self.headers.items()), body)

    def _internal_error(self, error: Exception, body: dict[str, object]) -> Reply:
        """A bench server's bug: 500 with `body`, its type and place logged, never its message (it may quote a
        value)."""
        traceback = error.__traceback__
        while traceback is not None and traceback.tb_next is not None:
            traceback = traceback.tb_next
        where = f"{traceback.tb_frame.f_code.co_filename}:{traceback.tb_lineno}" if traceback else "?"
        self.logger.error("internal error %s at %s", type(error).__name__, where)
        return Reply(500, body)

    def _write(self, reply: Reply) -> None:
        self._write_bytes(reply.status, json.dumps(reply.body, ensure_ascii=False).encode("utf-8"))

    def _write_bytes(self, status: int, payload: bytes, content_type: str = "application/json; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, an unsupported method) as JSON, not HTML.

        The message is the status's phrase only: http.server's would quote what the client sent.
        """
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._write(Reply(code, {"error": "badRequest" if code == 400 else "unknownCommand", "message": phrase}))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self._status = str(int(code)) if isinstance(code, int) else str(code)
        self.log_message("")

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """http.server's error lines quote the raw request line; the status is logged by log_request anyway."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Method, path (without a query string) and status: nothing a client sent in a header or body."""
        path = urlsplit(getattr(self, "path", "") or "").path or "-"
        self.logger.info("%s %s %s", getattr(self, "command", None) or "-", path[:200], self._status)


class DcRequestHandler(JsonRequestHandler):
    """Each request goes to the server's `DcService`."""

    server_version = "nhi-console-dc-sim/1"
    server: DcHttpServer

    def _serve(self) -> None:
        request = self._request()
        if request is None:
            return
        try:
            result = self.server.service.handle(request)
        except Exception as error:  # a simulator bug: answer 500, log its type and place, never its message
            result = self._internal_error(error, {"error": "internalError", "message": "the DC simulator failed"})
        if result is DROP:
            self.close_connection = True
            self._status = "dropped (fault 1700)"
            self.log_message("")
            return
        assert isinstance(result, Reply)
        self._write(result)


class LoopbackHttpsServer(ThreadingHTTPServer):
    """A threaded HTTPS server: the listening socket wrapped in a bench TLS context (the DC simulator's or the
    web-API twin's), TLS handshakes in the connections' threads, no reverse DNS lookup at start."""

    daemon_threads = True
    logger = logger

    def __init__(self, address: tuple[str, int], handler: type[JsonRequestHandler], context: ssl.SSLContext) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:
        """As HTTPServer's, minus its reverse DNS lookup (`getfqdn`), which can stall a start for seconds."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        """A failed handshake or a vanished client: one line with the error's type, no traceback, no data."""
        error = sys.exc_info()[1]
        self.logger.warning("connection failed: %s", type(error).__name__ if error else "?")


class DcHttpServer(LoopbackHttpsServer):
    """The DC simulator's server: its `DcService` answers every request."""

    def __init__(self, address: tuple[str, int], service: DcService, context: ssl.SSLContext) -> None:
        self.service = service
        super().__init__(address, DcRequestHandler, context)

    def server_close(self) -> None:
        super().server_close()
        self.service.state.close()


def make_server(
    state_dir: Path, host: str = "127.0.0.1", port: int = 0, session_ttl: float = DEFAULT_SESSION_TTL_SECONDS
) -> DcHttpServer:
    """A bound, listening server over a prepared state dir (`sim.dc.prepare`); `serve_forever()` runs it.

    Port 0 picks a free port (`server.port` says which).
    """
    layout = StateDir(Path(state_dir))
    state = DcState(layout.database)
    try:
        service = DcService(state, SamCa.ensure(layout), session_ttl, VhcIssuer.ensure(layout))
        return DcHttpServer((host, port), service, server_context(layout))
    except BaseException:
        state.close()
        raise
