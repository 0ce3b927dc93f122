"""Slow cards that count their PIN tries: the bench's lab for the liveness tests (issue 19).

SIMULATION ONLY. A real card may take seconds an APDU (an RSA signature on an old card); the worker must
outlive such a command, answer its caller at the deadline, and never send a VERIFY twice. `LabCard` puts a
bench card behind a delay and a counter, and tells them through files, since the card lives in another
process (a reader's worker, or the bench's NHI reader) than the test that reads them:

- `DIR/delay`: seconds each APDU waits before the card answers it (re-read at every APDU; none if absent);
- `DIR/pin-verifies`: one line per VERIFY carrying a PIN that reached a card (`verify`, never the PIN).

`NHI_CONSOLE_SIM_CARD_LAB` names DIR for the bench's in-process readers (`sim.virtual_reader.open_reader`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sim.cards.base import Transcript, VirtualCard

LAB_ENV = "NHI_CONSOLE_SIM_CARD_LAB"
DELAY_FILE = "delay"
VERIFIES_FILE = "pin-verifies"
VERIFY = 0x20

_append_lock = threading.Lock()


def lab_dir() -> Path | None:
    """The lab's directory if the environment names one (only a test does)."""
    named = os.environ.get(LAB_ENV)
    return Path(named) if named else None


def delay_of(lab: Path) -> float:
    """The seconds written in the lab's delay file; 0 when there is none or it says nothing sensible."""
    try:
        return max(0.0, float((lab / DELAY_FILE).read_text().strip() or 0))
    except (OSError, ValueError):
        return 0.0


def carries_pin(apdu: bytes) -> bool:
    """A VERIFY with data (ISO 7816-4): it spends a try; without data it only reads the counter."""
    return len(apdu) > 4 and apdu[1] == VERIFY


def pin_verifies(lab: Path) -> int:
    """How many PIN VERIFYs reached the lab's cards so far (for the test)."""
    try:
        return len((lab / VERIFIES_FILE).read_text().splitlines())
    except FileNotFoundError:
        return 0


class LabCard:
    """`card`, slowed by the lab's delay and counting its PIN VERIFYs into the lab."""

    def __init__(self, card: VirtualCard, lab: Path) -> None:
        self._card = card
        self._lab = lab
        self.atr: bytes = card.atr
        self.transcript: Transcript = card.transcript

    def respond(self, apdu: bytes) -> bytes:
        delay = delay_of(self._lab)
        if delay:
            time.sleep(delay)
        if carries_pin(apdu):
            with _append_lock, open(self._lab / VERIFIES_FILE, "a") as verifies:
                verifies.write("verify\n")
        return self._card.respond(apdu)

    def reset(self) -> None:
        self._card.reset()
