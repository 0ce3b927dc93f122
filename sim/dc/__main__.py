"""`python -m sim.dc prepare --state-dir DIR` and `python -m sim.dc serve --state-dir DIR --port N`.

`serve` prepares first (idempotent, fast once prepared), so a bench that
forgets `prepare` still starts; it prints one line, `listening on
https://HOST:PORT`, once it accepts connections (what a parent process can
wait for, with `--port 0` to learn the port), and stops cleanly on SIGTERM.
With `--web-api-port N` the NHI web-API twin (sim/web_api) listens there too,
bound before the DC's port (so a DC that accepts means a twin that does), its
controls under the DC's `/sim/v1/WebApi`; a second line says where.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from sim.dc import prepare
from sim.dc.server import make_server
from sim.dc.service import DEFAULT_SESSION_TTL_SECONDS
from sim.web_api.controls import CONTROL_NAME as WEB_API_CONTROLS
from sim.web_api.server import make_twin


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0 to 65535")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim.dc", description="The bench's DC simulator (docs/dc-protocol.md)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser(
        "prepare", help="create the state dir and the bench's start state (idempotent)"
    )
    prepare_parser.add_argument("--state-dir", type=Path, required=True)
    serve_parser = commands.add_parser("serve", help="serve the DC protocol and the bench's controls over HTTPS")
    serve_parser.add_argument("--state-dir", type=Path, required=True)
    serve_parser.add_argument("--port", type=_port, required=True, help="0 picks a free port")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--session-ttl", type=_positive, default=DEFAULT_SESSION_TTL_SECONDS, metavar="SECONDS")
    serve_parser.add_argument(
        "--web-api-port", type=_port, default=None, help="also serve the NHI web-API twin there (0: any free port)"
    )
    return parser


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds serve_forever in the main thread; `finally` closes the server


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prepared = prepare(args.state_dir)
    if args.command == "prepare":
        print(
            f"prepared {prepared.state_dir} (CA {prepared.ca_cert.name}, bench SAM {prepared.bench_sam_file.name},"
            f" HCA trust {prepared.hca_trust.name}, virtual card issuer {prepared.vhc_issuer.name})"
        )
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    twin = None if args.web_api_port is None else make_twin(args.state_dir, args.host, args.web_api_port)
    try:
        server = make_server(args.state_dir, args.host, args.port, args.session_ttl)
    except BaseException:
        if twin is not None:
            twin.close()
        raise
    if twin is not None:
        server.service.mount_bench_controls(WEB_API_CONTROLS, twin.controls.handle)
        twin.serve_in_thread()
    signal.signal(signal.SIGTERM, _stop)
    try:
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"listening on https://{host}:{server.port}", flush=True)
        if twin is not None:
            print(f"web-API twin listening on {twin.base_url}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if twin is not None:
            twin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
