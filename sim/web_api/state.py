"""The twin's state: one SQLite file (`sim-dc/web-api/state.db`) with every bench health card's NHI record.

Why SQLite, as the DC simulator's: the state must survive a console restart (the DC simulator's process is
restarted with it), be shared by the server's request threads, and change atomically: a call's checks and its
effects run in one `BEGIN IMMEDIATE` transaction, so a refusal (an exception inside it) rolls back and changes
nothing, not even the memory of the signature it carried.

What is kept: per card, what changes (validity, visits left, last sequence number; the rest is the profile's,
`sim.profiles`); per visit, what the paths answer; per signature, its SHA-256 and when it was first seen (never
the signature); per tele-medicine access token, its SHA-256 (a bearer credential is never stored); the pending
fault. The virtual card tokens the twin issues are not kept at all. Nothing here logs.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.profiles import PROFILES

_PRIVATE_MODE = 0o600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    card_id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    card_validity TEXT NOT NULL,
    treatment_counter INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS visits (
    visit_id INTEGER PRIMARY KEY,
    card_id TEXT NOT NULL REFERENCES cards(card_id),
    hospital_id TEXT NOT NULL,
    sam_id TEXT NOT NULL,
    treatment_date_time TEXT NOT NULL,
    sequence_number TEXT NOT NULL,
    treatment_item TEXT NOT NULL,
    baby_treatment TEXT NOT NULL,
    after_check TEXT NOT NULL,
    treatment_number TEXT NOT NULL,
    taken_at REAL NOT NULL,
    rolled_back INTEGER NOT NULL DEFAULT 0,
    codes TEXT,
    fees TEXT,
    UNIQUE (card_id, treatment_date_time)
);
CREATE TABLE IF NOT EXISTS prescriptions (
    prescription_id INTEGER PRIMARY KEY,
    visit_id INTEGER NOT NULL REFERENCES visits(visit_id),
    item TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS signatures (
    digest BLOB PRIMARY KEY,
    first_seen REAL NOT NULL,
    took_sequence INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS access_tokens (
    digest BLOB PRIMARY KEY,
    card_id TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fault TEXT NOT NULL,
    remaining INTEGER NOT NULL,
    hold_seconds REAL NOT NULL
);
"""

_TABLES = ("prescriptions", "visits", "signatures", "access_tokens", "faults", "cards")
"""Every table, children first: what a reset empties."""


class Fault(enum.StrEnum):
    """The bench's web-API faults (`POST /api/sim/v1/WebApi/Faults`)."""

    TIMEOUT = "timeout"
    """The connection is held open, unanswered, then closed."""
    HTTP500 = "http500"
    UNREADABLE = "unreadable"
    """HTTP 200 with a body that is not JSON."""


@dataclass(frozen=True)
class PendingFault:
    fault: Fault
    hold_seconds: float


@dataclass(frozen=True)
class CardRecord:
    """What changes on a card's NHI record; the rest is its profile's."""

    card_id: str
    profile: str
    card_validity: str
    treatment_counter: int
    last_sequence: int


@dataclass(frozen=True)
class Visit:
    visit_id: int
    card_id: str
    hospital_id: str
    sam_id: str
    treatment_date_time: str
    sequence_number: str
    treatment_item: str
    baby_treatment: str
    after_check: str
    treatment_number: str
    taken_at: float
    """The bench clock's POSIX seconds when the sequence number was taken (the 24-hour rollback rule)."""
    rolled_back: bool
    codes: dict[str, str] | None = None
    """mainCode, subCode1..5 once written (Treatment/WriteCodeFee)."""
    fees: dict[str, int] | None = None


@dataclass(frozen=True)
class Prescription:
    visit_id: int
    item: dict[str, str]
    signature: bytes = field(repr=False)


@dataclass(frozen=True)
class AccessToken:
    card_id: str
    hospital_id: str
    expires_at: float


_VISIT_COLUMNS = (
    "visit_id, card_id, hospital_id, sam_id, treatment_date_time, sequence_number, treatment_item, baby_treatment,"
    " after_check, treatment_number, taken_at, rolled_back, codes, fees"
)


def _visit(row: tuple[Any, ...]) -> Visit:
    return Visit(
        visit_id=row[0],
        card_id=row[1],
        hospital_id=row[2],
        sam_id=row[3],
        treatment_date_time=row[4],
        sequence_number=row[5],
        treatment_item=row[6],
        baby_treatment=row[7],
        after_check=row[8],
        treatment_number=row[9],
        taken_at=float(row[10]),
        rolled_back=bool(row[11]),
        codes=None if row[12] is None else json.loads(row[12]),
        fees=None if row[13] is None else json.loads(row[13]),
    )


class Transaction:
    """One call's reads and writes, inside its `BEGIN IMMEDIATE`; the SQL lives here and nowhere else."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    # -- cards --------------------------------------------------------------

    def card(self, card_id: str) -> CardRecord | None:
        row = self._db.execute(
            "SELECT card_id, profile, card_validity, treatment_counter, last_sequence FROM cards WHERE card_id = ?",
            (card_id,),
        ).fetchone()
        return None if row is None else CardRecord(*row)

    def cards(self) -> list[CardRecord]:
        rows = self._db.execute(
            "SELECT card_id, profile, card_validity, treatment_counter, last_sequence FROM cards ORDER BY card_id"
        ).fetchall()
        return [CardRecord(*row) for row in rows]

    def update_card(self, card: CardRecord) -> None:
        self._db.execute(
            "UPDATE cards SET card_validity = ?, treatment_counter = ?, last_sequence = ? WHERE card_id = ?",
            (card.card_validity, card.treatment_counter, card.last_sequence, card.card_id),
        )

    # -- visits and prescriptions ----------------------------------------------

    def visits(self, card_id: str) -> list[Visit]:
        """The card's visits that were not rolled back, newest first."""
        rows = self._db.execute(
            f"SELECT {_VISIT_COLUMNS} FROM visits WHERE card_id = ? AND rolled_back = 0"
            " ORDER BY treatment_date_time DESC",
            (card_id,),
        ).fetchall()
        return [_visit(row) for row in rows]

    def visit(self, card_id: str, treatment_date_time: str) -> Visit | None:
        """The card's visit at that ROC date-time, rolled back or not."""
        row = self._db.execute(
            f"SELECT {_VISIT_COLUMNS} FROM visits WHERE card_id = ? AND treatment_date_time = ?",
            (card_id, treatment_date_time),
        ).fetchone()
        return None if row is None else _visit(row)

    def add_visit(self, visit: Visit) -> None:
        """Stores everything but `visit_id` (SQLite picks it), `codes` and `fees` (written later)."""
        self._db.execute(
            "INSERT INTO visits (card_id, hospital_id, sam_id, treatment_date_time, sequence_number, treatment_item,"
            " baby_treatment, after_check, treatment_number, taken_at, rolled_back) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                visit.card_id,
                visit.hospital_id,
                visit.sam_id,
                visit.treatment_date_time,
                visit.sequence_number,
                visit.treatment_item,
                visit.baby_treatment,
                visit.after_check,
                visit.treatment_number,
                visit.taken_at,
            ),
        )

    def roll_back(self, visit_id: int) -> None:
        self._db.execute("UPDATE visits SET rolled_back = 1 WHERE visit_id = ?", (visit_id,))

    def write_codes_and_fees(self, visit_id: int, codes: dict[str, str], fees: dict[str, int]) -> None:
        self._db.execute(
            "UPDATE visits SET codes = ?, fees = ? WHERE visit_id = ?",
            (json.dumps(codes), json.dumps(fees), visit_id),
        )

    def add_prescription(self, prescription: Prescription) -> None:
        self._db.execute(
            "INSERT INTO prescriptions (visit_id, item, signature) VALUES (?, ?, ?)",
            (prescription.visit_id, json.dumps(prescription.item, ensure_ascii=False), prescription.signature),
        )

    def prescriptions(self, card_id: str) -> list[Prescription]:
        """The prescriptions of the card's visits that were not rolled back: newest visit first, each visit's in
        the order they were written."""
        rows = self._db.execute(
            "SELECT p.visit_id, p.item, p.signature FROM prescriptions p JOIN visits v ON v.visit_id = p.visit_id"
            " WHERE v.card_id = ? AND v.rolled_back = 0 ORDER BY v.treatment_date_time DESC, p.prescription_id",
            (card_id,),
        ).fetchall()
        return [Prescription(row[0], json.loads(row[1]), bytes(row[2])) for row in rows]

    # -- signatures ---------------------------------------------------------------

    def signature_first_seen(self, digest: bytes) -> float | None:
        row = self._db.execute("SELECT first_seen FROM signatures WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else float(row[0])

    def signature_took_sequence(self, digest: bytes) -> bool:
        row = self._db.execute("SELECT took_sequence FROM signatures WHERE digest = ?", (digest,)).fetchone()
        return bool(row and row[0])

    def remember_signature(self, digest: bytes, now: float, took_sequence: bool = False) -> None:
        """First sight is kept; a sequence number taken is kept too, once taken."""
        self._db.execute(
            "INSERT INTO signatures (digest, first_seen, took_sequence) VALUES (?, ?, ?)"
            " ON CONFLICT (digest) DO UPDATE SET took_sequence = MAX(took_sequence, excluded.took_sequence)",
            (digest, now, int(took_sequence)),
        )

    # -- tele-medicine access tokens ------------------------------------------------

    def add_access_token(self, digest: bytes, token: AccessToken) -> None:
        self._db.execute(
            "INSERT INTO access_tokens (digest, card_id, hospital_id, expires_at) VALUES (?, ?, ?, ?)",
            (digest, token.card_id, token.hospital_id, token.expires_at),
        )

    def access_token(self, digest: bytes) -> AccessToken | None:
        row = self._db.execute(
            "SELECT card_id, hospital_id, expires_at FROM access_tokens WHERE digest = ?", (digest,)
        ).fetchone()
        return None if row is None else AccessToken(row[0], row[1], float(row[2]))

    def drop_access_token(self, digest: bytes) -> None:
        self._db.execute("DELETE FROM access_tokens WHERE digest = ?", (digest,))

    # -- faults ------------------------------------------------------------------------

    def set_fault(self, fault: Fault, count: int, hold_seconds: float) -> None:
        self._db.execute(
            "INSERT INTO faults (id, fault, remaining, hold_seconds) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
            " SET fault = excluded.fault, remaining = excluded.remaining, hold_seconds = excluded.hold_seconds",
            (fault.value, count, hold_seconds),
        )

    def take_fault(self) -> PendingFault | None:
        """Count one web-API call against the pending fault."""
        row = self._db.execute("SELECT fault, remaining, hold_seconds FROM faults WHERE id = 1").fetchone()
        if row is None:
            return None
        if row[1] <= 1:
            self._db.execute("DELETE FROM faults WHERE id = 1")
        else:
            self._db.execute("UPDATE faults SET remaining = remaining - 1 WHERE id = 1")
        return PendingFault(Fault(row[0]), float(row[2]))

    # -- the whole state ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the twin holds, as JSON (the bench's `GET /api/sim/v1/WebApi/State`; a test compares two
        to see that a refusal changed nothing). Digests are counted, never shown."""
        visits = []
        for row in self._db.execute(f"SELECT {_VISIT_COLUMNS} FROM visits ORDER BY visit_id").fetchall():
            visit = _visit(row)
            items = self._db.execute(
                "SELECT item FROM prescriptions WHERE visit_id = ? ORDER BY prescription_id", (visit.visit_id,)
            ).fetchall()
            visits.append(
                {
                    "cardId": visit.card_id,
                    "hospitalId": visit.hospital_id,
                    "samId": visit.sam_id,
                    "treatmentDateTime": visit.treatment_date_time,
                    "sequenceNumber": visit.sequence_number,
                    "treatmentItem": visit.treatment_item,
                    "babyTreatment": visit.baby_treatment,
                    "afterCheck": visit.after_check,
                    "treatmentNumber": visit.treatment_number,
                    "rolledBack": visit.rolled_back,
                    "codes": visit.codes,
                    "fees": visit.fees,
                    "prescriptions": [json.loads(item[0]) for item in items],
                }
            )
        fault = self._db.execute("SELECT fault, remaining FROM faults WHERE id = 1").fetchone()
        return {
            "cards": [
                {
                    "cardId": card.card_id,
                    "profile": card.profile,
                    "cardValidity": card.card_validity,
                    "treatmentCounter": card.treatment_counter,
                    "lastSequenceNumber": card.last_sequence,
                }
                for card in self.cards()
            ],
            "visits": visits,
            "signaturesSeen": self._db.execute("SELECT COUNT(*) FROM signatures").fetchone()[0],
            "accessTokens": self._db.execute("SELECT COUNT(*) FROM access_tokens").fetchone()[0],
            "pendingFault": None if fault is None else {"fault": fault[0], "remaining": fault[1]},
        }

    def reset(self) -> None:
        """The bench's start state: every card as its profile says, nothing else."""
        for table in _TABLES:
            self._db.execute(f"DELETE FROM {table}")
        self.seed()

    def seed(self) -> None:
        """A record for each health card profile that has none (a profile added later gets one at the next start)."""
        for name, profile in PROFILES.items():
            if profile.insurance is None:
                continue
            self._db.execute(
                "INSERT OR IGNORE INTO cards (card_id, profile, card_validity, treatment_counter, last_sequence)"
                " VALUES (?, ?, ?, ?, 0)",
                (profile.data.card_id, name, profile.insurance.card_validity, profile.insurance.treatment_counter),
            )


class WebApiState:
    """The twin's SQLite file: one connection, one lock, one transaction per call (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, _PRIVATE_MODE))  # 0600 before SQLite opens it
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")  # a power cut may lose the last calls, not the file
        self._connection.execute("PRAGMA foreign_keys=ON")
        self._connection.executescript(_SCHEMA)
        with self.transaction() as tx:
            tx.seed()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """All or nothing: an exception inside (a refusal) rolls every change back."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._connection)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")
