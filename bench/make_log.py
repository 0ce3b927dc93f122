"""Build a large, valid (hash-chained) event log quickly, for scale tests and benchmarks."""

from __future__ import annotations

import json
import time
from pathlib import Path

from eventlog import format_record_timestamp
from eventlog.sqlite_store import SqliteEventStore

BATCH = 10_000


def make_log(database: Path, events: int, calls: int = 0, durability: str = "normal") -> None:
    """`events` CardInserted/CardRemoved pairs-ish and `calls` Status calls, committed in batches."""
    store = SqliteEventStore(database, durability=durability)
    try:
        base_ns = time.time_ns() - (events + calls) * 1_000_000
        for index in range(events):
            if index % 2 == 0:
                payload = {
                    "reader": "Reader 0",
                    "atr": "3B8980018057424E43484843" + "96",
                    "kind": "hc",
                    "session": index,
                    "card_ref": f"card:{index:032x}",
                }
                kind = "CardInserted"
                version = 2
            else:
                payload = {"reader": "Reader 0", "session": index - 1, "reason": "removed"}
                kind, version = "CardRemoved", 1
            data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
            store.append_event(kind, version, data, format_record_timestamp(base_ns + index * 1_000_000))
            if index % BATCH == BATCH - 1:
                store.commit()
        for index in range(calls):
            store.append_call(
                "/api/common/v1/Status",
                f"00000000-0000-4000-8000-{index:012d}",
                format_record_timestamp(base_ns + (events + index) * 1_000_000),
                0,
            )
            if index % BATCH == BATCH - 1:
                store.commit()
        store.commit()
    finally:
        store.close()
