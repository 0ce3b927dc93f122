"""Every setting of `nhi-console serve`, each default written once, in one object that every process reads.

Why one object: the supervisor used to build the broker's argv by hand, the broker parsed it back, the API got
eleven environment variables, and a default such as the 8 hours of a staff authentication was written in four
places. Now `serve` fills one `Settings` from its command line, writes it once (`to_json`) into its run dir
before it starts anything, and the broker (`python -m broker --settings PATH`) and the API (gunicorn, through
`NHI_CONSOLE_SETTINGS`) read that file (`from_json`). The parse is strict (an unknown key or a wrong type is a
`SettingsError` naming the key), so a hand-edited or stale file fails loudly at start, not halfway through a call.

The file holds no secret: locations of key files, never keys, PINs or tokens.

Standard library only: api/, broker/, deploy/ and workers/ all import it, and it imports none of them.
"""

from __future__ import annotations

import json
import os
import tempfile
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from contract.deadlines import REQUEST_SECONDS

SETTINGS_ENV = "NHI_CONSOLE_SETTINGS"
"""The API's one environment variable: the settings file's path (gunicorn loads the app by name, with no
argument of ours)."""
SETTINGS_FILE_NAME = "settings.json"
"""The file `serve` writes in its run dir."""
DURABILITIES = ("full", "normal")
"""SQLite's `synchronous` settings the event log may run with (docs/decisions.md, "Durability")."""


class SettingsError(ValueError):
    """A settings file that cannot be used: not JSON, an unknown key, a missing one, a wrong type or value."""


@dataclass(frozen=True)
class ApiSettings:
    """The HTTPS API: gunicorn's processes and the Falcon app in each."""

    host: str | None = None
    """The address to bind (`serve --host`); None: 127.0.0.1 and ::1. A host given is also a name `Host` may carry."""
    port: int = 5066
    processes: int = 2
    threads: int = 24
    """Threads per process: up to `max_streams` of them hold live event streams, the rest serve calls."""
    gunicorn_timeout: int = 30
    """Seconds without a heartbeat of a gunicorn worker's main loop before its arbiter kills it; a request waiting
    on a keypad waits in a thread and does not stop that heartbeat (tests/integration/test_long_keypad_wait.py)."""
    request_timeout: float = REQUEST_SECONDS
    """How long the API waits for the broker's answer to a command that is not a flow."""
    stream_heartbeat_seconds: float = 15.0
    """An idle event stream's comment line, so that proxies and browsers keep it open."""
    max_streams: int = 8
    """Live event streams per API process (each holds one of its threads); the next gets 503."""


@dataclass(frozen=True)
class PortName:
    """A Windows name given to a serial port (`serve --serial-port COM3=/dev/ttyUSB0`): `Initial`, `Name` and the
    status call the port by it (contract/serial_port_names.py)."""

    name: str
    """`COM1` to `COM256`, as Windows spells it."""
    device: str
    """The path the port's worker opens (a udev link such as `/dev/serial/by-id/...` is best: it survives replugs)."""


@dataclass(frozen=True)
class ReaderSettings:
    """The readers: how the broker watches their workers and which readers it serves."""

    heartbeat_seconds: float = 1.0
    """Broker-worker heartbeat interval; a worker missing 3 is restarted."""
    pcsc: bool | None = None
    """Serve the readers pcscd lists; None: yes, unless the bench is on (`Settings.serves_pcsc`)."""
    serial_ports: tuple[str, ...] = ()
    """NHI dedicated readers' ports to offer besides the ones the machine lists (a udev symlink)."""
    port_names: tuple[PortName, ...] = ()
    """Windows names given to ports, for HIS code written against the console on Windows (`COM3`)."""
    agents: str | None = None
    """`serve --agents tcp://ADDRESS:PORT`: where reader agents connect (CurveZMQ, enrolled keys only; issue 23);
    None: nowhere, the default."""


@dataclass(frozen=True)
class LogSettings:
    """The event log and the call record: how hard each commit is kept, and when old rows are sealed."""

    durability: str = "full"
    seal_max_rows: int = 1_000_000
    """Seal old rows into an archive segment past this many live events or calls."""
    seal_max_age_days: float = 365.0
    seal_check_interval: float = 60.0
    """Seconds between the broker's checks of the two limits above."""

    def __post_init__(self) -> None:
        if self.durability not in DURABILITIES:
            raise SettingsError(f"durability: expected one of {', '.join(DURABILITIES)}, got {self.durability!r}")

    @property
    def seal_max_age_seconds(self) -> float:
        return self.seal_max_age_days * 24 * 3600


@dataclass(frozen=True)
class StaffSettings:
    """The staff card and mobile HCA: how long an authentication lasts and how fresh a login must be."""

    authentication_hours: float = 8.0
    """How long a verified staff card PIN or mobile HCA login lasts: the 5.x HPCFASTAUTH's 8 hours."""
    mobile_hca_window_seconds: float = 300.0
    """How old a mobile HCA login may be (its loginDateTime)."""

    @property
    def authentication_seconds(self) -> float:
        return self.authentication_hours * 3600


@dataclass(frozen=True)
class DataCenterSettings:
    """The data center and the trust anchors the broker checks certificates and tokens against."""

    url: str | None = None
    """A DC speaking docs/dc-protocol.md (with the bench: its simulator); None: DC calls answer 1700."""
    ca: Path | None = None
    """CA certificate(s) the DC's TLS certificate chains to."""
    hca_trust: Path | None = None
    """PEM bundle of trusted HCA roots and issuing CAs; None: no staff certificate is trusted."""
    vhc_issuer: Path | None = None
    """PEM certificates of virtual health card token issuers; None: no token verifies."""


@dataclass(frozen=True)
class SupervisorSettings:
    """`serve`'s own: how it restarts a broker or API that keeps dying."""

    restart_backoff_max: float | None = None
    """The longest wait before a restart; None: the production pace of broker/runtime/backoff.py. A crash-safety
    test kills the broker dozens of times a minute and makes it short."""


@dataclass(frozen=True)
class BenchReader:
    """One of the bench's virtual readers at start, with the profile of the card in it."""

    name: str
    profile: str


@dataclass(frozen=True)
class BenchSettings:
    """The simulation bench (`serve --sim`): present only in that mode, and all wiring by name (no sim/ import)."""

    readers: tuple[BenchReader, ...]
    default_reader: str | None
    reader_backend: str
    """`module:factory` of the bench's in-process readers."""
    control_api: str
    """`module:function` mounting the bench's control API on the app."""
    cloud_sam: Path
    """The bench's cloud SAM file (issued by the DC simulator), imported at a fresh start."""
    nhi_link: Path
    """The link to the bench NHI reader's pseudo-terminal: a serial port the console offers."""
    nhi_control: str
    """The bench NHI reader's control socket, for the control API's NhiReader and Keypad routes."""
    dc_port: int = 0
    """The DC simulator's port; 0 on the command line: any free one (the file holds the one chosen)."""
    nhi_port_name: str = "COM1"
    """The Windows name the bench's NHI reader answers to, unless `--serial-port` gives that name to another port."""


@dataclass(frozen=True)
class Locations:
    """Where each process finds the others and its files: derived by `serve` from the data dir, `--host` and
    `--port`, and written so that no child derives them again (the IPC sockets may be moved to /tmp when the data
    dir is deep, and the IPv6 probe for the binds is done once)."""

    api_endpoint: str
    worker_endpoint: str
    database: Path
    pseudonym_key: Path
    """The key file's location; the key itself never leaves it."""
    checkpoint_key: Path
    """The checkpoint signing key's location (eventlog/checkpoint_key.py); the key itself never leaves it."""
    archive_dir: Path
    cloud_sam_dir: Path
    tls_certificate: Path
    tls_key: Path
    """The server key's location, for gunicorn; the key itself never leaves it."""
    binds: tuple[str, ...]
    """The API's listening addresses, `host:port` each."""
    console_command: str
    """The `nhi-console` executable, which the Version API reports as the console's location."""
    agent_link_key: Path
    """The console's key pair for the agent link (`secrets/agent-link.key_secret`; made and used only with
    `serve --agents`); the keys never leave it."""


@dataclass(frozen=True)
class Settings:
    """Everything `serve` was told (resolved: the bench's DC and trust files filled in) and where things are."""

    data_dir: Path
    locations: Locations
    api: ApiSettings = field(default_factory=ApiSettings)
    readers: ReaderSettings = field(default_factory=ReaderSettings)
    log: LogSettings = field(default_factory=LogSettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    data_center: DataCenterSettings = field(default_factory=DataCenterSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    bench: BenchSettings | None = None

    @property
    def sim(self) -> bool:
        return self.bench is not None

    @property
    def serves_pcsc(self) -> bool:
        return self.readers.pcsc if self.readers.pcsc is not None else not self.sim

    def offered_serial_ports(self) -> tuple[str, ...]:
        """The ports the console offers besides the machine's listing: the bench NHI reader's first, if any."""
        bench = (str(self.bench.nhi_link),) if self.bench is not None else ()
        return bench + self.readers.serial_ports

    def offered_port_names(self) -> tuple[PortName, ...]:
        """The Windows names of ports: `--serial-port COMn=PATH`'s, then the bench NHI reader's (`COM1`), if free."""
        given = self.readers.port_names
        if self.bench is None or any(port.name == self.bench.nhi_port_name for port in given):
            return given
        return (*given, PortName(self.bench.nhi_port_name, str(self.bench.nhi_link)))

    def offered_device_paths(self) -> tuple[str, ...]:
        """The paths of every port offered besides the listing, a Windows-named one's device included: what
        `nhi-console doctor` checks the service user may open."""
        devices = (*self.offered_serial_ports(), *(port.device for port in self.offered_port_names()))
        return tuple(dict.fromkeys(devices))

    def to_json(self) -> str:
        return json.dumps(_encode(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Settings:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise SettingsError(f"settings: not JSON: {error}") from error
        settings: Settings = _decode(cls, data, "settings")
        return settings

    def write(self, path: Path) -> None:
        """Atomically (a temporary file renamed over it): a broker restarting meanwhile reads all or nothing."""
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(self.to_json())
            os.chmod(temporary, 0o644)  # no secret in it; `doctor` run by an administrator may read it
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path) -> Settings:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise SettingsError(f"settings file {path}: {error.strerror or error}") from error
        return cls.from_json(text)


def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _encode(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path (string)"}


def _decode(kind: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as `kind`, or a SettingsError saying where and what was expected."""
    options = typing.get_args(kind)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        if value is None and type(None) in options:
            return None
        [inner] = [option for option in options if option is not type(None)]
        return _decode(inner, value, where)
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list):
            raise SettingsError(f"{where}: expected a list, got {_shown(value)}")
        return tuple(_decode(options[0], item, f"{where}[{index}]") for index, item in enumerate(value))
    if is_dataclass(kind):
        return _decode_dataclass(kind, value, where)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    if kind in (bool, int, str) and isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise SettingsError(f"{where}: expected {_NAMES.get(kind, kind)}, got {_shown(value)}")


def _decode_dataclass(kind: Any, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: expected an object, got {_shown(value)}")
    hints = typing.get_type_hints(kind)
    known = {item.name: item for item in fields(kind)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise SettingsError(f"{where}: unknown setting {', '.join(map(repr, unknown))}")
    arguments = {}
    for name, item in known.items():
        if name in value:
            arguments[name] = _decode(hints[name], value[name], f"{where}.{name}")
        elif item.default is MISSING and item.default_factory is MISSING:
            raise SettingsError(f"{where}: missing setting {name!r}")
    try:
        return kind(**arguments)
    except SettingsError as error:  # a value its section refuses (`__post_init__`), named by its full key
        raise SettingsError(f"{where}.{error}") from None


def _shown(value: Any) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)[:60]
