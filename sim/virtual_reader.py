"""An in-process virtual PC/SC reader: the `CardReader` back-end of `serve --sim`.

It lets the demo and the API tests run without pcscd. For now it holds no card
(the bench's virtual cards arrive with the readers issue); `insert`/`remove`
already drive presence changes the way a real reader's events do.
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol

from workers.seam import CardAbsent, PresenceChanged


class VirtualCard(Protocol):
    atr: bytes

    def respond(self, apdu: bytes) -> bytes:
        ...


class VirtualReader:
    def __init__(self, name: str) -> None:
        self.name = name
        self._card: VirtualCard | None = None
        self._lock = threading.Lock()
        self._changes: queue.Queue[PresenceChanged] = queue.Queue()

    def insert(self, card: VirtualCard) -> None:
        with self._lock:
            if self._card is not None:
                self._changes.put(PresenceChanged(None))
            self._card = card
            self._changes.put(PresenceChanged(card.atr))

    def remove(self) -> None:
        with self._lock:
            if self._card is not None:
                self._card = None
                self._changes.put(PresenceChanged(None))

    def wait_for_change(self, timeout: float) -> PresenceChanged | None:
        try:
            return self._changes.get(timeout=timeout)
        except queue.Empty:
            return None

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            if self._card is None:
                raise CardAbsent(f"no card in {self.name}")
            return self._card.respond(apdu)

    def close(self) -> None:
        with self._lock:
            self._card = None


def open_reader(name: str) -> VirtualReader:
    return VirtualReader(name)
