"""The broker's checkpoints: both chain heads, signed, written to the system log at a start, hourly, after each
seal and at a stop (eventlog/checkpoints.py says what a checkpoint is; docs/audit.md how to keep them).

Why the system log: the broker's standard error is the service's, which systemd hands to journald (the unit sets
no StandardError=, so the journal's default applies), and a clinic that forwards or collects its journal keeps
the lines on another machine without any setup here. One INFO line on the logger `nhi_console.checkpoint`, whose
message is the statement alone, so `journalctl -u nhi-console | grep nhi-console-checkpoint/` is a file
`nhi-console log verify --since` reads as it is.

Why it costs the loop nothing measurable: an Ed25519 signature is about 50 µs, and the heads are one indexed
read of `chain_heads` on a read-only connection of its own (WAL: it never waits for the writer), once an hour.
The heads read are the committed ones, what a reader of the file sees: a checkpoint never names a row that a
crash could still take back.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.runtime.clock import Clock
from eventlog import checkpoints
from eventlog.checkpoint_key import KeyUnreadable, load_or_create_signing_key
from eventlog.sealing import BackgroundSeal
from eventlog.sqlite_store import open_read_only

CHECKPOINT_LOGGER: Final = "nhi_console.checkpoint"
CHECKPOINT_INTERVAL: Final = 3600.0
"""Seconds between two checkpoints by the broker's monotonic clock (one more after each seal)."""
RETRY_INTERVAL: Final = 60.0
"""Seconds before trying again after a checkpoint could not be made (a full disk at the key's first use, say)."""

checkpoint_log = logging.getLogger(CHECKPOINT_LOGGER)
log = logging.getLogger(__name__)


class Checkpoints:
    """When to write a checkpoint, and writing it. Owned by the loop's thread; never raises into the loop."""

    def __init__(self, database: Path, key_path: Path, clock: Clock, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._database = Path(database)
        self._key_path = Path(key_path)
        self._clock = clock
        self._interval = interval
        self._next = clock.monotonic()  # the first turn writes one: a broker that restarts often still leaves some
        self._key: Ed25519PrivateKey | None = None
        self._conn: sqlite3.Connection | None = None
        self._seal_seen: BackgroundSeal | None = None
        self._failing = False
        try:  # made (or read) now, before the broker serves: its fsyncs never fall in a turn
            self._signing_key()
        except (OSError, KeyUnreadable) as error:
            log.warning("could not write checkpoints (tried again every minute): %s", error)
            self._failing = True

    def tick(self, now: float, seal: BackgroundSeal | None) -> None:
        """Once a turn: a checkpoint if a seal finished since the last turn, or if one is due by the clock."""
        try:
            if seal is not None and seal is not self._seal_seen and not seal.running():
                self._seal_seen = seal
                if seal.sealed is not None:
                    self.write(now)
                    return
            if now >= self._next:
                self.write(now)
        except Exception:  # a bug here must not stop the console: the next turn goes on without it
            log.exception("writing a checkpoint failed")
            self._next = now + RETRY_INTERVAL

    def write(self, now: float) -> str | None:
        """Sign the committed heads and log the line; returns it (None if it could not be made, which is logged)."""
        try:
            key = self._signing_key()
            heads = self._heads()
            line = checkpoints.make(key, self._clock.wall_ns(), heads["events"], heads["calls"]).render()
        except (OSError, sqlite3.Error, KeyUnreadable, checkpoints.CheckpointError) as error:
            # The error names a path or SQLite's complaint, never the key (KeyUnreadable quotes no contents).
            if not self._failing:
                log.warning("could not write a checkpoint (tried again every minute): %s", error)
            self._failing = True
            self._next = now + RETRY_INTERVAL
            return None
        if self._failing:
            log.warning("checkpoints are written again")
            self._failing = False
        self._next = now + self._interval
        checkpoint_log.info("%s", line)
        return line

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._key is None:
            self._key = load_or_create_signing_key(self._key_path)
        return self._key

    def _heads(self) -> dict[checkpoints.Chain, checkpoints.ChainPosition]:
        if self._conn is None:
            self._conn = open_read_only(self._database)
        rows = self._conn.execute("SELECT name, seq, hash FROM chain_heads").fetchall()
        heads = {name: checkpoints.ChainPosition(seq, bytes(digest)) for name, seq, digest in rows}
        if set(heads) != set(checkpoints.CHAINS):
            raise sqlite3.DatabaseError("chain_heads must hold exactly 'events' and 'calls'")
        return {chain: heads[chain] for chain in checkpoints.CHAINS}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
