"""The console's state as a pure fold of the event log.

`project(events)` from an empty state gives the same result as the running
broker's state, which is what makes a broker restart (replaying the log)
indistinguishable from no restart at all.  Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from broker.events import (
    CallRecordCleared,
    CardInserted,
    CardRemoved,
    DefaultReaderCleared,
    DefaultReaderSet,
    Event,
    ReaderAttached,
    ReaderDetached,
    SimCardPut,
    SimCardTaken,
    SimReaderPlugged,
    SimReaderUnplugged,
    WorkerLost,
)


@dataclass(frozen=True, slots=True)
class CardInReader:
    atr: str
    kind: str
    session: int


@dataclass(frozen=True, slots=True)
class ReaderState:
    name: str
    backend: str
    card: CardInReader | None = None


@dataclass(frozen=True, slots=True)
class SamState:
    status: int = 0
    type: int = 0
    expire_time: str | None = None


@dataclass(frozen=True, slots=True)
class HpcState:
    status: int = 0
    type: int = 0
    expire_time: str | None = None


@dataclass(frozen=True, slots=True)
class HcState:
    status: int = 0
    type: int = 0
    expire_time: str | None = None
    has_pin: bool | None = None
    verified_pin: bool | None = None


def _no_readers() -> Mapping[str, ReaderState]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ConsoleState:
    readers: Mapping[str, ReaderState] = field(default_factory=_no_readers)
    default_reader: str | None = None
    initialized: bool = False
    device_name: str | None = None
    reader_in_use: str | None = None
    sam: SamState = field(default_factory=SamState)
    hpc: HpcState = field(default_factory=HpcState)
    hc: HcState = field(default_factory=HcState)
    record_cleared_through: int = 0
    sim_readers: Mapping[str, str | None] = field(default_factory=_no_readers)
    """The bench's in-process readers and the profile of the card put in each (None: empty)."""


def _with_reader(state: ConsoleState, reader: ReaderState) -> ConsoleState:
    readers = dict(state.readers)
    readers[reader.name] = reader
    return replace(state, readers=MappingProxyType(readers))


def _without_reader(state: ConsoleState, name: str) -> ConsoleState:
    readers = dict(state.readers)
    readers.pop(name, None)
    return replace(state, readers=MappingProxyType(readers))


def _with_sim_reader(state: ConsoleState, reader: str, profile: str | None, *, present: bool = True) -> ConsoleState:
    sim_readers = dict(state.sim_readers)
    if present:
        sim_readers[reader] = profile
    else:
        sim_readers.pop(reader, None)
    return replace(state, sim_readers=MappingProxyType(sim_readers))


def apply(state: ConsoleState, event: Event) -> ConsoleState:
    """The state after `event`; events about unknown readers are facts too, so they attach it."""
    if isinstance(event, ReaderAttached):
        existing = state.readers.get(event.reader)
        card = existing.card if existing else None
        return _with_reader(state, ReaderState(event.reader, event.backend, card))
    if isinstance(event, ReaderDetached):
        return _without_reader(state, event.reader)
    if isinstance(event, WorkerLost):
        reader = state.readers.get(event.reader)
        return state if reader is None else _with_reader(state, replace(reader, card=None))
    if isinstance(event, CardInserted):
        reader = state.readers.get(event.reader) or ReaderState(event.reader, "unknown")
        return _with_reader(state, replace(reader, card=CardInReader(event.atr, event.kind, event.session)))
    if isinstance(event, CardRemoved):
        reader = state.readers.get(event.reader)
        return state if reader is None else _with_reader(state, replace(reader, card=None))
    if isinstance(event, CallRecordCleared):
        return replace(state, record_cleared_through=max(state.record_cleared_through, event.through_seq))
    if isinstance(event, DefaultReaderSet):
        return replace(state, default_reader=event.reader)
    if isinstance(event, DefaultReaderCleared):
        return replace(state, default_reader=None)
    if isinstance(event, SimReaderPlugged):
        return _with_sim_reader(state, event.reader, state.sim_readers.get(event.reader))
    if isinstance(event, SimReaderUnplugged):
        return _with_sim_reader(state, event.reader, None, present=False)
    if isinstance(event, SimCardPut):
        return _with_sim_reader(state, event.reader, event.profile)
    if isinstance(event, SimCardTaken):
        if event.reader not in state.sim_readers:
            return state
        return _with_sim_reader(state, event.reader, None)
    raise TypeError(f"not an event: {event!r}")


def project(events: Iterable[Event], initial: ConsoleState | None = None) -> ConsoleState:
    state = initial if initial is not None else ConsoleState()
    for event in events:
        state = apply(state, event)
    return state


def render_status(state: ConsoleState) -> dict[str, Any]:
    """The `status` object of `GET /api/common/v1/Status`, field names and nesting as the spec has them."""
    return {
        "hc": {
            "status": state.hc.status,
            "type": state.hc.type,
            "expireTime": state.hc.expire_time,
            "hasPin": state.hc.has_pin,
            "verifiedPin": state.hc.verified_pin,
        },
        "hpc": {"status": state.hpc.status, "type": state.hpc.type, "expireTime": state.hpc.expire_time},
        "initialized": state.initialized,
        "name": state.device_name,
        "readerName": state.reader_in_use,
        "sam": {"status": state.sam.status, "type": state.sam.type, "expireTime": state.sam.expire_time},
    }


def snapshot(state: ConsoleState) -> dict[str, Any]:
    """The whole state as plain JSON-able data, for comparing a replay with the running console."""
    return {
        "readers": {
            name: {
                "backend": reader.backend,
                "card": None if reader.card is None else {
                    "atr": reader.card.atr, "kind": reader.card.kind, "session": reader.card.session,
                },
            }
            for name, reader in sorted(state.readers.items())
        },
        "defaultReader": state.default_reader,
        "recordClearedThrough": state.record_cleared_through,
        "simReaders": dict(sorted(state.sim_readers.items())),
        "status": render_status(state),
    }
