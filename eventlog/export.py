"""Export event and call streams as JSON Lines or CSV, row by row.

Why row by row: a log can hold millions of rows; exporting must take constant
memory and let a CLI show progress. Field names for calls follow the Record API
(`statusCode`), so an export reads like what a HIS saw.

Event payloads are UTF-8 JSON by contract: JSON Lines embeds the parsed value,
CSV the JSON text as stored. A payload that is not valid UTF-8 JSON (a damaged
or foreign row) is not dropped: `payload` is then null/empty and
`payload_base64` carries the exact bytes.
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Callable, Iterable
from typing import Any, Final, TextIO

from eventlog.store import CallRecord, StoredEvent

EVENT_FIELDS: Final = ("seq", "recorded_at", "type", "version", "payload", "payload_base64")
CALL_FIELDS: Final = ("seq", "url", "uuid", "timestamp", "statusCode", "caller")
PROGRESS_EVERY: Final = 1_000

Progress = Callable[[int], None]


def _decode_payload(payload: bytes) -> tuple[str | None, Any]:
    """(JSON text, parsed value), or (None, None) when the payload isn't UTF-8 JSON."""
    try:
        text = payload.decode("utf-8")
        return text, json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None, None


def _event_dict(event: StoredEvent, embed: bool) -> dict[str, Any]:
    text, value = _decode_payload(event.payload)
    return {
        "seq": event.seq,
        "recorded_at": event.recorded_at,
        "type": event.type,
        "version": event.version,
        "payload": (value if embed else text) if text is not None else None,
        "payload_base64": None if text is not None else base64.b64encode(event.payload).decode(),
    }


def _call_dict(call: CallRecord) -> dict[str, Any]:
    return {
        "seq": call.seq,
        "url": call.url,
        "uuid": call.uuid,
        "timestamp": call.timestamp,
        "statusCode": call.status_code,
        "caller": call.caller,
    }


def _as_dict(item: StoredEvent | CallRecord, embed: bool) -> dict[str, Any]:
    if isinstance(item, StoredEvent):
        return _event_dict(item, embed)
    if isinstance(item, CallRecord):
        return _call_dict(item)
    raise TypeError(f"cannot export a {type(item).__name__}")


def write_jsonl(
    items: Iterable[StoredEvent | CallRecord],
    out: TextIO,
    progress: Progress | None = None,
    every: int = PROGRESS_EVERY,
) -> int:
    """One JSON object per line; returns the number of rows written.

    `progress(count)` is called every `every` rows and once at the end.
    Events without a base64 fallback omit `payload_base64`.
    """
    count = 0
    for item in items:
        record = _as_dict(item, embed=True)
        if record.get("payload_base64", 0) is None:
            del record["payload_base64"]
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
    if progress is not None:
        progress(count)
    return count


def write_csv(
    items: Iterable[StoredEvent | CallRecord],
    out: TextIO,
    progress: Progress | None = None,
    every: int = PROGRESS_EVERY,
) -> int:
    """A header row then one row per item; the kind (events or calls) is set by the first item.

    Open `out` with newline="" (the csv module's rule). Values are written
    unaltered: spreadsheet users should import rather than open exports, since
    a URL or type beginning with "=" is data here, not a formula.
    """
    count = 0
    writer: csv.DictWriter[str] | None = None
    kind: type | None = None
    for item in items:
        if writer is None:
            kind = type(item)
            fields = EVENT_FIELDS if isinstance(item, StoredEvent) else CALL_FIELDS
            writer = csv.DictWriter(out, fieldnames=fields)
            writer.writeheader()
        elif type(item) is not kind:
            raise TypeError("a CSV export holds either events or calls, not both")
        record = _as_dict(item, embed=False)
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
    if progress is not None:
        progress(count)
    return count
