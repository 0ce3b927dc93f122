"""The one settings object (contract/settings.py): every default in one place, a strict file, no secret in it.

`serve` writes the settings once; the broker and the API read them. These tests pin that the command line's
defaults, the broker's config defaults and the core's constants are the settings' defaults (not copies that could
drift), that the file round-trips and refuses what it does not know, and that the children build from it exactly
what the supervisor used to pass them as arguments and environment variables.
"""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import typing
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from broker.core import HPC_AUTHENTICATION_SECONDS, MOBILE_HCA_WINDOW_SECONDS
from broker.runtime.config import ADOPT_GRACE_HEARTBEATS, PCSC_BACKEND, BrokerConfig, broker_config
from contract.settings import (
    SETTINGS_ENV,
    ApiSettings,
    BenchReader,
    BenchSettings,
    DataCenterSettings,
    Locations,
    LogSettings,
    ReaderSettings,
    Settings,
    SettingsError,
    StaffSettings,
    SupervisorSettings,
)
from deploy.cli import DEFAULT_PORT, SIM_CONTROL_API, SIM_READER_BACKEND, build_parser, serve_settings
from deploy.paths import console_paths, prepare
from deploy.tls import ensure_certificates

HOST = {"Host": "localhost:5066"}


def cli_settings(data_dir: Path, *flags: str, dc_port: int = 40123) -> Settings:
    """What `nhi-console serve --data-dir DATA_DIR FLAGS...` would write, without starting anything."""
    args = build_parser().parse_args(["serve", "--data-dir", str(data_dir), *flags])
    paths = console_paths(args.data_dir, sim=args.sim)
    prepare(paths)
    return serve_settings(args, paths, ensure_certificates(paths.data_dir), dc_port)


# -- every default in one place -------------------------------------------------------------------------------


def test_the_command_line_defaults_are_the_settings_defaults(tmp_path: Path) -> None:
    settings = cli_settings(tmp_path / "data")
    assert settings.api == ApiSettings()
    assert settings.readers == ReaderSettings()
    assert settings.log == LogSettings()
    assert settings.staff == StaffSettings()
    assert settings.data_center == DataCenterSettings()  # nothing installed in the data dir
    assert settings.supervisor == SupervisorSettings()
    assert settings.bench is None
    assert DEFAULT_PORT == ApiSettings().port == 5066


def test_the_values_the_issue_names_are_written_once_and_unchanged() -> None:
    """The 8 hours and the 300 s, as the command line, the broker's config and the core see them."""
    assert StaffSettings().authentication_hours == 8.0
    assert HPC_AUTHENTICATION_SECONDS == BrokerConfig("", "", Path()).hpc_authentication_seconds == 8 * 3600.0
    assert MOBILE_HCA_WINDOW_SECONDS == BrokerConfig("", "", Path()).mobile_hca_window_seconds == 300.0
    parsed = build_parser().parse_args(["serve"])
    assert (parsed.hpc_auth_hours, parsed.mobile_hca_window) == (8.0, 300.0)


def test_the_broker_config_defaults_are_the_settings_defaults() -> None:
    config = BrokerConfig("", "", Path())
    log, readers = LogSettings(), ReaderSettings()
    assert (config.durability, config.heartbeat_interval) == (log.durability, readers.heartbeat_seconds)
    assert (config.seal_max_live_rows, config.seal_max_age_seconds, config.seal_check_interval) == (
        1_000_000,
        365 * 24 * 3600.0,
        60.0,
    )
    assert config.seal_max_age_seconds == log.seal_max_age_seconds


def test_the_default_settings_of_every_section_are_what_serve_always_had() -> None:
    api = ApiSettings()
    assert (api.host, api.port, api.processes, api.threads, api.gunicorn_timeout) == (None, 5066, 2, 24, 30)
    assert (api.request_timeout, api.stream_heartbeat_seconds, api.max_streams) == (5.0, 15.0, 8)
    assert ReaderSettings() == ReaderSettings(heartbeat_seconds=1.0, pcsc=None, serial_ports=())
    assert LogSettings() == LogSettings("full", 1_000_000, 365.0, 60.0)
    assert SupervisorSettings().restart_backoff_max is None  # the backoff's own production pace


# -- the file ---------------------------------------------------------------------------------------------------


def test_a_sim_settings_file_round_trips(tmp_path: Path) -> None:
    settings = cli_settings(tmp_path / "data", "--sim", "--pcsc", "--serial-port", "/dev/ttyNHI", "--port", "6001")
    assert Settings.from_json(settings.to_json()) == settings
    path = tmp_path / "settings.json"
    settings.write(path)
    assert Settings.read(path) == settings
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "settings.json"]  # no temporary file left


def test_a_settings_object_with_every_field_set_round_trips(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        locations=Locations(
            "ipc://a",
            "ipc://w",
            tmp_path / "c.db",
            tmp_path / "k",
            tmp_path / "ck",
            tmp_path / "arch",
            tmp_path / "sams",
            tmp_path / "s.pem",
            tmp_path / "s-key.pem",
            ("127.0.0.1:1",),
            "/bin/x",
            tmp_path / "agent-link.key_secret",
        ),
        api=ApiSettings("::1", 1, 3, 4, 5, 6.5, 7.5, 9),
        readers=ReaderSettings(0.25, False, ("/dev/a", "/dev/b"), agents="tcp://*:5067"),
        log=LogSettings("normal", 20, 1.5, 0.5),
        staff=StaffSettings(1.5, 60.0),
        data_center=DataCenterSettings("https://dc.example", tmp_path / "ca", tmp_path / "hca", tmp_path / "vhc"),
        supervisor=SupervisorSettings(0.2),
        bench=BenchSettings(
            (BenchReader("R", "hc-basic"),), None, "m:f", "m:g", tmp_path / "s.sam", tmp_path / "tty", "ipc://n", 7
        ),
    )
    assert Settings.from_json(settings.to_json()) == settings


def _minimal() -> dict[str, Any]:
    return json.loads(
        Settings(
            Path("/d"),
            Locations(
                "a",
                "w",
                Path("/d/c"),
                Path("/d/k"),
                Path("/d/ck"),
                Path("/d/a"),
                Path("/d/s"),
                Path("/d/t"),
                Path("/d/u"),
                (),
                "x",
                Path("/d/l"),
            ),
        ).to_json()
    )


def test_missing_sections_take_their_defaults_and_integers_are_numbers() -> None:
    data = _minimal()
    for section in ("api", "readers", "log", "staff", "data_center", "supervisor", "bench"):
        del data[section]
    data["readers"] = {"heartbeat_seconds": 2}
    settings = Settings.from_json(json.dumps(data))
    assert settings.api == ApiSettings() and settings.staff == StaffSettings() and settings.bench is None
    assert settings.readers.heartbeat_seconds == 2.0 and isinstance(settings.readers.heartbeat_seconds, float)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["api"].update(port="5066"), 'settings.api.port: expected an integer, got "5066"'),
        (lambda d: d["api"].update(port=True), "settings.api.port: expected an integer, got true"),
        (lambda d: d["api"].update(port=5066.0), "settings.api.port: expected an integer, got 5066.0"),
        (
            lambda d: d["staff"].update(authentication_hours="8"),
            "settings.staff.authentication_hours: expected a number",
        ),
        (lambda d: d["readers"].update(pcsc=1), "settings.readers.pcsc: expected true or false, got 1"),
        (lambda d: d["readers"].update(serial_ports="/dev/x"), "settings.readers.serial_ports: expected a list"),
        (lambda d: d["readers"].update(serial_ports=[3]), "settings.readers.serial_ports[0]: expected a string"),
        (lambda d: d["locations"].update(database=None), "settings.locations.database: expected a path (string)"),
        (lambda d: d.update(api=[]), "settings.api: expected an object, got []"),
        (lambda d: d["log"].update(durability="off"), "settings.log.durability: expected one of full, normal"),
        (lambda d: d.update(colour="blue"), "settings: unknown setting 'colour'"),
        (lambda d: d["staff"].update(hpc_auth_hours=8), "settings.staff: unknown setting 'hpc_auth_hours'"),
        (lambda d: d.pop("locations"), "settings: missing setting 'locations'"),
        (lambda d: d["locations"].pop("api_endpoint"), "settings.locations: missing setting 'api_endpoint'"),
    ],
)
def test_a_wrong_file_is_a_clear_error(change: Any, message: str) -> None:
    data = _minimal()
    change(data)
    with pytest.raises(SettingsError) as raised:
        Settings.from_json(json.dumps(data))
    assert str(raised.value).startswith(message), str(raised.value)


def test_a_file_that_is_not_json_or_not_there_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="settings: not JSON"):
        Settings.from_json("{port: 5066}")
    with pytest.raises(SettingsError, match="No such file"):
        Settings.read(tmp_path / "absent.json")


# -- no secret ----------------------------------------------------------------------------------------------------


def _fields(kind: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for item in dataclasses.fields(kind):
        hint = typing.get_type_hints(kind)[item.name]
        inner = [option for option in typing.get_args(hint) if option is not type(None)] or [hint]
        if dataclasses.is_dataclass(inner[0]):
            found += _fields(inner[0], f"{prefix}{item.name}.")
        else:
            found.append((f"{prefix}{item.name}", hint))
    return found


def test_no_setting_can_hold_a_secret() -> None:
    """A field named for a key, PIN, PUK, token or password is a file's location, never the thing itself."""
    secretive = [
        (name, hint)
        for name, hint in _fields(Settings)
        if any(word in name.split(".")[-1] for word in ("key", "pin", "puk", "token", "secret", "password"))
    ]
    assert secretive, "the locations of the key files are expected here"
    assert all(hint is Path for _, hint in secretive), secretive


def test_the_written_file_holds_no_key(tmp_path: Path) -> None:
    settings = cli_settings(tmp_path / "data", "--sim")
    key = settings.locations.pseudonym_key
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(bytes(range(32)))
    path = console_paths(tmp_path / "data").settings_file
    settings.write(path)
    text = path.read_text()
    assert "PRIVATE KEY" not in text and "BEGIN" not in text
    assert bytes(range(32)).hex() not in text
    server_key = settings.locations.tls_key.read_text()
    assert server_key.strip().splitlines()[1] not in text  # the TLS key's first line of base64
    assert str(settings.locations.tls_key) in text  # its location is, for gunicorn


# -- what the children build from it --------------------------------------------------------------------------------


def test_the_broker_config_is_what_the_argv_used_to_say(tmp_path: Path) -> None:
    settings = cli_settings(
        tmp_path / "data",
        "--sim",
        "--heartbeat",
        "0.4",
        "--serial-port",
        "/dev/ttyNHI",
        "--seal-max-rows",
        "20",
        "--seal-max-age-days",
        "2",
        "--seal-check-interval",
        "0.5",
        "--hpc-auth-hours",
        "0.5",
        "--mobile-hca-window",
        "30",
        "--durability",
        "normal",
    )
    paths = console_paths(tmp_path / "data", sim=True)
    first, again = broker_config(settings, restarted=False), broker_config(settings, restarted=True)
    assert (first.adopt_grace, again.adopt_grace) == (0.0, 0.4 * ADOPT_GRACE_HEARTBEATS)
    assert (first.api_endpoint, first.worker_endpoint, first.database) == (
        paths.api_endpoint,
        paths.worker_endpoint,
        paths.database,
    )
    assert (first.pseudonym_key, first.archive_dir, first.cloud_sam_dir) == (
        paths.pseudonym_key,
        paths.archive_dir,
        paths.cloud_sam_dir,
    )
    assert (first.durability, first.heartbeat_interval) == ("normal", 0.4)
    assert (first.seal_max_live_rows, first.seal_max_age_seconds, first.seal_check_interval) == (20, 2 * 86400.0, 0.5)
    assert (first.hpc_authentication_seconds, first.mobile_hca_window_seconds) == (1800.0, 30.0)
    assert first.pcsc_backend is None and first.sim_backend == SIM_READER_BACKEND  # --sim: no pcscd by default
    assert first.sim_start is not None and first.sim_start.default_reader == "NHI Sim Reader 0"
    assert first.sim_start.cards == {"NHI Sim Reader 0": "hc-basic", "NHI Sim Reader 1": "hpc-doctor"}
    assert first.sim_start.cloud_sam == paths.sim_dc_dir / "bench-sam.sam"
    assert (first.dc_url, first.dc_ca) == ("https://127.0.0.1:40123", paths.sim_dc_dir / "ca.pem")
    assert (first.hca_trust, first.vhc_issuer) == (
        paths.sim_dc_dir / "hca-trust.pem",
        paths.sim_dc_dir / "vhc-issuer.pem",
    )
    assert first.extra_serial_ports == [str(paths.sim_nhi_link), "/dev/ttyNHI"]


def test_without_the_bench_pcscd_is_served_and_installed_trust_files_are_used(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hca-trust.pem").write_text("")
    config = broker_config(
        cli_settings(data, "--dc-url", "https://dc.example", "--dc-ca", "/etc/dc.pem"), restarted=False
    )
    assert config.pcsc_backend == PCSC_BACKEND and config.sim_backend is None and config.sim_start is None
    assert (config.dc_url, config.dc_ca) == ("https://dc.example", Path("/etc/dc.pem"))
    assert (config.hca_trust, config.vhc_issuer) == (data.resolve() / "hca-trust.pem", None)
    assert broker_config(cli_settings(data, "--no-pcsc"), restarted=False).pcsc_backend is None


def test_gunicorn_takes_its_settings_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = cli_settings(
        tmp_path / "data",
        "--api-processes",
        "3",
        "--api-threads",
        "5",
        "--gunicorn-timeout",
        "4",
        "--host",
        "127.0.0.1",
        "--port",
        "6001",
    )
    settings.write(tmp_path / "settings.json")
    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path / "settings.json"))
    conf = runpy.run_path(str(Path(__file__).parents[2] / "deploy" / "gunicorn_conf.py"))
    assert (conf["bind"], conf["workers"], conf["threads"], conf["timeout"]) == (["127.0.0.1:6001"], 3, 5, 4)
    assert (conf["certfile"], conf["keyfile"]) == (
        str(settings.locations.tls_certificate),
        str(settings.locations.tls_key),
    )


def test_the_app_takes_its_settings_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.app import get_app

    settings = cli_settings(tmp_path / "data", "--sim")
    settings.write(tmp_path / "settings.json")
    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path / "settings.json"))
    for name in ("NHI_CONSOLE_SIM_DC_URL", "NHI_CONSOLE_SIM_DC_CA", "NHI_CONSOLE_SIM_NHI_CONTROL"):
        monkeypatch.delenv(name, raising=False)
    client = falcon.testing.TestClient(get_app())
    document = client.simulate_get("/api/swagger/v1/swagger.json", headers=HOST).json
    assert "/api/sim/v1/Profiles" in document["paths"]  # the bench's control API, mounted by name
    assert settings.bench is not None
    assert os.environ["NHI_CONSOLE_SIM_NHI_CONTROL"] == settings.bench.nhi_control
    assert os.environ["NHI_CONSOLE_SIM_DC_URL"] == "https://127.0.0.1:40123"
    assert settings.bench.control_api == SIM_CONTROL_API


def test_the_restart_backoff_is_the_production_pace_unless_a_test_shortens_it() -> None:
    from broker.runtime.backoff import RestartBackoff
    from deploy.cli import _restart_backoff

    assert _restart_backoff(SupervisorSettings())().maximum == RestartBackoff().maximum
    assert _restart_backoff(SupervisorSettings(restart_backoff_max=0.2))().maximum == 0.2
