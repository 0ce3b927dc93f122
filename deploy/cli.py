"""The `nhi-console` command: serve, status, cert, doctor, log, reader-agent, agents.

`serve` turns its command line into the one settings object (contract/settings.py), whose classes hold every
default its flags show, writes it once to the run dir, and starts the children, which read it."""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from broker.runtime.backoff import RestartBackoff
from contract.agent_link import CONSOLE_KEY_NAME, AgentLinkError, check_agent_endpoint, ensure_key_pair
from contract.exit_codes import DATA_DIR_UNWRITABLE, EXPOSURE_NOT_CONFIRMED
from contract.serial_port_names import port_option
from contract.settings import (
    DURABILITIES,
    SETTINGS_ENV,
    ApiSettings,
    BenchReader,
    BenchSettings,
    DataCenterSettings,
    Locations,
    LogSettings,
    PortName,
    ReaderSettings,
    Settings,
    StaffSettings,
    SupervisorSettings,
)
from deploy.agent_cli import add_agent_commands
from deploy.doctor import gather, report
from deploy.exposure import EXPOSE_FLAG, exposes_beyond_loopback, exposure_refusal
from deploy.log_cli import add_log_commands
from deploy.paths import ConsolePaths, console_paths, default_data_dir, prepare
from deploy.ports import free_loopback_port
from deploy.single_instance import ALREADY_SERVING, AlreadyServing, InstanceLocks, acquire, lock_path
from deploy.status_table import render_status_table
from deploy.status_watch import watch
from deploy.supervisor import ChildSpec, Supervisor
from deploy.tls import TlsFiles, ensure_certificates, export_ca, renew_certificates, ssl_context_for_clients
from deploy.trust import TrustError, install, invoking_user, uninstall
from eventlog.writable import is_permanent, write_probe

SIM_READERS = (("NHI Sim Reader 0", "hc-basic"), ("NHI Sim Reader 1", "hpc-doctor"))
"""The bench at start (sim-control.md): the default reader with hc-basic, the other with hpc-doctor."""
SIM_READER_BACKEND = "sim.virtual_reader:open_reader"
SIM_CONTROL_API = "sim.control_api:mount"
SIM_DC_MODULE = "sim.dc"
SIM_NHI_MODULE = "sim.nhi_reader_service"
SIM_NHI_CARDS = (("hc", "hc-basic"), ("hpc", "hpc-doctor"))
"""The bench NHI reader at start: the same two people as the bench's PC/SC readers, one in each slot."""
SIM_NHI_SAM_FILE = "bench-nhi-sam.sam"
"""Its physical SAM, which the DC simulator's prepare issues next to the bench's cloud SAM."""
DEFAULT_PORT = ApiSettings.port
SIM_DC_PORT_BAND = 0
"""The bench DC simulator's ports: the band just below the ephemeral range (deploy/ports.py)."""


def _ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def _binds(host: str | None, port: int) -> list[str]:
    if host is None:
        binds = [f"127.0.0.1:{port}"]
        if _ipv6_loopback_available():
            binds.append(f"[::1]:{port}")
        return binds
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]


def _accepts_connections(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    return ready


def _live_link(link: Path) -> Callable[[], bool]:
    """Ready once the link points at an existing pseudo-terminal: a link left by a killed reader dangles."""

    def ready() -> bool:
        return os.path.islink(link) and os.path.exists(link)

    return ready


def agent_endpoint_option(text: str) -> str:
    """argparse's type for `--agents` and `reader-agent --console`."""
    try:
        return check_agent_endpoint(text)
    except AgentLinkError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def serve_settings(args: argparse.Namespace, paths: ConsolePaths, tls: TlsFiles, dc_port: int) -> Settings:
    """The one settings object of this `serve`: its command line, resolved (the bench's data center and trust
    files, the installed trust files by default) and placed (the locations derived from the data dir).
    `dc_port`: the bench DC simulator's port (ignored without --sim)."""
    installed_trust, installed_issuer = paths.data_dir / "hca-trust.pem", paths.data_dir / "vhc-issuer.pem"
    data_center = DataCenterSettings(
        url=args.dc_url,
        ca=args.dc_ca,
        hca_trust=args.hca_trust or (installed_trust if installed_trust.exists() else None),
        vhc_issuer=args.vhc_issuer or (installed_issuer if installed_issuer.exists() else None),
    )
    bench = None
    if args.sim:
        data_center = DataCenterSettings(
            url=f"https://127.0.0.1:{dc_port}",
            ca=paths.sim_dc_dir / "ca.pem",
            hca_trust=args.hca_trust or paths.sim_dc_dir / "hca-trust.pem",  # the bench's test HCA root
            vhc_issuer=args.vhc_issuer or paths.sim_dc_dir / "vhc-issuer.pem",  # the bench's token issuer
        )
        bench = BenchSettings(
            readers=tuple(BenchReader(name, profile) for name, profile in SIM_READERS),
            default_reader=SIM_READERS[0][0],
            reader_backend=SIM_READER_BACKEND,
            control_api=SIM_CONTROL_API,
            cloud_sam=paths.sim_dc_dir / "bench-sam.sam",
            nhi_link=paths.sim_nhi_link,
            nhi_control=paths.sim_nhi_control,
            dc_port=dc_port,
        )
    return Settings(
        data_dir=paths.data_dir,
        locations=Locations(
            api_endpoint=paths.api_endpoint,
            worker_endpoint=paths.worker_endpoint,
            database=paths.database,
            pseudonym_key=paths.pseudonym_key,
            checkpoint_key=paths.checkpoint_key,
            archive_dir=paths.archive_dir,
            cloud_sam_dir=paths.cloud_sam_dir,
            tls_certificate=tls.server_cert,
            tls_key=tls.server_key,
            binds=tuple(_binds(args.host, args.port)),
            console_command=str(Path(sys.argv[0]).resolve()),
            agent_link_key=paths.agent_link_key,
        ),
        api=ApiSettings(
            host=args.host,
            port=args.port,
            processes=args.api_processes,
            threads=args.api_threads,
            gunicorn_timeout=args.gunicorn_timeout,
            request_timeout=args.request_timeout,
            stream_heartbeat_seconds=args.stream_heartbeat,
            max_streams=args.max_streams,
        ),
        readers=ReaderSettings(
            heartbeat_seconds=args.heartbeat,
            pcsc=args.pcsc,
            serial_ports=tuple(path for name, path in args.serial_port if name is None),
            port_names=tuple(PortName(name, path) for name, path in args.serial_port if name is not None),
            agents=args.agents,
        ),
        log=LogSettings(
            durability=args.durability,
            seal_max_rows=args.seal_max_rows,
            seal_max_age_days=args.seal_max_age_days,
            seal_check_interval=args.seal_check_interval,
        ),
        staff=StaffSettings(authentication_hours=args.hpc_auth_hours, mobile_hca_window_seconds=args.mobile_hca_window),
        data_center=data_center,
        supervisor=SupervisorSettings(restart_backoff_max=args.restart_backoff_max),
        bench=bench,
    )


def _restart_backoff(settings: SupervisorSettings) -> Callable[[], RestartBackoff]:
    if settings.restart_backoff_max is None:
        return RestartBackoff
    maximum = settings.restart_backoff_max
    return lambda: RestartBackoff(maximum=maximum)


def _web_api_port(dc_port: int) -> int:
    """The web-API twin's port: the DC simulator's band, never the DC's own port (not bound yet, so free too).
    Chosen once: a restarted DC simulator serves the twin where a HIS was told it is."""
    port = free_loopback_port(band=SIM_DC_PORT_BAND)
    while port == dc_port:
        port = free_loopback_port(band=SIM_DC_PORT_BAND)
    return port


def _bench_children(bench: BenchSettings, paths: ConsolePaths) -> list[ChildSpec]:
    """The bench's twin processes, started before the broker (which reads the files they prepare)."""
    # `sim.dc serve` prepares its state (TLS, the bench's SAM file, the trust files) before it listens, and
    # the supervisor starts the broker, which reads those files, only once it accepts connections.
    dc_argv = [
        sys.executable,
        "-m",
        SIM_DC_MODULE,
        "serve",
        "--state-dir",
        str(paths.sim_dc_dir),
        "--port",
        str(bench.dc_port),
        "--web-api-port",  # the NHI web-API twin, in the same process (docs/web-api-twin.md)
        str(_web_api_port(bench.dc_port)),
    ]
    # After the DC simulator's readiness gate, so its prepare has issued the reader's SAM file; before the
    # broker, which opens the reader's port once the link points at a live pseudo-terminal.
    nhi_argv = [
        sys.executable,
        "-m",
        SIM_NHI_MODULE,
        "--link",
        str(bench.nhi_link),
        "--sam-file",
        str(paths.sim_dc_dir / SIM_NHI_SAM_FILE),
        "--control",
        bench.nhi_control,
    ]
    for slot, profile in SIM_NHI_CARDS:
        nhi_argv += ["--card", f"{slot}={profile}"]
    return [
        ChildSpec("dc-simulator", lambda restarted: dc_argv, ready=_accepts_connections(bench.dc_port)),
        ChildSpec("nhi-reader", lambda restarted: nhi_argv, ready=_live_link(bench.nhi_link)),
    ]


def _instance_locks(args: argparse.Namespace) -> InstanceLocks | int:
    """The data dir's and the port's locks, or the exit status after printing the one line that says why not."""
    data_dir = args.data_dir.resolve()
    try:
        return acquire(data_dir, args.port)
    except AlreadyServing as refused:
        print(refused, file=sys.stderr)
        return ALREADY_SERVING
    except OSError as error:
        print(f"nhi-console: not starting: cannot lock {lock_path(data_dir)}: {error.strerror}", file=sys.stderr)
        return 1


def _data_dir_unwritable(data_dir: Path) -> int | None:
    """None if the data dir can be written; otherwise print the one line that says why and return the status.

    Tried (a file written, fsynced, removed), not judged from modes: a read-only mount defeats them. A
    read-only or forbidden dir exits with DATA_DIR_UNWRITABLE, which neither our supervisor nor the unit
    (RestartPreventExitStatus) restarts: waiting does not cure it. A full disk exits 1, so that systemd's slow
    restarts start the console by themselves once space is back.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        error = write_probe(data_dir)
    except OSError as failed:
        error = failed
    if error is None:
        return None
    print(
        f"nhi-console: not starting: cannot write the data dir {data_dir}: {error.strerror or error}", file=sys.stderr
    )
    return DATA_DIR_UNWRITABLE if is_permanent(error) else 1


def serve(args: argparse.Namespace) -> int:
    # A listening address other machines can reach, first: refused unless meant, before any file is touched.
    if exposes_beyond_loopback(args.host) and not args.expose_cards_to_network:
        print(exposure_refusal(args.host), file=sys.stderr)
        return EXPOSURE_NOT_CONFIRMED
    # Whether the data dir can be written at all, first: one line and an exit, not a traceback or a crash loop.
    # (The probe is a file of its own, named by our pid: it touches nothing of a console already serving.)
    unwritable = _data_dir_unwritable(args.data_dir.resolve())
    if unwritable is not None:
        return unwritable
    # Before anything else (deploy/single_instance.py): a second console must touch no file or socket of the first.
    locks = _instance_locks(args)
    if isinstance(locks, int):
        return locks
    paths = prepare(console_paths(args.data_dir, sim=args.sim))
    tls = ensure_certificates(paths.data_dir)
    dc_port = (args.sim_dc_port or free_loopback_port(band=SIM_DC_PORT_BAND)) if args.sim else 0
    settings = serve_settings(args, paths, tls, dc_port)
    if settings.readers.agents is not None:  # made here, once: a restarted broker only reads it
        ensure_key_pair(settings.locations.agent_link_key.parent, CONSOLE_KEY_NAME)
    # Written once, before any child starts; every child reads it (a restarted broker reads it again).
    settings.write(paths.settings_file)
    children = _bench_children(settings.bench, paths) if settings.bench is not None else []

    def broker_argv(restarted: bool) -> list[str]:
        # `--restarted`: the broker died and its workers live on; the new one waits for them to re-register.
        return [
            sys.executable,
            "-m",
            "broker",
            "--settings",
            str(paths.settings_file),
            *(["--restarted"] if restarted else []),
        ]

    def api_argv(restarted: bool) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--config", "python:deploy.gunicorn_conf", "api.app:get_app()"]

    children += [ChildSpec("broker", broker_argv), ChildSpec("api", api_argv, {SETTINGS_ENV: str(paths.settings_file)})]
    supervisor = Supervisor(children, restart_backoff=_restart_backoff(settings.supervisor))
    mode = " with the simulation bench" if settings.sim else ""
    logging.getLogger(__name__).info(
        "serving https://localhost:%d%s; data in %s; CA certificate %s",
        settings.api.port,
        mode,
        paths.data_dir,
        tls.ca_cert,
    )
    served = paths.served_file
    served.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "port": settings.api.port,
                "sim": settings.sim,
                "dcUrl": settings.data_center.url,
                "dcCa": str(settings.data_center.ca) if settings.data_center.ca else None,
                "serialPorts": list(settings.offered_device_paths()),
                "host": settings.api.host,
            }
        )
    )  # what `nhi-console doctor` checks: the port, the data center and the ports this console really uses
    try:
        return supervisor.run()
    finally:
        served.unlink(missing_ok=True)
        paths.settings_file.unlink(missing_ok=True)
        locks.release()


def status(args: argparse.Namespace) -> int:
    host = args.host or "localhost"
    context = ssl_context_for_clients(args.data_dir)
    if args.watch:
        try:
            return watch(host, args.port, context)
        except KeyboardInterrupt:
            return 0
    connection = http.client.HTTPSConnection(host, args.port, context=context, timeout=10)
    try:
        connection.request("GET", "/api/common/v1/Status")
        response = connection.getresponse()
        body = json.loads(response.read() or b"{}")
    except OSError as error:
        print(f"nhi-console is not answering on https://{host}:{args.port}: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200 or body.get("statusCode") != 0:
        print(f"nhi-console answered HTTP {response.status}: {body}", file=sys.stderr)
        return 1
    print(render_status_table(body["status"], f"https://{host}:{args.port}"))
    return 0


def cert(args: argparse.Namespace) -> int:
    if args.install or args.uninstall or args.renew:
        return trust_command(args)
    if args.export is None:
        files = ensure_certificates(args.data_dir)
        print(files.ca_cert)
        return 0
    written = export_ca(args.data_dir, args.export)
    print(f"CA certificate written to {written}")
    return 0


def trust_command(args: argparse.Namespace) -> int:
    """--install, --uninstall, --renew: the CA into (or out of) the system store and the user's NSS databases."""
    owner = invoking_user()
    system = args.system if args.system is not None else os.geteuid() == 0
    if system and os.geteuid() != 0:
        print("the system store needs root: sudo nhi-console cert ...  (or --no-system)", file=sys.stderr)
        return 1
    ca_file = TlsFiles.in_dir(args.data_dir).ca_cert
    try:
        if args.uninstall:
            results = uninstall(args.data_dir, owner, system=system)
        else:
            if args.renew:  # the old CA's key is gone: a new certificate is a new CA, installed where the old was
                renew_certificates(args.data_dir)
                _give_to_data_dir_owner(args.data_dir)
                print(
                    "a new certificate and a new CA: restart the console to serve them "
                    "(sudo systemctl restart nhi-console)"
                )
            results = install(args.data_dir, ca_file, owner, system=system)
    except TrustError as error:
        print(f"nhi-console cert: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(result.line())
    if not system:
        print("system store: left alone (--no-system, or not root)")
    return 0


def _give_to_data_dir_owner(data_dir: Path) -> None:
    """Run as root on a service's data dir, the renewed files must stay the service user's."""
    owner = data_dir.stat()
    if os.geteuid() == 0 and owner.st_uid != 0:
        files = TlsFiles.in_dir(data_dir)
        for path in (files.directory, files.ca_cert, files.server_cert, files.server_key):
            os.chown(path, owner.st_uid, owner.st_gid)


def doctor(args: argparse.Namespace) -> int:
    text, code = report(gather(args.data_dir, args.port, args.service_user))
    print(text)
    return code


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # noqa: SLF001 - argparse names no public type for it
"""What `add_subparsers` returns (its class is private to argparse)."""


class _SerialPortOption(argparse.Action):
    """`--serial-port [COMn=]PATH`, repeatable, as `(COMn or None, PATH)` pairs (contract/serial_port_names.py's
    `port_option`). A Windows name is given once and to one path: a second would be a second name for a port, or
    a port with two devices."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        try:
            name, path = port_option(str(values))
        except ValueError as error:
            parser.error(f"{option_string}: {error}")
        given: list[tuple[str | None, str]] = list(getattr(namespace, self.dest, None) or [])
        if name is not None:
            for other_name, other_path in given:
                if other_name == name or (other_name is not None and other_path == path):
                    parser.error(f"{option_string}: {other_name}={other_path} is given already")
        setattr(namespace, self.dest, [*given, (name, path)])


def _add_serve(commands: Subcommands, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """`nhi-console serve`: every setting of contract/settings.py that a person may set, defaulting there."""
    serve_parser = commands.add_parser("serve", help="run the console (broker, API, reader workers)")
    common(serve_parser)
    serve_parser.add_argument("--sim", action="store_true", help="with the simulation bench instead of real hardware")
    serve_parser.add_argument(
        "--pcsc",
        action=argparse.BooleanOptionalAction,
        default=ReaderSettings.pcsc,
        help="serve the readers pcscd lists (default: on, off with --sim)",
    )
    serve_parser.add_argument("--host", default=ApiSettings.host, help="address to bind (default: 127.0.0.1 and ::1)")
    serve_parser.add_argument(
        EXPOSE_FLAG,
        action="store_true",
        help="let --host be an address other machines can reach (they could then read the cards; see docs/security.md)",
    )
    serve_parser.add_argument("--port", type=int, default=ApiSettings.port)
    serve_parser.add_argument(
        "--durability",
        choices=DURABILITIES,
        default=LogSettings.durability,
        help="SQLite synchronous setting for the event log (see docs)",
    )
    serve_parser.add_argument(
        "--heartbeat",
        type=float,
        default=ReaderSettings.heartbeat_seconds,
        help="broker-worker heartbeat interval, seconds",
    )
    serve_parser.add_argument("--api-processes", type=int, default=ApiSettings.processes)
    serve_parser.add_argument(
        "--max-streams",
        type=int,
        default=ApiSettings.max_streams,
        help=f"live event streams per API process (default {ApiSettings.max_streams})",
    )
    serve_parser.add_argument(
        "--seal-max-rows",
        type=int,
        default=LogSettings.seal_max_rows,
        help="seal old log rows into an archive past this many live events or calls",
    )
    serve_parser.add_argument(
        "--seal-max-age-days",
        type=float,
        default=LogSettings.seal_max_age_days,
        help="seal log rows older than this into an archive",
    )
    # Knobs for tests and benchmarks, not in --help: settings like any other, written to the settings file.
    serve_parser.add_argument(
        "--seal-check-interval", type=float, default=LogSettings.seal_check_interval, help=argparse.SUPPRESS
    )
    serve_parser.add_argument("--api-threads", type=int, default=ApiSettings.threads, help=argparse.SUPPRESS)
    serve_parser.add_argument(
        "--gunicorn-timeout", type=int, default=ApiSettings.gunicorn_timeout, help=argparse.SUPPRESS
    )
    serve_parser.add_argument(
        "--request-timeout", type=float, default=ApiSettings.request_timeout, help=argparse.SUPPRESS
    )
    serve_parser.add_argument(
        "--stream-heartbeat", type=float, default=ApiSettings.stream_heartbeat_seconds, help=argparse.SUPPRESS
    )
    # The longest wait before restarting a broker or API that keeps dying: a crash-safety test kills the broker
    # dozens of times in a minute, which the production pace (up to 5 s) would stretch to minutes.
    serve_parser.add_argument(
        "--restart-backoff-max", type=float, default=SupervisorSettings.restart_backoff_max, help=argparse.SUPPRESS
    )
    serve_parser.add_argument(
        "--dc-url",
        default=DataCenterSettings.url,
        help="a data center speaking docs/dc-protocol.md (with --sim: the bench's simulator)",
    )
    serve_parser.add_argument(
        "--dc-ca", type=Path, default=DataCenterSettings.ca, help="CA certificate file for the DC's TLS"
    )
    serve_parser.add_argument(
        "--hca-trust",
        type=Path,
        default=DataCenterSettings.hca_trust,
        help="PEM bundle of trusted HCA roots and issuing CAs (default: <data dir>/hca-trust.pem)",
    )
    serve_parser.add_argument(
        "--vhc-issuer",
        type=Path,
        default=DataCenterSettings.vhc_issuer,
        help="PEM certificates of virtual health card token issuers (default: <data dir>/vhc-issuer.pem)",
    )
    serve_parser.add_argument(
        "--hpc-auth-hours",
        type=float,
        default=StaffSettings.authentication_hours,
        help="how long a verified staff card PIN or mobile HCA login lasts "
        f"(default {StaffSettings.authentication_hours:g})",
    )
    serve_parser.add_argument(
        "--mobile-hca-window",
        type=float,
        default=StaffSettings.mobile_hca_window_seconds,
        help=f"seconds a mobile HCA login time stays acceptable (default {StaffSettings.mobile_hca_window_seconds:g})",
    )
    serve_parser.add_argument(
        "--serial-port",
        action=_SerialPortOption,
        default=[],
        metavar="[COMn=]PATH",
        help="an NHI dedicated reader's port to offer besides the ones the machine lists (repeatable; e.g. a udev "
        "symlink); COMn=PATH gives it the Windows name a HIS calls it by (COM3=/dev/serial/by-id/...; with --sim "
        "the bench's reader is COM1 unless given here)",
    )
    serve_parser.add_argument(
        "--agents",
        default=ReaderSettings.agents,
        type=agent_endpoint_option,
        metavar="tcp://ADDRESS:PORT",
        help="listen there for reader agents on other machines (off by default; CurveZMQ, enrolled keys only: "
        "docs/remote-readers.md)",
    )
    serve_parser.add_argument(
        "--sim-dc-port", type=int, default=BenchSettings.dc_port, help="the DC simulator's port (default: any free)"
    )
    serve_parser.set_defaults(handler=serve)


def _add_status(commands: Subcommands, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """`nhi-console status [--watch]`."""
    status_parser = commands.add_parser("status", help="show the running console's state")
    common(status_parser)
    status_parser.add_argument("--host", default=None)
    status_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    status_parser.add_argument(
        "--watch", action="store_true", help="follow the console live (its event stream) until interrupted"
    )
    status_parser.set_defaults(handler=status)


def _add_cert(commands: Subcommands, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """`nhi-console cert`: export, install, uninstall, renew the local CA."""
    cert_parser = commands.add_parser("cert", help="the console's local CA certificate")
    common(cert_parser)
    cert_parser.add_argument("--export", type=Path, metavar="PATH", help="write the CA certificate to PATH")
    action = cert_parser.add_mutually_exclusive_group()
    action.add_argument(
        "--install",
        action="store_true",
        help="trust the CA: the system store (as root) and the invoking user's browsers' NSS databases",
    )
    action.add_argument("--uninstall", action="store_true", help="take the CA out of those stores again")
    action.add_argument(
        "--renew",
        action="store_true",
        help="a new certificate (so a new CA) now, installed in the stores as --install does",
    )
    cert_parser.add_argument(
        "--system",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the system store too (default: when run as root)",
    )
    cert_parser.set_defaults(handler=cert)


def _add_doctor(commands: Subcommands, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """`nhi-console doctor`."""
    doctor_parser = commands.add_parser("doctor", help="check what the console needs on this machine, with fixes")
    common(doctor_parser)
    doctor_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    doctor_parser.add_argument(
        "--service-user", default=None, help="the console's user (default: the data dir's owner)"
    )
    doctor_parser.set_defaults(handler=doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nhi-console", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", type=Path, default=default_data_dir())

    for add in (_add_serve, _add_status, _add_cert, _add_doctor):
        add(commands, common)
    add_log_commands(commands, common)
    add_agent_commands(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("NHI_CONSOLE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s supervisor %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
