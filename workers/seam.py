"""The `CardReader` seam: what a worker needs from a reader, whatever it is.

PC/SC (pyscard), the NHI dedicated reader (pyserial) and the bench's in-process
virtual reader all implement it; a worker is handed one by name
(`module:factory`), so production code never imports the bench.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class ReaderError(Exception):
    """Base of what a reader back-end may raise."""


class CardAbsent(ReaderError):
    """No card in the reader (or it was pulled during the command)."""


class ReaderGone(ReaderError):
    """The reader itself disappeared (unplugged, driver gone)."""


class ReaderFault(ReaderError):
    """The reader failed in a way the console has its own code for (1201 port, 1202 NHI reader, 1203 keypad)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A card arrived (`atr` set) or left (`atr` None); `reader` names the slot on a device that has several."""

    atr: bytes | None
    reader: str | None = None


class CardReader(Protocol):
    def wait_for_change(self, timeout: float) -> PresenceChanged | None:
        """Block up to `timeout` seconds; None if nothing changed. Called from one watcher thread."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU, return the response APDU (data + SW1 SW2)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Exclusive use of the card for a multi-APDU sequence: no other program's APDU comes in between."""
        ...

    def close(self) -> None: ...


class SlotDevice(Protocol):
    """A reader with several card slots and commands of its own: the NHI dedicated reader (SAM, keypad, clock).

    The worker serves each slot as a reader of its own and runs the device's own commands; commands in
    `long_commands` (a PIN typed on the keypad) run in a thread, so the worker keeps reporting meanwhile.
    """

    long_commands: frozenset[str]

    def slot_readers(self) -> dict[str, CardReader]: ...

    def wait_for_change(self, timeout: float) -> PresenceChanged | None: ...

    def fault(self) -> int | None:
        """Why the device cannot be used now (a console code), or None."""
        ...

    def device_commands(self) -> frozenset[str]: ...

    def run_device_command(self, reader: str, command: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]: ...

    def close(self) -> None: ...


ReaderFactory = Callable[..., "CardReader | SlotDevice"]
"""A back-end's factory: called with the reader's name, and with `device=` too when the worker was given what to
open besides it (a Windows-named serial port's path; only the NHI reader's back-end is ever given one)."""


def load_backend(path: str) -> ReaderFactory:
    """Resolve `package.module:factory`; a bad name is a clear error, not an ImportError deep in a loop."""
    module_name, separator, attribute = path.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(f"reader back-end must be module:factory, got {path!r}")
    module = importlib.import_module(module_name)
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{path!r} is not a callable reader factory")
    return factory
