"""The hash chain's byte-level rules, kept pure so the store, `verify` and an
auditor's own re-implementation all agree on exactly one definition.

Canonical bytes of a row (see docs/sqlite-schema.md):

    domain tag | seq (8 bytes, big-endian, signed) | fields in column order

where every text or bytes field is a 4-byte big-endian length followed by its
bytes (text as UTF-8) and every integer is 8 bytes big-endian signed. The
length prefixes make the encoding unambiguous (no two different rows share
canonical bytes, whatever the fields contain), and the domain tag keeps an
event's bytes from ever being mistaken for a call's.

A row's hash is SHA-256(previous row's hash + canonical bytes); the first row
of each chain links to GENESIS.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

GENESIS: Final = bytes(32)
"""The `prev_hash` of seq 1 in each chain."""

EVENT_DOMAIN: Final = b"nhi-console/event/v1\0"
CALL_DOMAIN: Final = b"nhi-console/call/v1\0"
CALLER_CALL_DOMAIN: Final = b"nhi-console/call/v2\0"
"""A call recorded with its caller (schema v3): the caller is one more field, under its own tag, so a row
with a caller can never hash like one without, and rows recorded before keep the bytes they were chained with."""

_INT: Final = struct.Struct(">q")
_LEN: Final = struct.Struct(">I")


def _field(value: str | bytes | bytearray | memoryview) -> bytes:
    """Length-prefix one text/bytes field; text is hashed as its UTF-8 bytes (what SQLite stores)."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        # bytes(5) would silently hash as five NULs: refuse anything else.
        raise TypeError("text or bytes field expected")
    if len(data) > 0xFFFF_FFFF:
        raise ValueError("field longer than 4 GiB cannot be length-prefixed")
    return _LEN.pack(len(data)) + data


def _int(value: int) -> bytes:
    # bool is an int subclass but never a legitimate stored value: refuse it
    # so a tampered or mistyped row can't silently hash like 0/1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("integer field expected")
    return _INT.pack(value)


def event_bytes(
    seq: int,
    recorded_at: str | bytes,
    type: str | bytes,
    version: int,
    payload: bytes | bytearray | memoryview,
) -> bytes:
    """Canonical bytes of an `events` row. Text may be given as its UTF-8 bytes (raw reads)."""
    return b"".join((EVENT_DOMAIN, _int(seq), _field(recorded_at), _field(type), _int(version), _field(payload)))


def call_bytes(
    seq: int,
    url: str | bytes,
    uuid: str | bytes,
    timestamp: str | bytes,
    status_code: int,
    caller: str | bytes | None = None,
) -> bytes:
    """Canonical bytes of a `calls` row. Text may be given as its UTF-8 bytes (raw reads).

    `caller` NULL (a row recorded before schema v3 kept callers): the v1 bytes, unchanged; otherwise the v2
    tag and the caller as a sixth field."""
    fields = (_int(seq), _field(url), _field(uuid), _field(timestamp), _int(status_code))
    if caller is None:
        return b"".join((CALL_DOMAIN, *fields))
    return b"".join((CALLER_CALL_DOMAIN, *fields, _field(caller)))


def link(prev_hash: bytes, canonical: bytes) -> bytes:
    """SHA-256(prev_hash + canonical): a row's hash commits to every row before it."""
    return hashlib.sha256(prev_hash + canonical).digest()
