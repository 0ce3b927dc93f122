"""An in-process virtual PC/SC reader: the `CardReader` back-end of `serve --sim`.

It lets the demo and the API tests run without pcscd: the same virtual card
objects that the PC/SC tests put behind vpcd answer here directly.  The bench
drives it through `control()`, which the worker passes on from the broker.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sim.card_lab import LabCard, lab_dir
from sim.cards.base import VirtualCard
from sim.profiles import make_card
from workers.seam import CardAbsent, PresenceChanged


class VirtualReader:
    def __init__(self, name: str, lab: Path | None = None) -> None:
        self.name = name
        self._lab = lab
        """The card lab (sim/card_lab.py) every card put in goes through: slow cards for the liveness tests."""
        self._card: VirtualCard | None = None
        self._lock = threading.RLock()
        self._changes: queue.Queue[PresenceChanged] = queue.Queue()

    def insert(self, card: VirtualCard) -> None:
        if self._lab is not None:
            card = LabCard(card, self._lab)
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

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            yield

    def control(self, action: str, args: dict[str, Any]) -> None:
        """The bench's hands: put a fresh card of a profile in the reader, or take it out."""
        if action == "insert":
            profile = args.get("profile")
            if not isinstance(profile, str):
                raise ValueError("profile must be a string")
            self.insert(make_card(profile))
        elif action == "remove":
            self.remove()
        else:
            raise ValueError(f"unknown bench action {action!r}")

    def close(self) -> None:
        with self._lock:
            self._card = None


def open_reader(name: str) -> VirtualReader:
    return VirtualReader(name, lab_dir())
