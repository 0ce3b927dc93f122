"""`SerialLink`'s interface over an in-memory `VirtualNhiReader`, for unit tests of pure code above the line.

The real line (a pseudo-terminal, pyserial, the framing) is exercised by the integration tests; here frames are
still built and answered by the real device logic, only without bytes on a terminal in between.
"""

from __future__ import annotations

from sim.nhi_reader import VirtualNhiReader
from workers.serial_link import SerialLinkError
from workers.serial_protocol import STATUS_PENDING, Frame


class LinkToVirtualReader:
    def __init__(self, device: VirtualNhiReader) -> None:
        self.device = device
        self.is_open = False
        self.openable = True
        """False: opening fails as a missing port does (1201)."""
        self.answering = True
        """False: every call fails as a silent reader does (1202)."""
        self.commands: list[int] = []
        self._seq = 0

    def open(self, path: str) -> None:
        if not self.openable:
            raise SerialLinkError(1201, f"the reader's port {path} cannot be opened (FileNotFoundError)")
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def call(self, cmd: int, payload: bytes = b"", **_: object) -> tuple[int, bytes]:
        if not self.is_open:
            raise SerialLinkError(1202, "the reader's port is not open")
        if not self.answering:
            raise SerialLinkError(1202, f"the reader is not answering (command 0x{cmd:02X}, 3 attempts)")
        self.commands.append(cmd)
        self._seq = (self._seq + 1) & 0xFF
        final = [
            frame for frame in self.device.handle(Frame(self._seq, cmd, payload)) if frame.status != STATUS_PENDING
        ][-1]
        return final.payload[0], final.payload[1:]
