"""Which names `Initial` opens as a serial port, and the one name a port goes by (issue 20, hostile callers).

The rule (contract/serial_port_names.py) is pure: it is given a name's resolved path, `os.stat` of it and the
sysfs class of its device number. The broker's edge (broker/devices.py) reads those from the real file system,
tried here on a temporary directory, on a pseudo-terminal and on /dev/null (a character device, but no terminal);
the flow (`Initial`) runs through the real core with the bench's NHI reader back-end.
"""

from __future__ import annotations

import os
import pty
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.credentials.sam_session import CloudSamStore
from broker.devices import Devices
from broker.domain.state import ConsoleState
from broker.flows.runner import Outcome
from broker.handlers import StartFlow
from contract.protocol import Request
from contract.serial_port_names import is_device_node, serial_port_key
from contract.status_codes import StatusCode
from sim.nhi_reader import VirtualNhiReader
from sim.profiles import make_card
from tests.unit.session_harness import NHI_SAM_ID, Harness, sam_file_bytes
from tests.unit.virtual_nhi_link import LinkToVirtualReader
from workers.serial_protocol import SLOT_HC


def _character(major: int, minor: int) -> os.stat_result:
    return os.stat_result((stat.S_IFCHR | 0o666, 0, 0, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": os.makedev(major, minor)})


CHARACTER = _character(4, 64)
"""A serial port's device (ttyS0's number); sysfs files it under `tty`."""
PTY_SLAVE = _character(136, 3)
"""A pseudo-terminal's slave (/dev/pts/3): a terminal sysfs does not list (its class: None)."""
TTY = "tty"
BLOCK = os.stat_result((stat.S_IFBLK | 0o660, 0, 0, 1, 0, 0, 0, 0, 0, 0))
REGULAR = os.stat_result((stat.S_IFREG | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0))
DIRECTORY = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 1, 0, 0, 0, 0, 0, 0))
FIFO = os.stat_result((stat.S_IFIFO | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0))
BENCH_LINK = "/var/lib/nhi-console/sim-nhi-reader/ttyNHI0"
LISTED = {"/dev/ttyS0": "/dev/ttyS0", BENCH_LINK: "/dev/pts/3"}
NOT_A_DEVICE = (int(StatusCode.NO_DEVICE), {"message": "no such device, or none that works"})


# --- the pure rule ---------------------------------------------------------------------------------------


def test_a_character_device_under_dev_is_a_port_by_its_resolved_path() -> None:
    assert serial_port_key("/dev/./ttyUSB0", LISTED, "/dev/ttyUSB0", CHARACTER, TTY) == "/dev/ttyUSB0"
    assert serial_port_key("/dev/serial/by-id/usb-x", LISTED, "/dev/ttyUSB0", CHARACTER, TTY) == "/dev/ttyUSB0"
    assert serial_port_key("/dev/pts/7", {}, "/dev/pts/7", PTY_SLAVE, None) == "/dev/pts/7"


@pytest.mark.parametrize(
    ("resolved", "status", "device_class"),
    [
        ("/dev/null", _character(1, 3), "mem"),
        ("/dev/mem", _character(1, 1), "mem"),
        ("/dev/kmsg", _character(1, 11), "mem"),
        ("/dev/watchdog", _character(10, 130), "misc"),  # opening it arms a reboot
        ("/dev/tty", _character(5, 0), TTY),  # whoever's terminal the console was started from
        ("/dev/console", _character(5, 1), TTY),
        ("/dev/ptmx", _character(5, 2), TTY),
        ("/dev/tty1", _character(4, 1), TTY),  # a virtual console's screen
        ("/dev/ttyS0", CHARACTER, None),  # sysfs did not say: not known to be a terminal
        ("/dev/ttyS0", CHARACTER, "misc"),
    ],
)
def test_a_character_device_that_is_no_serial_terminal_is_no_port(
    resolved: str, status: os.stat_result, device_class: str | None
) -> None:
    assert serial_port_key(resolved, {}, resolved, status, device_class) is None
    assert serial_port_key(f"/dev/.{resolved[4:]}", {}, resolved, status, device_class) is None


@pytest.mark.parametrize(
    ("name", "resolved", "status"),
    [
        ("/dev/../etc/shadow", "/etc/shadow", REGULAR),
        ("/dev/../etc/shadow", "/etc/shadow", None),  # unreadable: the same answer as a readable one
        ("/dev/../tmp/x", "/tmp/x", REGULAR),
        ("/dev/../tmp/missing", "/tmp/missing", None),
        ("/tmp/link-to-a-file", "/tmp/file", REGULAR),
        ("/dev/shm/x", "/dev/shm/x", REGULAR),  # under /dev, but a file
        ("/dev/sda", "/dev/sda", BLOCK),
        ("/dev/pts", "/dev/pts", DIRECTORY),
        ("/dev/fifo", "/dev/fifo", FIFO),
        ("/dev", "/dev", DIRECTORY),
        ("/devices/ttyS0", "/devices/ttyS0", CHARACTER),  # a character device, not under /dev
        ("/tmp/made-with-mknod", "/tmp/made-with-mknod", CHARACTER),
        ("/dev/../dev/ttyS9", "/dev/../dev/ttyS9", CHARACTER),  # not resolved: refused, never trusted
        ("dev/null", "/dev/null", CHARACTER),  # relative: it would depend on the broker's working directory
        ("loop://", "/loop:", None),  # a pyserial URL is not a path
        ("/dev/ttyS9", None, None),  # could not be resolved (a NUL byte, a symlink loop)
    ],
)
def test_anything_else_is_no_port(name: str, resolved: str | None, status: os.stat_result | None) -> None:
    assert serial_port_key(name, LISTED, resolved, status, TTY) is None


def test_a_listed_port_is_its_own_name_and_its_aliases_go_by_it() -> None:
    assert serial_port_key(BENCH_LINK, LISTED, None, None) == BENCH_LINK, "listed: no look-up needed"
    assert serial_port_key("/dev/pts/3", LISTED, "/dev/pts/3", CHARACTER, TTY) == BENCH_LINK
    assert serial_port_key("/var/lib/nhi-console/./sim-nhi-reader/ttyNHI0", LISTED, "/dev/pts/3", CHARACTER, TTY) == (
        BENCH_LINK
    )
    assert serial_port_key("/dev/./ttyS0", LISTED, "/dev/ttyS0", CHARACTER, TTY) == "/dev/ttyS0"
    assert serial_port_key("/dev/pts/4", LISTED, "/dev/pts/4", CHARACTER, TTY) == "/dev/pts/4", "another pty"


def test_a_listed_port_that_could_not_be_resolved_is_no_one_elses_name() -> None:
    assert serial_port_key("/dev/pts/3", {BENCH_LINK: None}, "/dev/pts/3", CHARACTER, TTY) == "/dev/pts/3"


def test_a_file_is_no_alias_even_of_a_listed_port() -> None:
    """A port configured by a path that is not a device (a pyserial URL, a mistake) is reached by its own name
    only: a caller's path resolving to the same file is still a file."""
    assert serial_port_key("/dev/../srv/port", {"/srv/port": "/srv/port"}, "/srv/port", REGULAR) is None


@given(
    name=st.text(alphabet="/.devtysSnul0x", max_size=24),
    resolved=st.one_of(st.none(), st.text(alphabet="/.devtysSnul0x", max_size=24)),
    mode=st.sampled_from([None, CHARACTER, PTY_SLAVE, _character(1, 3), BLOCK, REGULAR, DIRECTORY, FIFO]),
    device_class=st.sampled_from([None, TTY, "mem"]),
)
def test_every_port_is_listed_or_a_terminal_under_dev(
    name: str, resolved: str | None, mode: os.stat_result | None, device_class: str | None
) -> None:
    key = serial_port_key(name, LISTED, resolved, mode, device_class)
    if key is not None and key != name:  # an alias: of a listed port's device, or of a terminal under /dev
        assert resolved is not None and mode is not None and stat.S_ISCHR(mode.st_mode)
        assert LISTED.get(key) == resolved or (key == resolved and is_device_node(resolved, mode, device_class))
    assert key is None or key in LISTED or key == resolved


# --- the file system's edge --------------------------------------------------------------------------------


@pytest.fixture
def devices(tmp_path: Path) -> Iterator[tuple[Devices, Path]]:
    link = tmp_path / "ttyNHI0"
    link.symlink_to("/dev/null")  # as the bench's link names its pseudo-terminal
    yield Devices(CloudSamStore(None), lambda: [str(link)]), link


def test_the_edge_resolves_aliases_and_refuses_files(devices: tuple[Devices, Path], tmp_path: Path) -> None:
    found, link = devices
    state = ConsoleState()
    regular = tmp_path / "regular"
    regular.write_bytes(b"")
    (tmp_path / "to-a-file").symlink_to(regular)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert found.serial_port(state, str(link)) == str(link)
    assert found.serial_port(state, "/dev/./null") == str(link), "the listed link's device goes by the link"
    assert found.serial_port(state, f"{tmp_path}/./ttyNHI0") == str(link)
    for name in (
        f"/dev/..{regular}",
        f"/dev/..{tmp_path}/missing",
        str(tmp_path / "to-a-file"),
        str(tmp_path / "loop"),
        str(tmp_path),
        "/dev/../etc/passwd",
        "/dev/\0null",
        "null",
    ):
        assert found.serial_port(state, name) is None, name


def test_the_edge_without_a_listing_keys_a_terminal_by_its_path(tmp_path: Path) -> None:
    found = Devices(CloudSamStore(None), list)
    master, slave = pty.openpty()
    try:
        terminal = os.ttyname(slave)  # /dev/pts/N: a terminal, as a serial port is
        (tmp_path / "link").symlink_to(terminal)
        directory, name = os.path.split(terminal)
        for alias in (terminal, f"{directory}/./{name}", f"{directory}/../pts/{name}", str(tmp_path / "link")):
            assert found.serial_port(ConsoleState(), alias) == terminal, alias
    finally:
        os.close(master)
        os.close(slave)


def test_the_edge_refuses_character_devices_that_are_not_terminals(tmp_path: Path) -> None:
    found = Devices(CloudSamStore(None), list)
    (tmp_path / "null").symlink_to("/dev/null")
    for name in ("/dev/null", "/dev/./null", "/dev/../dev/null", str(tmp_path / "null"), "/dev/urandom", "/dev/tty"):
        assert found.serial_port(ConsoleState(), name) is None, name


def test_a_port_stays_wanted_until_the_last_initial_trying_it_is_done() -> None:
    found = Devices(CloudSamStore(None), list)
    state = ConsoleState()
    found.want_serial("/dev/null")
    found.want_serial("/dev/null")
    found.drop_serial("/dev/null")
    assert found.serial_devices(state) == {"/dev/null"}
    found.drop_serial("/dev/null")
    assert found.serial_devices(state) == set()


# --- Initial, through the core -----------------------------------------------------------------------------


@pytest.fixture
def reader() -> Iterator[VirtualNhiReader]:
    device = VirtualNhiReader(sam_file_bytes(sam_id=NHI_SAM_ID), pending_interval=0.2)
    device.insert(SLOT_HC, make_card("hc-basic"))
    yield device
    device.shutdown()


@dataclass
class Bench:
    """The core with the NHI reader's port listed, its worker's real back-end on an in-memory line.

    The listed port is a link to a character device, as the bench's `sim-nhi-reader/ttyNHI0` is to its
    pseudo-terminal (here /dev/null: the line itself is in memory), so that aliases resolve on the real disk.
    """

    harness: Harness
    line: LinkToVirtualReader
    port: str

    def aliases(self) -> list[str]:
        directory, name = os.path.split(self.port)
        return [self.port, f"{directory}/./{name}", f"{directory}//{name}", "/dev/null", "/dev/./null"]


@pytest.fixture
def nhi(reader: VirtualNhiReader, tmp_path: Path) -> Bench:
    link = tmp_path / "sim-nhi-reader" / "ttyNHI0"
    link.parent.mkdir()
    link.symlink_to("/dev/null")
    harness = Harness(serial_ports=(str(link),))
    line = harness.attach_nhi_reader(reader, port=str(link))
    harness.report_nhi()
    return Bench(harness, line, str(link))


def test_initial_with_an_alias_opens_the_listed_port_under_its_own_name(nhi: Bench) -> None:
    bench, port = nhi.harness, nhi.port
    for alias in nhi.aliases()[1:]:
        assert bench.command("Initialize", {"name": alias}) == (0, {}), alias
        status = bench.command("GetStatus")[1]["status"]
        assert (status["name"], status["readerName"]) == (port, port)
        assert bench.core.serial_devices() == {port}
        assert {reader for reader, _ in bench.card_commands} <= {port, port + "#hpc"}
        assert alias not in repr(bench.store.events()), "the log names the port by its one name"
        assert bench.command("Finalize") == (0, {})
        assert bench.core.serial_devices() == set()


def test_initial_with_a_file_is_1002_and_touches_no_worker(nhi: Bench, tmp_path: Path) -> None:
    bench = nhi.harness
    existing = tmp_path / "x"
    existing.write_bytes(b"")
    (tmp_path / "link").symlink_to(existing)
    for name in (
        "/dev/../etc/shadow",
        f"/dev/..{existing}",
        f"/dev/..{tmp_path}/missing",
        str(tmp_path / "link"),
        "/dev/no-such-port",
    ):
        assert bench.command("Initialize", {"name": name}) == NOT_A_DEVICE, name
    assert bench.card_commands == [] and bench.core.serial_devices() == set()
    assert not bench.core.state.initialized


def _start_initials(bench: Harness, names: list[str]) -> list[list[Outcome]]:
    """Start an `Initial` for each name, as concurrent calls are: every flow has sent its first card step."""
    started = []
    for name in names:
        handled = bench.core.handle(Request(id=name, command="Initialize", args={"name": name}))
        assert isinstance(handled, StartFlow)
        started.append(bench.start(handled.flow))
    return started


def test_concurrent_initials_of_aliases_share_the_port_until_the_last_is_done(nhi: Bench) -> None:
    bench, port = nhi.harness, nhi.port
    nhi.line.openable = False
    nhi.line.close()
    names = nhi.aliases() * 6
    outcomes = _start_initials(bench, names)
    for left in range(len(names), 0, -1):
        assert bench.core.serial_devices() == {port}, f"{left} still trying it: one port, one worker"
        bench.step_once()
    assert bench.core.serial_devices() == set()
    assert [outcome[0][0] for outcome in outcomes] == [StatusCode.COMPORT_OPEN_FAILED] * len(names)
    assert {reader for reader, _ in bench.card_commands} == {port}


def test_concurrent_initials_of_aliases_one_session_on_the_port(nhi: Bench) -> None:
    bench, port = nhi.harness, nhi.port
    names = nhi.aliases() * 6
    outcomes = _start_initials(bench, names)
    bench.pump()
    codes = [outcome[0][0] for outcome in outcomes]
    assert codes == [StatusCode.OK] + [StatusCode.ALREADY_INITIALIZED] * (len(names) - 1)
    assert bench.core.state.device_name == port and bench.core.serial_devices() == {port}
