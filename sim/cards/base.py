"""What every virtual card offers, whichever reader back-end carries it.

The same card object answers through the in-process virtual reader
(`sim.virtual_reader`) and through pcscd's vpcd driver (`sim.vpcd`), so the
demo and the PC/SC integration tests exercise one implementation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

HC_AID = bytes.fromhex("D15800000100000000000000000011 00".replace(" ", ""))
"""The health card's application id, as real cards answer it (the spec's public data block)."""

HPC_AID = bytes.fromhex("D15800000100000000000000000012 00".replace(" ", ""))
"""The bench staff card's application id. The real HCA card's is not public: this one is ours."""


TRANSCRIPT_KEEPS = 1024
"""The newest exchanges a transcript is sure to hold; it holds at most twice as many (it trims in batches)."""


@dataclass
class Transcript:
    """The APDUs a card received and what it answered, newest last, for tests that check interleaving.

    Bounded (issue 19): a bench card lives as long as `serve --sim`, and a transcript that kept every APDU
    grew a bench reader's worker by 42 MB in 250,000 calls. It keeps the newest `keeps` exchanges or more
    (trimmed to `keeps` when it reaches twice that: a list, so `entries` still compares equal to a list and
    tests can clear it, with the trim's cost spread over `keeps` appends), and counts all of them in `total`.
    Thread-safe: the in-process reader and the vpcd bridge may call from different threads.
    """

    entries: list[tuple[bytes, bytes]] = field(default_factory=list)
    keeps: int = TRANSCRIPT_KEEPS
    total: int = 0
    """Every exchange since the card was made, trimmed or not."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, command: bytes, response: bytes) -> None:
        with self._lock:
            self.entries.append((command, response))
            self.total += 1
            if len(self.entries) >= 2 * self.keeps:
                del self.entries[: -self.keeps]

    def commands(self) -> list[bytes]:
        with self._lock:
            return [command for command, _ in self.entries]


class VirtualCard(Protocol):
    atr: bytes
    transcript: Transcript

    def respond(self, apdu: bytes) -> bytes:
        """Answer one command APDU with data + SW1 SW2; never raises on malformed input (answers 6700/6D00/...)."""
        ...

    def reset(self) -> None:
        """Power cycle or warm reset: the selected application and any verified PIN are forgotten."""
        ...
