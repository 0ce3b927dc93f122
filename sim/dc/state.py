"""The DC simulator's state: its directory's layout and its SQLite database (`DIR/dc.db`).

Why SQLite: the bench's state (hospitals, SAMs, sessions, pending nonces and
card authentications, the clock offset, pending faults) must survive a restart
of the simulator and be shared safely by the threaded server's request
threads, and single-use tokens (nonces, card authentication ids, faults) must
be consumed atomically. One connection guarded by a lock, in WAL mode, with
every change in one `BEGIN IMMEDIATE` transaction, gives all of that.

Secrets: a session token is stored only as its SHA-256 (a copied database
cannot be used to act as a logged-in SAM), and so is a virtual card transfer's
secret. An exported virtual card's data is kept until it is imported, then
dropped. Nothing in this module logs, and no exception message carries a value.
"""

from __future__ import annotations

import datetime
import enum
import hmac
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from eventlog.durable_files import write_atomically

UTC = datetime.UTC
TAIPEI = datetime.timezone(datetime.timedelta(hours=8), "Asia/Taipei")
"""The DC's zone: Taiwan has kept +08:00 without daylight saving time since 1979, so a fixed offset is exact."""

MAX_CLOCK_OFFSET_SECONDS = 100 * 366 * 86400
"""However often the bench advances the clock, the DC's date stays far from `datetime`'s year 9999."""

ACTIVE_CONTRACT = (datetime.date(2020, 1, 1), datetime.date(2099, 12, 31))
EXPIRED_CONTRACT = (datetime.date(2020, 1, 1), datetime.date(2023, 12, 31))
"""Fixed dates: the DC's clock only moves forward from real time, so these stay expired."""

_DIR_MODE = 0o700
_PRIVATE_MODE = 0o600


class Contract(enum.StrEnum):
    """The contract states the bench can ask for (`POST /sim/v1/CloudSam`)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


@dataclass(frozen=True)
class StateDir:
    """The one place that knows the state directory's layout."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "dc.db"

    @property
    def ca_cert(self) -> Path:
        """The TLS CA the console's DC client trusts."""
        return self.root / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def sam_ca_cert(self) -> Path:
        return self.root / "sam-ca.pem"

    @property
    def sam_ca_key(self) -> Path:
        return self.root / "sam-ca.key"

    @property
    def bench_sam_file(self) -> Path:
        return self.root / "bench-sam.sam"

    @property
    def bench_nhi_sam_file(self) -> Path:
        """The physical SAM inside the bench's NHI dedicated reader (0600: it holds the SAM's private key)."""
        return self.root / "bench-nhi-sam.sam"

    @property
    def hca_trust(self) -> Path:
        """The bench HCA root and issuing CA certificates (PEM), for the console's HCA trust store."""
        return self.root / "hca-trust.pem"

    @property
    def vhc_issuer_key(self) -> Path:
        """The virtual health card issuer's RSA key (0600): signs the bench's virtual card tokens."""
        return self.root / "vhc-issuer.key"

    @property
    def vhc_issuer_cert(self) -> Path:
        """Its certificate (PEM): what the console trusts for virtual card tokens (`serve --vhc-issuer`)."""
        return self.root / "vhc-issuer.pem"

    @property
    def web_api_dir(self) -> Path:
        """The NHI web-API twin's own directory (sim/web_api: its TLS CA, signing key and SQLite state)."""
        return self.root / "web-api"

    @property
    def lock(self) -> Path:
        return self.root / ".prepare.lock"

    def ensure(self) -> None:
        """Create the directory 0700 if missing (it holds private keys); an existing one is the caller's."""
        if not self.root.is_dir():
            self.root.mkdir(mode=_DIR_MODE, parents=True)
            os.chmod(self.root, _DIR_MODE)  # exactly 0700, whatever the umask


def write_file(path: Path, data: bytes, mode: int = _PRIVATE_MODE) -> None:
    """Write-then-rename, created with its final mode: never half a file, never a key readable by others."""
    write_atomically(path, data, mode)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def render_time(moment: datetime.datetime) -> str:
    """The protocol's time format: ISO 8601 in +08:00, whole seconds (`2024-01-01T12:34:56+08:00`)."""
    return moment.astimezone(TAIPEI).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Hospital:
    hospital_id: str
    name: str
    short_name: str
    contract_start: datetime.date
    contract_end: datetime.date
    suspended: bool

    def contract_covers(self, day: datetime.date) -> bool:
        return self.contract_start <= day <= self.contract_end


class VhcRefusal(enum.StrEnum):
    """Why the DC refuses a virtual card call: the protocol's `error` names."""

    COUNT_EXCEEDED = "verificationCountExceeded"
    VOID = "virtualCardVoid"
    UNKNOWN_TRANSFER = "unknownTransfer"
    TRANSFER_USED = "transferUsed"
    OTHER_HOSPITAL = "otherHospital"
    TRANSFER_VOID = "transferVoid"


@dataclass(frozen=True)
class ImportedCard:
    """What an import hands over: the new token id and the exported card's data."""

    token_id: str
    card: dict[str, str] = field(repr=False)
    expires_at: int
    max_uses: int


@dataclass(frozen=True)
class SamRecord:
    sam_id: str
    hospital_id: str
    certificate_pem: str
    revoked: bool


_SCHEMA = """
CREATE TABLE IF NOT EXISTS hospitals (
    hospital_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    short_name TEXT NOT NULL,
    contract_start TEXT NOT NULL,
    contract_end TEXT NOT NULL,
    suspended INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sams (
    sam_id TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL REFERENCES hospitals(hospital_id),
    certificate TEXT NOT NULL,
    revoked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash BLOB PRIMARY KEY,
    sam_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce BLOB PRIMARY KEY,
    sam_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS card_auths (
    auth_id TEXT PRIMARY KEY,
    sam_id TEXT NOT NULL,
    expected_response BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    offset_seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    status_code INTEGER NOT NULL,
    remaining INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vhc_tokens (
    token_id TEXT PRIMARY KEY,
    uses INTEGER NOT NULL,
    max_uses INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    void INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vhc_transfers (
    transfer_id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    hospital_id TEXT NOT NULL,
    card TEXT,
    expires_at INTEGER NOT NULL,
    max_uses INTEGER NOT NULL,
    imported INTEGER NOT NULL
);
INSERT OR IGNORE INTO clock (id, offset_seconds) VALUES (1, 0);
"""


class DcState:
    """The simulator's SQLite state. Thread-safe: one connection, one lock, one transaction per change.

    Times inside are the DC's (real UTC plus the persisted clock offset), as
    POSIX seconds, so that advancing the clock expires sessions, nonces and
    card authentications exactly as waiting would.
    """

    def __init__(self, path: Path, wall_clock: Callable[[], datetime.datetime] = utc_now) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        # Created 0600 before SQLite opens it (its -wal and -shm files inherit the mode).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, _PRIVATE_MODE))
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._connection.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per commit; a power cut may lose the last changes, never corrupt the file.
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA foreign_keys=ON")
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: a read-then-write (take a nonce, count a fault down) is atomic even across processes."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    # -- the clock --------------------------------------------------------

    def _offset(self, db: sqlite3.Connection) -> float:
        return float(db.execute("SELECT offset_seconds FROM clock WHERE id = 1").fetchone()[0])

    def now(self) -> datetime.datetime:
        """The DC's clock: real UTC time plus the bench's offset."""
        with self._transaction() as db:
            offset = self._offset(db)
        return self._wall_clock() + datetime.timedelta(seconds=offset)

    def today(self) -> datetime.date:
        """The DC's date in its own zone: what contracts are checked against."""
        return self.now().astimezone(TAIPEI).date()

    def advance_clock(self, seconds: int) -> datetime.datetime:
        """Move the DC's clock forward (never back: the bench's expiry tests rely on monotonic time)."""
        if seconds < 0:
            raise ValueError("the DC's clock only moves forward")
        with self._transaction() as db:
            offset = self._offset(db) + seconds
            if offset > MAX_CLOCK_OFFSET_SECONDS:
                raise ValueError("the DC's clock cannot be advanced any further")
            db.execute("UPDATE clock SET offset_seconds = ? WHERE id = 1", (offset,))
        return self._wall_clock() + datetime.timedelta(seconds=offset)

    def _now_seconds(self, db: sqlite3.Connection) -> float:
        return self._wall_clock().timestamp() + self._offset(db)

    # -- hospitals and SAMs -----------------------------------------------

    def hospital(self, hospital_id: str) -> Hospital | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT hospital_id, name, short_name, contract_start, contract_end, suspended"
                " FROM hospitals WHERE hospital_id = ?",
                (hospital_id,),
            ).fetchone()
        if row is None:
            return None
        return Hospital(
            row[0],
            row[1],
            row[2],
            datetime.date.fromisoformat(row[3]),
            datetime.date.fromisoformat(row[4]),
            bool(row[5]),
        )

    def sam(self, sam_id: str) -> SamRecord | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT sam_id, hospital_id, certificate, revoked FROM sams WHERE sam_id = ?", (sam_id,)
            ).fetchone()
        if row is None:
            return None
        return SamRecord(row[0], row[1], row[2], bool(row[3]))

    def register_sam(
        self, sam_id: str, hospital_id: str, hospital_name: str, contract: Contract, certificate_pem: str
    ) -> None:
        """Register (or replace) a SAM for a hospital and set the hospital's contract state, atomically.

        A reissued SAM has a new key: its sessions, nonces and card
        authentications belong to the old one and end here, so a revocation or
        a contract change takes effect at the console's next DC call (1703,
        then a fresh login that meets the new state).
        """
        start, end = EXPIRED_CONTRACT if contract is Contract.EXPIRED else ACTIVE_CONTRACT
        suspended = contract is Contract.SUSPENDED
        revoked = contract is Contract.REVOKED
        with self._transaction() as db:
            db.execute(
                "INSERT INTO hospitals (hospital_id, name, short_name, contract_start, contract_end, suspended)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hospital_id) DO UPDATE SET name = excluded.name,"
                " short_name = excluded.short_name, contract_start = excluded.contract_start,"
                " contract_end = excluded.contract_end, suspended = excluded.suspended",
                (hospital_id, hospital_name, hospital_name, start.isoformat(), end.isoformat(), int(suspended)),
            )
            db.execute(
                "INSERT INTO sams (sam_id, hospital_id, certificate, revoked) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sam_id) DO UPDATE SET hospital_id = excluded.hospital_id,"
                " certificate = excluded.certificate, revoked = excluded.revoked",
                (sam_id, hospital_id, certificate_pem, int(revoked)),
            )
            for table in ("sessions", "nonces", "card_auths"):
                db.execute(f"DELETE FROM {table} WHERE sam_id = ?", (sam_id,))

    # -- nonces, sessions, card authentications ----------------------------

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        """Expired single-use entries are dropped whenever new ones are made, so the tables stay small."""
        for table in ("sessions", "nonces", "card_auths"):
            db.execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now,))

    def add_nonce(self, nonce: bytes, sam_id: str, lifetime: float) -> None:
        with self._transaction() as db:
            now = self._now_seconds(db)
            self._purge(db, now)
            db.execute(
                "INSERT INTO nonces (nonce, sam_id, expires_at) VALUES (?, ?, ?)", (nonce, sam_id, now + lifetime)
            )

    def take_nonce(self, nonce: bytes, sam_id: str) -> bool:
        """Consume a nonce: True once, if it was issued to this SAM and has not expired."""
        with self._transaction() as db:
            row = db.execute("SELECT sam_id, expires_at FROM nonces WHERE nonce = ?", (nonce,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM nonces WHERE nonce = ?", (nonce,))
            return bool(row[0] == sam_id and row[1] > self._now_seconds(db))

    def add_session(self, token_hash: bytes, sam_id: str, lifetime: float) -> datetime.datetime:
        """Store a session (by its token's hash); returns its expiry on the DC's clock."""
        with self._transaction() as db:
            now = self._now_seconds(db)
            self._purge(db, now)
            expires_at = now + lifetime
            db.execute(
                "INSERT INTO sessions (token_hash, sam_id, expires_at) VALUES (?, ?, ?)",
                (token_hash, sam_id, expires_at),
            )
        return datetime.datetime.fromtimestamp(expires_at, UTC)

    def session_sam(self, token_hash: bytes) -> str | None:
        """The SAM a live session belongs to, or None (unknown or expired: both are `sessionExpired`)."""
        with self._transaction() as db:
            row = db.execute("SELECT sam_id, expires_at FROM sessions WHERE token_hash = ?", (token_hash,)).fetchone()
            if row is None or row[1] <= self._now_seconds(db):
                return None
            return str(row[0])

    def add_card_auth(self, auth_id: str, sam_id: str, expected_response: bytes, lifetime: float) -> None:
        """Keep what the card must answer, not the card number: the state holds no personal data."""
        with self._transaction() as db:
            now = self._now_seconds(db)
            self._purge(db, now)
            db.execute(
                "INSERT INTO card_auths (auth_id, sam_id, expected_response, expires_at) VALUES (?, ?, ?, ?)",
                (auth_id, sam_id, expected_response, now + lifetime),
            )

    def take_card_auth(self, auth_id: str, sam_id: str) -> bytes | None:
        """Consume a card authentication: once, by the SAM that started it (any of its sessions), unexpired.

        Returns the answer the card must give, or None.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT sam_id, expected_response, expires_at FROM card_auths WHERE auth_id = ?", (auth_id,)
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM card_auths WHERE auth_id = ?", (auth_id,))
            if row[0] != sam_id or row[2] <= self._now_seconds(db):
                return None
            return bytes(row[1])

    # -- virtual health cards ------------------------------------------------

    def verify_virtual_hc(self, token_id: str, max_uses: int, expires_at: int) -> int | VhcRefusal:
        """Count one verification: the count so far, or why not (void: exported; count exceeded).

        The first call for a token id (or the import that made it) fixes its
        `max_uses` and `expires_at`; later calls' values are not looked at. A
        refused verification does not count.
        """
        with self._transaction() as db:
            row = db.execute("SELECT uses, max_uses, void FROM vhc_tokens WHERE token_id = ?", (token_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO vhc_tokens (token_id, uses, max_uses, expires_at, void) VALUES (?, 1, ?, ?, 0)",
                    (token_id, max_uses, expires_at),
                )
                return 1
            uses, limit, void = int(row[0]), int(row[1]), bool(row[2])
            if void:
                return VhcRefusal.VOID
            if uses >= limit:
                return VhcRefusal.COUNT_EXCEEDED
            db.execute("UPDATE vhc_tokens SET uses = uses + 1 WHERE token_id = ?", (token_id,))
            return uses + 1

    def export_virtual_hc(
        self,
        token_id: str,
        transfer_id: str,
        secret_hash: bytes,
        hospital_id: str,
        card: dict[str, str],
        expires_at: int,
        max_uses: int,
    ) -> VhcRefusal | None:
        """Void the token id and keep the card for one import by `hospital_id`; VOID if it was void already."""
        with self._transaction() as db:
            row = db.execute("SELECT void FROM vhc_tokens WHERE token_id = ?", (token_id,)).fetchone()
            if row is not None and row[0]:
                return VhcRefusal.VOID
            db.execute(
                "INSERT INTO vhc_tokens (token_id, uses, max_uses, expires_at, void) VALUES (?, 0, ?, ?, 1)"
                " ON CONFLICT (token_id) DO UPDATE SET void = 1",
                (token_id, max_uses, expires_at),
            )
            db.execute(
                "INSERT INTO vhc_transfers"
                " (transfer_id, secret_hash, hospital_id, card, expires_at, max_uses, imported)"
                " VALUES (?, ?, ?, ?, ?, ?, 0)",
                (transfer_id, secret_hash, hospital_id, json.dumps(card, ensure_ascii=False), expires_at, max_uses),
            )
        return None

    def import_virtual_hc(
        self, transfer_id: str, secret_hash: bytes, hospital_id: str, new_token_id: str
    ) -> ImportedCard | VhcRefusal:
        """Hand an exported card over once, to its own hospital, before it expires (the DC's clock).

        Checked in this order: the transfer is known and the secret's hash
        matches (UNKNOWN_TRANSFER), not imported yet (TRANSFER_USED), the same
        hospital (OTHER_HOSPITAL), not expired (TRANSFER_VOID). A refusal
        changes nothing. On success the transfer keeps no card data any more,
        and `new_token_id` starts with no verifications, the card's expiry and maximum.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT secret_hash, hospital_id, card, expires_at, max_uses, imported FROM vhc_transfers"
                " WHERE transfer_id = ?",
                (transfer_id,),
            ).fetchone()
            if row is None or not hmac.compare_digest(bytes(row[0]), secret_hash):
                return VhcRefusal.UNKNOWN_TRANSFER
            if row[5]:
                return VhcRefusal.TRANSFER_USED
            if row[1] != hospital_id:
                return VhcRefusal.OTHER_HOSPITAL
            expires_at, max_uses = int(row[3]), int(row[4])
            if expires_at <= self._now_seconds(db):
                return VhcRefusal.TRANSFER_VOID
            db.execute("UPDATE vhc_transfers SET imported = 1, card = NULL WHERE transfer_id = ?", (transfer_id,))
            db.execute(
                "INSERT INTO vhc_tokens (token_id, uses, max_uses, expires_at, void) VALUES (?, 0, ?, ?, 0)",
                (new_token_id, max_uses, expires_at),
            )
            return ImportedCard(new_token_id, json.loads(row[2]), expires_at, max_uses)

    # -- faults -------------------------------------------------------------

    def set_fault(self, status_code: int, count: int) -> None:
        """The next `count` DC calls fail with `status_code`; replaces any fault still pending."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO faults (id, status_code, remaining) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE"
                " SET status_code = excluded.status_code, remaining = excluded.remaining",
                (status_code, count),
            )

    def take_fault(self) -> int | None:
        """Count one DC call against the pending fault: its status code, or None when none is pending."""
        with self._transaction() as db:
            row = db.execute("SELECT status_code, remaining FROM faults WHERE id = 1").fetchone()
            if row is None or row[1] <= 0:
                return None
            if row[1] == 1:
                db.execute("DELETE FROM faults WHERE id = 1")
            else:
                db.execute("UPDATE faults SET remaining = remaining - 1 WHERE id = 1")
            return int(row[0])
