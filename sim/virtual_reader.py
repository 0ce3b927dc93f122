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

from sim.card_commands import CommandCounter, counter_from_environment
from sim.card_lab import LabCard, lab_dir
from sim.cards.base import VirtualCard
from sim.profiles import make_card
from workers.seam import CardAbsent, PresenceChanged


class VirtualReader:
    def __init__(self, name: str, lab: Path | None = None, counter: CommandCounter | None = None) -> None:
        self.name = name
        self._lab = lab
        """The card lab (sim/card_lab.py) every card put in goes through: slow cards for the liveness tests."""
        self._counter = counter
        """Counts every APDU handed to a card here (sim/card_commands.py): `cardCommands` of the bench's readers."""
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
            if self._counter is not None:  # counted as it reaches the card, before a slow card answers
                self._counter.add()
            return self._card.respond(apdu)

    @property
    def card_commands(self) -> int:
        """The APDUs that reached this reader's cards (0 if it keeps no count)."""
        return self._counter.count if self._counter is not None else 0

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
    """The worker's back-end factory (`sim.virtual_reader:open_reader`): the lab and the count, as the bench set."""
    return VirtualReader(name, lab_dir(), counter_from_environment(name))
