"""The session's devices: the imported cloud SAMs, the machine's serial ports, and what the NHI readers' workers
last said of their ports. What `Name` lists, what `Initial` tries, and which ports need a worker now.

None of this is in the log: the cloud SAM files are on disk (0600), the listing is the machine's, and a reader's
fault is what its worker reports every heartbeat.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import Counter
from collections.abc import Callable, Mapping

from broker.credentials.sam_session import CloudSamStore
from broker.domain.state import SAM_PHYSICAL, ConsoleState
from contract.protocol import WorkerStatus
from contract.serial_port_names import listed_port_names, serial_port_key

log = logging.getLogger(__name__)


class Devices:
    def __init__(
        self,
        cloud_sams: CloudSamStore,
        serial_ports: Callable[[], list[str]],
        port_names: Mapping[str, str] | None = None,
    ) -> None:
        self.cloud_sams = cloud_sams
        self._serial_ports = serial_ports
        self._port_names = dict(port_names or {})
        """Windows names given to ports (`COM3` → `/dev/ttyUSB0`; the bench's `COM1`): each is its port's key."""
        self._probing: Counter[str] = Counter()
        """Ports `Initial`s are trying right now, with how many: their workers run before any session uses them,
        and until the last of the `Initial`s trying one is done with it (concurrent calls share the worker)."""
        self._faults: dict[str, int] = {}
        """What each reader's worker last reported as its fault (the NHI reader's port)."""

    def names(self, state: ConsoleState) -> list[str]:
        """`GET /api/common/v1/Name`: the imported cloud SAMs, then the serial ports, each by its one name."""
        return list(dict.fromkeys([*sorted(state.cloud_sams), *listed_port_names(self._listed())]))

    def candidates(self, state: ConsoleState) -> list[str]:
        """`Initial` without a name: the last device, then the listing (contract.md's order)."""
        ordered = [state.last_device] if state.last_device else []
        ordered += self.names(state)
        return list(dict.fromkeys(name for name in ordered if name))

    def serial_port(self, state: ConsoleState, device: str) -> str | None:
        """The key of the serial port `device` names (contract/serial_port_names.py), or None: not a port.

        A character device under /dev counts even if the listing missed it (a udev symlink, an adapter just
        plugged in); anything else that is not listed is no device at all (1002), whatever is there.
        """
        if device in state.cloud_sams:
            return None
        # Only an absolute name is looked up: the rule refuses a relative one, and a Windows name is no path.
        looked_up = _look_up(device) if device.startswith("/") else (None, None, None)
        return serial_port_key(device, self._listed(), *looked_up)

    def device_path(self, port: str) -> str | None:
        """What the worker of the port keyed `port` opens, if not `port` itself: a Windows name's device path."""
        return self._port_names.get(port)

    def _listed(self) -> dict[str, str | None]:
        """Every port the console lists, with its resolved path: the Windows names first, so that each is the
        key of its device (contract/serial_port_names.py), then the machine's listing and `--serial-port` paths."""
        listed = {name: _look_up(path)[0] for name, path in self._port_names.items()}
        for port in self._serial_ports():
            listed.setdefault(port, _look_up(port)[0])
        return listed

    def want_serial(self, port: str) -> None:
        self._probing[port] += 1

    def drop_serial(self, port: str) -> None:
        self._probing[port] -= 1
        if self._probing[port] <= 0:
            del self._probing[port]

    def serial_devices(self, state: ConsoleState) -> set[str]:
        """The ports whose NHI reader workers should run: the session's, and those an `Initial` is trying."""
        ports = set(self._probing)
        if state.initialized and state.sam.type == SAM_PHYSICAL and state.device_name:
            ports.add(state.device_name)
        return ports

    def session_fault(self, state: ConsoleState) -> int | None:
        """Why the session's NHI reader cannot be used now (1201, 1202), as its worker last reported; None."""
        if state.sam.type != SAM_PHYSICAL or state.device_name is None:
            return None
        return self._faults.get(state.device_name)

    def reported(self, report: WorkerStatus) -> None:
        if report.fault is None:
            self._faults.pop(report.reader, None)
        elif self._faults.get(report.reader) != report.fault:
            log.warning("reader %r cannot be used: %d", report.reader, report.fault)
            self._faults[report.reader] = report.fault


def _look_up(path: str) -> tuple[str | None, os.stat_result | None, str | None]:
    """The file system's edge of the port rule: `path`'s real path, `os.stat` of it and, for a character device,
    the sysfs class of its number (None where any cannot be had: a NUL byte, a symlink loop, no such file, no
    permission, no sysfs). Nothing of why reaches the caller."""
    try:
        resolved = os.path.realpath(path)
    except (OSError, ValueError):
        return None, None, None
    try:
        status = os.stat(resolved)
    except (OSError, ValueError):
        return resolved, None, None
    return resolved, status, _device_class(status) if stat.S_ISCHR(status.st_mode) else None


def _device_class(status: os.stat_result) -> str | None:
    """`tty`, `mem`, `misc`...: the class sysfs files a character device's number under, None if it has none."""
    number = f"/sys/dev/char/{os.major(status.st_rdev)}:{os.minor(status.st_rdev)}/subsystem"
    try:
        return os.path.basename(os.path.realpath(number, strict=True))
    except OSError:
        return None
