"""The session's devices: the imported cloud SAMs, the machine's serial ports, and what the NHI readers' workers
last said of their ports. What `Name` lists, what `Initial` tries, and which ports need a worker now.

None of this is in the log: the cloud SAM files are on disk (0600), the listing is the machine's, and a reader's
fault is what its worker reports every heartbeat.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from broker.credentials.sam_session import CloudSamStore
from broker.domain.state import SAM_PHYSICAL, ConsoleState
from contract.protocol import WorkerStatus

log = logging.getLogger(__name__)


class Devices:
    def __init__(self, cloud_sams: CloudSamStore, serial_ports: Callable[[], list[str]]) -> None:
        self.cloud_sams = cloud_sams
        self._serial_ports = serial_ports
        self._probing: set[str] = set()
        """Ports an `Initial` is trying right now: their workers run before any session uses them."""
        self._faults: dict[str, int] = {}
        """What each reader's worker last reported as its fault (the NHI reader's port)."""

    def names(self, state: ConsoleState) -> list[str]:
        """`GET /api/common/v1/Name`: the imported cloud SAMs, then the machine's serial ports."""
        return list(dict.fromkeys([*sorted(state.cloud_sams), *self._serial_ports()]))

    def candidates(self, state: ConsoleState) -> list[str]:
        """`Initial` without a name: the last device, then the listing (contract.md's order)."""
        ordered = [state.last_device] if state.last_device else []
        ordered += self.names(state)
        return list(dict.fromkeys(name for name in ordered if name))

    def is_serial_port(self, state: ConsoleState, device: str) -> bool:
        # A device file under /dev/ counts even if the listing missed it (a udev symlink, an adapter just
        # plugged in); a name that is neither listed nor there is no device at all (1002), not a port (1201).
        if device in state.cloud_sams:
            return False
        return device in self._serial_ports() or (device.startswith("/dev/") and os.path.exists(device))

    def want_serial(self, port: str) -> None:
        self._probing.add(port)

    def drop_serial(self, port: str) -> None:
        self._probing.discard(port)

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
