"""Domain events: facts in the past tense, the only thing the state is folded from.

Each event type has a version; its payload is canonical JSON (sorted keys, no
spaces) so that the bytes stored are stable and readable with the sqlite3 CLI.
Personal data never goes into an event: cards are identified by their ATR and
the worker's card session number, not by card or ID numbers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, ClassVar, Union


@dataclass(frozen=True, slots=True)
class ReaderAttached:
    """A reader's worker registered with the broker for the first time (or after a detach)."""

    VERSION: ClassVar[int] = 1
    reader: str
    backend: str


@dataclass(frozen=True, slots=True)
class ReaderDetached:
    """A reader is no longer wanted or no longer present: its worker was stopped."""

    VERSION: ClassVar[int] = 1
    reader: str
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """A reader's worker died or went silent; what its card was doing is no longer known."""

    VERSION: ClassVar[int] = 1
    reader: str
    reason: str


@dataclass(frozen=True, slots=True)
class CardInserted:
    """A card appeared in a reader; `session` numbers insertions so a swap is never missed.

    Version 2 added `card_ref`, the installation's keyed hash of the card number (None when the
    card could not be read), so an auditor can follow one card through the log.
    """

    VERSION: ClassVar[int] = 2
    reader: str
    atr: str
    kind: str
    session: int
    card_ref: str | None = None


@dataclass(frozen=True, slots=True)
class CardRemoved:
    VERSION: ClassVar[int] = 1
    reader: str
    session: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallRecordCleared:
    """`DELETE /api/common/v1/Record`: the record is hidden up to `through_seq`, never deleted."""

    VERSION: ClassVar[int] = 1
    through_seq: int


@dataclass(frozen=True, slots=True)
class DefaultReaderSet:
    """`POST .../PcscReader/Default` or `AutoDetected`: card operations go to this reader first."""

    VERSION: ClassVar[int] = 1
    reader: str


@dataclass(frozen=True, slots=True)
class DefaultReaderCleared:
    VERSION: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class SimReaderPlugged:
    """The bench plugged in one of its in-process virtual readers (only ever in a `--sim` log)."""

    VERSION: ClassVar[int] = 1
    reader: str


@dataclass(frozen=True, slots=True)
class SimReaderUnplugged:
    VERSION: ClassVar[int] = 1
    reader: str


@dataclass(frozen=True, slots=True)
class SimCardPut:
    """The bench put a fresh card of `profile` in a virtual reader (a profile name, not personal data)."""

    VERSION: ClassVar[int] = 1
    reader: str
    profile: str


@dataclass(frozen=True, slots=True)
class SimCardTaken:
    VERSION: ClassVar[int] = 1
    reader: str


Event = Union[
    ReaderAttached, ReaderDetached, WorkerLost, CardInserted, CardRemoved, CallRecordCleared,
    DefaultReaderSet, DefaultReaderCleared, SimReaderPlugged, SimReaderUnplugged, SimCardPut, SimCardTaken,
]

EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ReaderAttached, ReaderDetached, WorkerLost, CardInserted, CardRemoved, CallRecordCleared,
        DefaultReaderSet, DefaultReaderCleared, SimReaderPlugged, SimReaderUnplugged, SimCardPut, SimCardTaken,
    )
}


class UnknownEvent(ValueError):
    """A stored event this version of the console cannot read."""


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # CardInserted v1 -> v2: logs written before card pseudonyms did not know the card.
    ("CardInserted", 1): lambda data: {**data, "card_ref": None},
}
"""(type, stored version) -> the payload one version up. Old events are never rewritten in the log
(that would break its hash chain); they are upcast each time they are read."""


def encode(event: Event) -> tuple[str, int, bytes]:
    """The (type, version, payload) triple the event store keeps."""
    payload = json.dumps(asdict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return type(event).__name__, type(event).VERSION, payload.encode("utf-8")


def decode(type_name: str, version: int, payload: bytes) -> Event:
    """Rebuild an event from the store; raises UnknownEvent for types or versions we cannot read."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEvent(f"unknown event type {type_name!r}")
    if version > cls.VERSION or version < 1:
        raise UnknownEvent(f"{type_name} version {version} is not readable by this console")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnknownEvent(f"{type_name} payload is not JSON") from error
    if not isinstance(data, dict):
        raise UnknownEvent(f"{type_name} payload is not a JSON object")
    while version < cls.VERSION:
        upcast = UPCASTERS.get((type_name, version))
        if upcast is None:
            raise UnknownEvent(f"{type_name} version {version} has no upcaster")
        data, version = upcast(data), version + 1
    names = {field.name for field in fields(cls)}
    if set(data) != names:
        raise UnknownEvent(f"{type_name} payload has fields {sorted(data)}, expected {sorted(names)}")
    return cls(**data)
