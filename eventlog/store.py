"""The storage contract shared by the SQLite store and the in-memory store.

Both implementations run the same contract test suite
(tests/unit/test_event_store_contract.py), so the broker can be unit-tested
against the in-memory store and trusted against SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as stored: its meaning lives in `payload`, which the store never reads."""

    seq: int
    recorded_at: str
    type: str
    version: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One `/api/` call: the four fields the spec's Record API shows, its order, and who called.

    `caller` is the calling page's allowed `Origin`, or `native` for a request without one (a HIS, curl);
    None for a call recorded before the log kept callers (schema v3). The Record API does not show it."""

    seq: int
    url: str
    uuid: str
    timestamp: str
    status_code: int
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A sealed segment: which rows moved to which archive, and the chain hash they end on.

    `file` is relative to the live database's directory (so the log can be moved
    as a whole). A table with no rows in the segment has None for its seqs and hash.
    """

    id: int
    file: str
    first_event_seq: int | None
    last_event_seq: int | None
    last_event_hash: bytes | None
    first_call_seq: int | None
    last_call_seq: int | None
    last_call_hash: bytes | None
    sealed_at: str


class StoreWriteError(Exception):
    """The store could not write (disk full, read-only, I/O error): nothing pending was committed.

    Raised by an append or `commit()`; the store has rolled its transaction back already and refuses appends
    (and `rollback_to`) until `rollback()`, so that rows written after the failure can never be committed on
    top of ones that were lost. Its message is the storage's, never a value.
    """


@dataclass(frozen=True, slots=True)
class StoreMark:
    """Where the pending transaction stood when `mark()` was called: `rollback_to` undoes every append after.

    `token` is the store's own (SQLite: a savepoint's name, or None when nothing was pending)."""

    last_event_seq: int
    last_call_seq: int
    token: object = None


class EventStore(Protocol):
    """Append-only storage: nothing is ever updated or deleted through this interface.

    Appends go into the current transaction; `commit()` makes everything appended
    since the last commit durable at once (group commit), so the broker can answer
    a batch of requests after a single fsync.
    """

    def append_event(self, type: str, version: int, payload: bytes, recorded_at: str) -> int:
        """Append an event; return its sequence number (1, 2, 3, ...)."""
        ...

    def append_call(self, url: str, uuid: str, timestamp: str, status_code: int, caller: str | None = None) -> int:
        """Append a call record; return its sequence number (1, 2, 3, ...)."""
        ...

    def commit(self) -> None:
        """Make every append since the previous commit durable."""
        ...

    def events(self, after: int = 0) -> Iterator[StoredEvent]:
        """Every committed-or-pending event with seq > after, oldest first (streams)."""
        ...

    def calls_newest_first(self, skip: int, take: int, after_seq: int = 0) -> list[CallRecord]:
        """Call records with seq > after_seq, newest first, skipping `skip`, at most `take`."""
        ...

    def last_call_seq(self) -> int:
        """The highest call-record sequence number so far, 0 if none."""
        ...

    def last_event_seq(self) -> int:
        """The highest event sequence number so far (committed or pending), 0 if none."""
        ...

    def mark(self) -> StoreMark:
        """Remember the pending transaction's current end, to undo what follows (a command that failed)."""
        ...

    def rollback_to(self, mark: StoreMark) -> None:
        """Undo the appends after `mark`; raises StoreWriteError if a write failed meanwhile (all is gone:
        only `rollback()` then)."""
        ...

    def release(self, mark: StoreMark) -> None:
        """Keep what was appended after `mark`: forget the mark (a savepoint), so marks do not pile up."""
        ...

    def rollback(self) -> None:
        """Undo everything not committed, and clear a failure so appends are taken again."""
        ...

    def close(self) -> None: ...
