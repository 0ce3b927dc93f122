"""The web-API twin's HTTPS server and its files: a thin adapter from `http.server` to `WebApiService`.

Why in the DC simulator's process (`python -m sim.dc serve --web-api-port N`): the twin needs what the DC
simulator knows (its clock, which the bench moves; its SAMs, their certificates, hospitals, revocations and
contracts; the virtual card issuer) and is started, restarted and stopped with it. It reads the DC's SQLite
state through a connection of its own (read only), and keeps its own state in its own directory, `web-api/`
in the DC simulator's state dir:

- `ca.pem`, `server.pem`, `server.key` (0600): its own TLS CA, name-constrained to the loopback names like the
  DC simulator's (`sim.dc.tls`). Its own rather than the DC's: a HIS is given this CA (`caPem`) and trusts the
  twin, and nothing else of the bench; the real web API and the real DC are different services too.
- `signer.key` (0600), `signer.pem`: the key that signs visits and prescriptions (`sim.web_api.signer`).
- `state.db`: the cards' records, visits, prescriptions (`sim.web_api.state`).

Like the DC simulator's server, it logs method, path and status only, never a body or a header.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from sim.dc.server import JsonRequestHandler, LoopbackHttpsServer
from sim.dc.state import DcState, StateDir
from sim.dc.tls import ensure_tls_files, server_context_of
from sim.dc.vhc_issuer import VhcIssuer
from sim.web_api.codes import Code
from sim.web_api.controls import WebApiControls
from sim.web_api.service import RawReply, Stall, WebApiService
from sim.web_api.signer import Signer
from sim.web_api.state import WebApiState

logger = logging.getLogger("sim.web_api")

CA_COMMON_NAME = "NHI web-API twin TLS CA (SIMULATION)"
_DIR_MODE = 0o700


@dataclass(frozen=True)
class WebApiDir:
    """The one place that knows the twin's directory's layout."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def signer_key(self) -> Path:
        return self.root / "signer.key"

    @property
    def signer_cert(self) -> Path:
        return self.root / "signer.pem"

    @property
    def database(self) -> Path:
        return self.root / "state.db"

    def ensure(self) -> None:
        """The directory (0700: it holds private keys), its TLS files; each made once, kept after."""
        if not self.root.is_dir():
            self.root.mkdir(mode=_DIR_MODE, parents=True)
            os.chmod(self.root, _DIR_MODE)
        ensure_tls_files(self.ca_cert, self.server_cert, self.server_key, CA_COMMON_NAME)


class WebApiRequestHandler(JsonRequestHandler):
    """Each request goes to the server's `WebApiService`; a `timeout` fault holds the connection unanswered."""

    server_version = "nhi-console-web-api-twin/1"
    logger = logger
    server: WebApiHttpServer

    def _serve(self) -> None:
        request = self._request()
        if request is None:
            return
        try:
            outcome = self.server.service.handle(request)
        except Exception as error:  # a twin bug: 500, its type and place logged, never its message
            outcome = self._internal_error(
                error, {"statusCode": int(Code.TWIN_FAILED), "message": "the web-API twin failed"}
            )
        if isinstance(outcome, Stall):
            self.close_connection = True
            self.server.stopping.wait(outcome.seconds)
            self._status = "held unanswered (fault timeout)"
            self.log_message("")
            return
        if isinstance(outcome, RawReply):
            self._write_bytes(outcome.status, outcome.payload, outcome.content_type)
            return
        self._write(outcome)


class WebApiHttpServer(LoopbackHttpsServer):
    """The twin's listening socket: TLS with the twin's own certificate."""

    logger = logger

    def __init__(self, address: tuple[str, int], service: WebApiService, context: ssl.SSLContext) -> None:
        self.service = service
        self.stopping = threading.Event()
        """Set at close: a call held by a `timeout` fault ends then rather than at its time."""
        super().__init__(address, WebApiRequestHandler, context)

    def server_close(self) -> None:
        self.stopping.set()
        super().server_close()


@dataclass
class Twin:
    """A bound twin: its server, the controls to mount on the DC simulator's service, what to close."""

    server: WebApiHttpServer
    controls: WebApiControls
    state: WebApiState
    dc_state: DcState
    thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.controls.base_url

    def serve_in_thread(self) -> None:
        """Serve from a daemon thread (the DC simulator's server has the main one)."""
        self.thread = threading.Thread(target=self.server.serve_forever, name="web-api-twin", daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()
        self.state.close()
        self.dc_state.close()


def make_twin(state_dir: Path, host: str = "127.0.0.1", port: int = 0) -> Twin:
    """A bound, listening twin over a prepared DC simulator state dir (`sim.dc.prepare`); port 0 picks one.

    Its files are made on the first start and kept: a new CA would break every HIS that trusts the old one.
    """
    layout = StateDir(Path(state_dir))
    twin_dir = WebApiDir(layout.web_api_dir)
    twin_dir.ensure()
    signer = Signer.ensure(twin_dir.signer_key, twin_dir.signer_cert)
    issuer = VhcIssuer.ensure(layout)
    dc_state = DcState(layout.database)
    state: WebApiState | None = None
    try:
        state = WebApiState(twin_dir.database)
        service = WebApiService(state, dc_state, signer, issuer.key)
        server = WebApiHttpServer((host, port), service, server_context_of(twin_dir.server_cert, twin_dir.server_key))
    except BaseException:
        if state is not None:
            state.close()
        dc_state.close()
        raise
    ca_pem = twin_dir.ca_cert.read_text(encoding="ascii")
    controls = WebApiControls(state, f"https://localhost:{server.port}", ca_pem, signer)
    return Twin(server, controls, state, dc_state)
