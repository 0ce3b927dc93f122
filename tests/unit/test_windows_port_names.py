"""Windows port names (issue 21): `serve --serial-port COM3=/dev/ttyUSB0`, and the bench's reader as `COM1`.

HIS code written against the official console on Windows sends `{"name": "COM3"}` to `Initial` and expects `COM3`
back in `name` and `readerName`. The rule (contract/serial_port_names.py) is pure; the broker's edge
(broker/devices.py) is tried on a pseudo-terminal and links to it; `Initial` runs through the real core with the
NHI reader's real back-end on an in-memory line.
"""

from __future__ import annotations

import os
import pty
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.credentials.sam_session import CloudSamStore
from broker.devices import Devices
from broker.domain.state import ConsoleState
from broker.runtime.config import broker_config
from broker.runtime.liveness import WorkerRegistry
from broker.runtime.worker_pool import ReaderSpec
from contract.serial_port_names import (
    NO_DEVICE_MESSAGE,
    listed_port_names,
    no_device_message,
    port_option,
    serial_port_key,
    windows_port_name,
)
from contract.settings import PortName, Settings
from contract.status_codes import StatusCode
from deploy.cli import build_parser
from sim.nhi_reader import VirtualNhiReader
from sim.profiles import make_card
from tests.unit.session_harness import NHI_SAM_ID, Harness, sam_file_bytes
from tests.unit.test_serial_port_names import CHARACTER, REGULAR, TTY
from tests.unit.test_settings import cli_settings
from tests.unit.test_worker_pool import FakeOs, make_pool
from tests.unit.virtual_nhi_link import LinkToVirtualReader
from workers.nhi_reader import NhiReader
from workers.serial_protocol import SLOT_HC

LISTED = {"COM3": "/dev/ttyUSB0", "/dev/ttyS0": "/dev/ttyS0", "/dev/ttyUSB0": "/dev/ttyUSB0"}
"""`--serial-port COM3=/dev/serial/by-id/usb-x` (resolving to ttyUSB0) on a machine whose pyserial lists ttyS0 and
ttyUSB0: the Windows names come first (broker/devices.py)."""


# --- the pure rule ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "windows"), [("COM1", "COM1"), ("com3", "COM3"), ("Com42", "COM42"), ("cOM256", "COM256")]
)
def test_a_windows_port_name_is_matched_as_windows_does_case_ignored(name: str, windows: str) -> None:
    assert windows_port_name(name) == windows


@pytest.mark.parametrize(
    "name", ["COM0", "COM257", "COM03", "COM", "COM3x", " COM3", "COM3 ", "COM３", "\\\\.\\COM3", "LPT1", "/dev/COM3"]
)
def test_anything_else_is_no_windows_port_name(name: str) -> None:
    assert windows_port_name(name) is None


def test_a_windows_name_is_its_ports_key_whatever_its_case_and_whatever_names_its_device() -> None:
    assert serial_port_key("COM3", LISTED, None, None) == "COM3"
    assert serial_port_key("com3", LISTED, None, None) == "COM3", "com3 is COM3, as on Windows"
    assert serial_port_key("/dev/ttyUSB0", LISTED, None, None) == "COM3", "the mapped device goes by its name"
    assert serial_port_key("/dev/serial/by-id/usb-x", LISTED, "/dev/ttyUSB0", CHARACTER, TTY) == "COM3"
    assert serial_port_key("/dev/./ttyUSB0", LISTED, "/dev/ttyUSB0", CHARACTER, TTY) == "COM3"


def test_paths_of_ports_with_no_windows_name_are_unchanged() -> None:
    assert serial_port_key("/dev/ttyS0", LISTED, None, None) == "/dev/ttyS0"
    assert serial_port_key("/dev/./ttyS0", LISTED, "/dev/ttyS0", CHARACTER, TTY) == "/dev/ttyS0"
    assert serial_port_key("/dev/ttyACM0", LISTED, "/dev/ttyACM0", CHARACTER, TTY) == "/dev/ttyACM0"
    assert serial_port_key("/dev/../etc/shadow", LISTED, "/etc/shadow", REGULAR, None) is None


def test_a_windows_name_no_port_was_given_is_no_port_and_is_never_looked_up() -> None:
    """Whatever the broker's working directory holds under that name: a Windows name is matched to the listing only."""
    assert serial_port_key("COM9", LISTED, "/dev/ttyS0", CHARACTER, TTY) is None
    assert serial_port_key("com9", {}, "/dev/pts/3", CHARACTER, TTY) is None
    assert serial_port_key("COM3", LISTED, "/dev/ttyS0", CHARACTER, TTY) == "COM3", "the listing's device, not a file's"


def test_a_windows_name_whose_device_is_not_there_is_still_its_port() -> None:
    """The adapter is unplugged: `Initial` tries the port anyway (1201 from its worker, not 1002)."""
    assert serial_port_key("COM3", {"COM3": None, "/dev/ttyS0": "/dev/ttyS0"}, None, None) == "COM3"


def test_name_lists_each_port_once_by_its_windows_name() -> None:
    assert listed_port_names(LISTED) == ["COM3", "/dev/ttyS0"]
    assert listed_port_names({"COM3": None, "/dev/ttyUSB0": None}) == ["COM3", "/dev/ttyUSB0"], "unresolved: apart"
    assert listed_port_names({"COM1": "/dev/pts/3", "COM2": "/dev/pts/3"}) == ["COM1"], "one device, one name"


@given(st.integers(min_value=1, max_value=256), st.sampled_from([str.upper, str.lower, str.title]))
def test_every_windows_name_maps_to_its_port_and_every_other_to_none(number: int, case: object) -> None:
    name = case(f"COM{number}")  # type: ignore[operator]  # one of str's case methods
    listed = {f"COM{number}": "/dev/ttyUSB0"}
    assert serial_port_key(name, listed, None, None) == f"COM{number}"
    assert serial_port_key(name, {}, None, None) is None


def test_an_unknown_windows_name_is_told_how_to_map_it() -> None:
    message = no_device_message("com9")
    assert "COM9" in message and "--serial-port COM9=/dev/ttyUSB0" in message and "ls -l /dev/serial/by-id/" in message


@pytest.mark.parametrize("name", [None, "/dev/../etc/shadow", "/dev/no-such-port", "COM0", "COM257", "901000000099"])
def test_any_other_unknown_name_keeps_the_one_message(name: str | None) -> None:
    assert no_device_message(name) == NO_DEVICE_MESSAGE == "no such device, or none that works"


# --- the option ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("COM3=/dev/ttyUSB0", ("COM3", "/dev/ttyUSB0")),
        ("com3=/dev/serial/by-id/usb-FTDI_x-if00-port0", ("COM3", "/dev/serial/by-id/usb-FTDI_x-if00-port0")),
        ("/dev/ttyUSB0", (None, "/dev/ttyUSB0")),
        (
            "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0=x",
            (None, "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0=x"),
        ),
    ],
)
def test_the_option_maps_a_windows_name_and_keeps_a_plain_path(text: str, parsed: tuple[str | None, str]) -> None:
    assert port_option(text) == parsed


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("COM3", "COM3=PATH"),
        ("COM3=ttyUSB0", "absolute"),
        ("COM3=", "absolute"),
        ("COM0=/dev/ttyUSB0", "COM1 to COM256"),
        ("COM257=/dev/ttyUSB0", "COM1 to COM256"),
    ],
)
def test_the_option_refuses_what_would_not_work_saying_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        port_option(text)


def test_serve_takes_both_forms_and_hands_the_names_to_the_broker(tmp_path: Path) -> None:
    settings = cli_settings(
        tmp_path / "data", "--serial-port", "/dev/ttyNHI", "--serial-port", "com7=/dev/serial/by-id/usb-x"
    )
    assert settings.readers.serial_ports == ("/dev/ttyNHI",), "the plain form works as before"
    assert settings.readers.port_names == (PortName("COM7", "/dev/serial/by-id/usb-x"),)
    assert Settings.from_json(settings.to_json()) == settings
    config = broker_config(settings, restarted=False)
    assert config.port_names == {"COM7": "/dev/serial/by-id/usb-x"}
    assert config.extra_serial_ports == ["/dev/ttyNHI"]
    assert settings.offered_device_paths() == ("/dev/ttyNHI", "/dev/serial/by-id/usb-x"), "what doctor checks"


def test_the_bench_reader_is_com1_unless_com1_is_given_to_another_port(tmp_path: Path) -> None:
    bench = cli_settings(tmp_path / "a", "--sim")
    assert bench.bench is not None
    assert broker_config(bench, restarted=False).port_names == {"COM1": str(bench.bench.nhi_link)}
    given = cli_settings(tmp_path / "b", "--sim", "--serial-port", "COM1=/dev/ttyUSB0")
    assert broker_config(given, restarted=False).port_names == {"COM1": "/dev/ttyUSB0"}


@pytest.mark.parametrize(
    "flags",
    [
        ["--serial-port", "COM3"],
        ["--serial-port", "COM0=/dev/ttyUSB0"],
        ["--serial-port", "COM3=/dev/ttyUSB0", "--serial-port", "com3=/dev/ttyUSB1"],
        ["--serial-port", "COM3=/dev/ttyUSB0", "--serial-port", "COM4=/dev/ttyUSB0"],
    ],
)
def test_serve_refuses_a_name_without_a_device_or_given_twice(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", *flags])
    assert exited.value.code == 2
    assert "--serial-port" in capsys.readouterr().err


# --- the file system's edge ------------------------------------------------------------------------------------


@pytest.fixture
def terminal() -> Iterator[str]:
    master, slave = pty.openpty()
    try:
        yield os.ttyname(slave)  # /dev/pts/N: a terminal, as a serial port is
    finally:
        os.close(master)
        os.close(slave)


def test_the_edge_keys_the_mapped_terminal_by_its_windows_name(terminal: str, tmp_path: Path) -> None:
    link = tmp_path / "usb-reader"  # as /dev/serial/by-id/... names an adapter
    link.symlink_to(terminal)
    found = Devices(CloudSamStore(None), lambda: [terminal], {"COM7": str(link)})
    state = ConsoleState()
    assert found.names(state) == ["COM7"], "listed once, by its Windows name"
    for alias in ("COM7", "com7", terminal, str(link), f"{os.path.dirname(terminal)}/./{os.path.basename(terminal)}"):
        assert found.serial_port(state, alias) == "COM7", alias
    assert found.device_path("COM7") == str(link), "what its worker opens"
    assert found.device_path(terminal) is None
    assert found.serial_port(state, "COM9") is None


def test_the_edge_without_a_mapping_keeps_paths(terminal: str) -> None:
    found = Devices(CloudSamStore(None), lambda: [terminal])
    assert found.names(ConsoleState()) == [terminal]
    assert found.serial_port(ConsoleState(), terminal) == terminal
    assert found.serial_port(ConsoleState(), "COM1") is None


def test_a_mapping_to_a_path_that_is_not_there_is_still_listed(tmp_path: Path) -> None:
    found = Devices(CloudSamStore(None), list, {"COM3": str(tmp_path / "unplugged")})
    assert found.names(ConsoleState()) == ["COM3"]
    assert found.serial_port(ConsoleState(), "COM3") == "COM3"
    assert stat.S_ISDIR(os.stat(tmp_path).st_mode), "nothing was made there"
    assert list(tmp_path.iterdir()) == []


def test_the_worker_of_a_windows_named_port_is_told_the_device_to_open() -> None:
    fake_os = FakeOs()
    pool = make_pool(fake_os, WorkerRegistry(1.0))
    named = ReaderSpec("COM7", "workers.nhi_reader:open_reader", ("COM7#hpc",), device="/dev/serial/by-id/usb-x")
    plain = ReaderSpec("/dev/ttyS0", "workers.nhi_reader:open_reader", ("/dev/ttyS0#hpc",))
    pool.reconcile({"COM7": named, "/dev/ttyS0": plain}, 0.0)
    [com7] = fake_os.running_for("COM7")
    assert com7.argv[com7.argv.index("--reader") + 1] == "COM7"
    assert com7.argv[com7.argv.index("--device") + 1] == "/dev/serial/by-id/usb-x"
    [ttys0] = fake_os.running_for("/dev/ttyS0")
    assert "--device" not in ttys0.argv, "a port named by its path opens its name, as before"


# --- Initial, through the core -------------------------------------------------------------------------------


class RecordingLine(LinkToVirtualReader):
    """The in-memory line, noting which path the worker's back-end opened."""

    def __init__(self, device: VirtualNhiReader) -> None:
        super().__init__(device)
        self.opened: list[str] = []

    def open(self, path: str) -> None:
        self.opened.append(path)
        super().open(path)


@pytest.fixture
def reader() -> Iterator[VirtualNhiReader]:
    device = VirtualNhiReader(sam_file_bytes(sam_id=NHI_SAM_ID), pending_interval=0.2)
    device.insert(SLOT_HC, make_card("hc-basic"))
    yield device
    device.shutdown()


def test_initial_by_windows_name_and_by_path_opens_one_port_named_com1(
    reader: VirtualNhiReader, tmp_path: Path
) -> None:
    link = tmp_path / "sim-nhi-reader" / "ttyNHI0"
    link.parent.mkdir()
    link.symlink_to("/dev/null")  # the line itself is in memory; the link resolves on the real disk
    bench = Harness(serial_ports=(str(link),), port_names={"COM1": str(link)})
    line = RecordingLine(reader)
    bench.nhi = NhiReader("COM1", device=str(link), link=line)  # type: ignore[arg-type]  # the in-memory line
    bench.nhi_cards = dict.fromkeys(bench.nhi.slot_readers())
    assert set(bench.nhi_cards) == {"COM1", "COM1#hpc"}, "the slots go by the Windows name"
    bench.report_nhi()
    assert bench.command("ListDevices")[1]["names"] == ["901000000047", "COM1"]
    for name in ("com1", "COM1", str(link)):
        assert bench.command("Initialize", {"name": name}) == (0, {}), name
        status = bench.command("GetStatus")[1]["status"]
        assert (status["name"], status["readerName"], status["sam"]["type"]) == ("COM1", "COM1", 2)
        assert bench.core.serial_devices() == {"COM1"}
        assert bench.core.serial_device_path("COM1") == str(link)
        assert bench.command("Finalize") == (0, {})
    assert set(line.opened) == {str(link)}, "the worker's back-end opened the device, not a file named COM1"
    assert {reader for reader, _ in bench.card_commands} <= {"COM1", "COM1#hpc"}


def test_initial_with_an_unknown_windows_name_is_1002_with_the_mapping(tmp_path: Path) -> None:
    bench = Harness(port_names={"COM1": str(tmp_path / "x")})
    code, body = bench.command("Initialize", {"name": "COM9"})
    assert code == StatusCode.NO_DEVICE
    assert "--serial-port COM9=/dev/ttyUSB0" in body["message"]
    assert bench.command("Initialize", {"name": "/dev/../etc/shadow"}) == (
        int(StatusCode.NO_DEVICE),
        {"message": NO_DEVICE_MESSAGE},
    )
    assert bench.card_commands == [] and bench.core.serial_devices() == set()
