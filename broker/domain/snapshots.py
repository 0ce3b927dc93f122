"""The snapshot format: the folded state at one event of the log, so that a start need not fold the whole log.

A snapshot is a cache, never a source of truth: it names the event sequence number it covers and that
event's chain hash, so it can be checked against the log before it is trusted, and it carries a checksum
over its own content and a schema version. Whatever fails a check is refused (`SnapshotRejected`, with the
reason a log line can show) and the console folds the log instead. Pure: bytes in, bytes out.

The format, one JSON object (docs/sqlite-schema.md, "Snapshots"):
`{"schema": 1, "seq": N, "chainHash": "<hex>", "writtenAt": "...", "state": {...}, "checksum": "<hex>"}`,
where `state` is `broker.domain.state.snapshot(state)` and `checksum` is the SHA-256 of the canonical JSON
(sorted keys, no spaces, UTF-8) of the other fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from broker.domain.state import ConsoleState, restore, snapshot

SNAPSHOT_SCHEMA: Final = 1
"""Raised whenever `snapshot()`/`restore()` change shape: a snapshot of another schema is ignored (replayed)."""


class SnapshotRejected(ValueError):
    """A snapshot that must not be trusted; the message says why, without quoting its content."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    """The last event folded into `state` (0: none)."""
    chain_hash: bytes
    """The events chain's hash at `seq`: ties the snapshot to one log, not just to a sequence number."""
    state: ConsoleState


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_snapshot(state: ConsoleState, seq: int, chain_hash: bytes, written_at: str) -> bytes:
    """The bytes of a snapshot file for `state` after event `seq`."""
    body: dict[str, Any] = {
        "schema": SNAPSHOT_SCHEMA,
        "seq": seq,
        "chainHash": chain_hash.hex(),
        "writtenAt": written_at,
        "state": snapshot(state),
    }
    body["checksum"] = hashlib.sha256(_canonical(body)).hexdigest()
    return _canonical(body) + b"\n"


def decode_snapshot(raw: bytes) -> Snapshot:
    """A snapshot file's content, checked for itself (JSON, checksum, schema, shape); not yet against the log."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SnapshotRejected(f"not JSON ({error.__class__.__name__})") from error
    if not isinstance(body, dict):
        raise SnapshotRejected("not a JSON object")
    checksum = body.pop("checksum", None)
    if not isinstance(checksum, str) or hashlib.sha256(_canonical(body)).hexdigest() != checksum:
        raise SnapshotRejected("bad checksum")
    schema = body.get("schema")
    if schema != SNAPSHOT_SCHEMA:
        raise SnapshotRejected(f"schema version {schema!r}, this console reads {SNAPSHOT_SCHEMA}")
    seq, chain_hash = body.get("seq"), body.get("chainHash")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(chain_hash, str):
        raise SnapshotRejected("no valid seq or chainHash")
    try:
        return Snapshot(seq, bytes.fromhex(chain_hash), restore(body["state"]))
    except (KeyError, ValueError, TypeError) as error:
        raise SnapshotRejected(f"state does not fit this console's shape ({error.__class__.__name__})") from error
