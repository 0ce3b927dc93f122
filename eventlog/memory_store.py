"""An in-memory `EventStore` for unit tests of the broker.

It mirrors SqliteEventStore's behaviour (the shared contract suite checks
that), including the parts that matter to crash-recovery logic:

- pending (uncommitted) appends are visible to this store's own reads, as a
  SQLite connection sees its own open transaction;
- `crash_and_reopen()` stands in for the process dying and restarting: the new
  store holds only what was committed, so a test can show that unanswered work
  is lost and answered work is not;
- as in SQLite without AUTOINCREMENT, sequence numbers of rolled-back appends
  are handed out again (no one ever saw them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from eventlog.store import CallRecord, StoredEvent, StoreMark, StoreWriteError


class MemoryEventStore:
    """Two lists with a "committed up to" mark each; seq n lives at index n - 1."""

    def __init__(self) -> None:
        self._events: list[StoredEvent] = []
        self._calls: list[CallRecord] = []
        self._committed_events = 0
        self._committed_calls = 0
        self._closed = False
        self._failed = False
        self.fail_writes: str | None = None
        """Set by a test to make every append and commit fail with this message, as a full disk would."""

    def append_event(self, type: str, version: int, payload: bytes, recorded_at: str) -> int:
        """Same validation as SQLite's store, so a test can't pass here and fail there."""
        self._check_open()
        _check_payload(payload)
        self._check_writable()
        seq = len(self._events) + 1
        # bytes(): a caller mutating its bytearray afterwards must not change history.
        self._events.append(StoredEvent(seq, recorded_at, type, version, bytes(payload)))
        return seq

    def append_call(self, url: str, uuid: str, timestamp: str, status_code: int, caller: str | None = None) -> int:
        self._check_open()
        self._check_writable()
        seq = len(self._calls) + 1
        self._calls.append(CallRecord(seq, url, uuid, timestamp, status_code, caller))
        return seq

    def commit(self) -> None:
        self._check_open()
        if self._events[self._committed_events :] or self._calls[self._committed_calls :]:
            self._check_writable()
        elif self._failed:
            raise StoreWriteError("an earlier write failed; roll back first")
        self._committed_events = len(self._events)
        self._committed_calls = len(self._calls)

    def events(self, after: int = 0) -> Iterator[StoredEvent]:
        """Like SQLite's: a "catch up" read that also yields events appended while it runs."""
        self._check_open()
        index = max(after, 0)
        while index < len(self._events):
            yield self._events[index]
            index += 1

    def calls_newest_first(self, skip: int, take: int, after_seq: int = 0) -> list[CallRecord]:
        """Slice by index (seq n is at n - 1) rather than filter: same cost profile as the PK walk."""
        self._check_open()
        if skip < 0 or take < 0:
            raise ValueError(f"skip and take must be >= 0 (skip={skip}, take={take})")
        high = len(self._calls) - skip  # index bound, exclusive
        low = max(after_seq, 0, high - take)  # index bound, inclusive
        if high <= low:
            return []
        return self._calls[low:high][::-1]

    def last_call_seq(self) -> int:
        self._check_open()
        return len(self._calls)

    def last_event_seq(self) -> int:
        self._check_open()
        return len(self._events)

    def seal(self, through_event_seq: int, through_call_seq: int, archive_dir: Path) -> None:
        """Archives need files; broker tests that seal use SqliteEventStore."""
        raise NotImplementedError("MemoryEventStore does not seal segments")

    def close(self) -> None:
        """Roll back anything uncommitted, like SqliteEventStore.close(); idempotent."""
        if self._closed:
            return
        self._rollback()
        self._closed = True

    def crash_and_reopen(self) -> MemoryEventStore:
        """Simulate the process dying now and restarting: only committed work survives.

        This store is closed afterwards (the process that owned it is gone), so a
        test that keeps using the old reference fails loudly.
        """
        self._check_open()
        survivor = MemoryEventStore()
        survivor._events = self._events[: self._committed_events]
        survivor._calls = self._calls[: self._committed_calls]
        survivor.commit()
        self._closed = True
        self._events = []
        self._calls = []
        return survivor

    def mark(self) -> StoreMark:
        return StoreMark(len(self._events), len(self._calls))

    def rollback_to(self, mark: StoreMark) -> None:
        if self._failed:
            raise StoreWriteError("an earlier write failed: the whole transaction is gone")
        del self._events[mark.last_event_seq :]
        del self._calls[mark.last_call_seq :]

    def release(self, mark: StoreMark) -> None:
        """Nothing to free: a mark here is two lengths."""

    def rollback(self) -> None:
        self._rollback()
        self._failed = False

    def _check_writable(self) -> None:
        """Like SQLite's store: a failed write drops the whole transaction and refuses appends until rollback."""
        if self._failed:
            raise StoreWriteError("an earlier write failed; roll back first")
        if self.fail_writes is not None:
            self._rollback()
            self._failed = True
            raise StoreWriteError(self.fail_writes)

    def _rollback(self) -> None:
        del self._events[self._committed_events :]
        del self._calls[self._committed_calls :]

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the event store is closed")


def _check_payload(payload: bytes) -> None:
    """Module-level because `append_event`'s parameter named `type` hides the builtin."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
