"""The console's state as a pure fold of the event log.

`project(events)` from an empty state gives the same result as the running
broker's state, which is what makes a broker restart (replaying the log)
indistinguishable from no restart at all.  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from broker.domain.events import (
    AgentEnrolled,
    AgentRemoved,
    CallRecordCleared,
    CallRefused,
    CardAuthenticated,
    CardAuthenticationFailed,
    CardDataRead,
    CardDetected,
    CardInserted,
    CardLoggedOut,
    CardRemoved,
    CardSessionResumed,
    CloudSamImported,
    CloudSamRemoved,
    CorsHostAllowed,
    CorsHostRemoved,
    DefaultReaderCleared,
    DefaultReaderSet,
    Event,
    HcHpcAuthenticated,
    HcNotesUpdated,
    HcPinRejected,
    HcPinRemoved,
    HcPinSet,
    HcPinStateRead,
    HcPinVerified,
    HpcAuthenticationEnded,
    HpcAuthenticationExpired,
    HpcPinChanged,
    HpcPinRejected,
    HpcPinReset,
    HpcPinVerified,
    HpcPukRejected,
    MobileHcaLoggedIn,
    MobileHcaRejected,
    PhysicalSamIdentified,
    ReaderAttached,
    ReaderDetached,
    SamLoggedOut,
    SamSessionExpired,
    SamVerificationFailed,
    SamVerified,
    SessionFinalized,
    SessionInitialized,
    SimCardPut,
    SimCardTaken,
    SimClockAdvanced,
    SimReaderPlugged,
    SimReaderUnplugged,
    VirtualHcExpired,
    VirtualHcExported,
    VirtualHcRejected,
    VirtualHcVerified,
    WorkerLost,
)
from contract.host_names import DEFAULT_CORS_HOSTS

VIRTUAL_HC = 2

SAM_CLOUD = 1
SAM_PHYSICAL = 2
REFUSED_BY_DC = frozenset({1301, 1302, 1303, 1304})
"""Verification outcomes that mean the SAM is not verified any more (the others say nothing about it)."""


@dataclass(frozen=True, slots=True)
class CardInReader:
    atr: str
    kind: str
    session: int
    card_ref: str | None = None
    card_type: int | None = None


@dataclass(frozen=True, slots=True)
class ReaderState:
    name: str
    backend: str
    card: CardInReader | None = None


@dataclass(frozen=True, slots=True)
class PhysicalSamIdentity:
    """The public identity of the SAM inside an NHI dedicated reader (what `sam/v1/Basic` answers)."""

    port: str
    sam_id: str
    hospital_id: str
    hospital_name: str
    hospital_short_name: str


@dataclass(frozen=True, slots=True)
class SamState:
    status: int = 0
    type: int = 0
    expire_time: str | None = None
    physical: PhysicalSamIdentity | None = None
    """Set for a session on an NHI dedicated reader, once its SAM was read."""


@dataclass(frozen=True, slots=True)
class HpcState:
    status: int = 0
    type: int = 0
    expire_time: str | None = None
    reader: str | None = None
    session: int | None = None
    """Which insertion of which card the level belongs to: another card is another level."""
    card_ref: str | None = None
    """Whose authentication it is (the card's pseudonym, or the mobile HCA holder's): level 3 outlives the
    card's removal until `expire_time`, and a different staff card ends it."""
    pin_session: int | None = None
    """The insertion in which the PIN was verified: only then can the card itself sign."""


@dataclass(frozen=True, slots=True)
class HcState:
    status: int = 0
    type: int = 0
    expire_time: str | None = None
    has_pin: bool | None = None
    verified_pin: bool | None = None
    reader: str | None = None
    session: int | None = None
    card_ref: str | None = None
    """A virtual card's pseudonym (it has no reader); None for a physical card."""


def _no_readers() -> Mapping[str, Any]:
    """An empty read-only mapping: the state's maps are replaced by `apply`, never changed in place."""
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
    cloud_sams: Mapping[str, str] = field(default_factory=_no_readers)
    """Imported cloud SAM ids and their hospital ids."""
    last_device: str | None = None
    """The device the last `Initial` opened: the first one `Initial` without a name tries."""
    clock_offset_seconds: int = 0
    """How far the bench moved the clock forward."""
    cors_hosts: tuple[str, ...] = DEFAULT_CORS_HOSTS
    """The CORS allow-list, in the order hosts were added (a fresh installation starts with the defaults)."""
    agents: Mapping[str, str] = field(default_factory=_no_readers)
    """Enrolled reader agents (issue 23): name -> key id."""
    departed_cards: Mapping[str, CardInReader] = field(default_factory=_no_readers)
    """The card each reader held when its worker was lost or the reader left: a report of the same insertion
    session resumes it (`CardSessionResumed`); a new insertion in that reader forgets it."""


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


def _card_gone(state: ConsoleState, reader: str, session: int | None = None) -> ConsoleState:
    """A card left its reader (or its worker lost track of it): a level held by that card ends,
    except a staff card's level 3, which lasts until its expiry (contract.md rule 6)."""
    hc, hpc = state.hc, state.hpc
    if hc.reader == reader and (session is None or hc.session == session):
        hc = HcState()
    if hpc.reader == reader and (session is None or hpc.session == session):
        hpc = replace(hpc, reader=None, session=None) if hpc.status == 3 else HpcState()
    return replace(state, hc=hc, hpc=hpc)


def _departing(state: ConsoleState, reader: str) -> ConsoleState:
    """Remember the card a reader held as its worker goes: the same session may be reported back."""
    held = state.readers.get(reader)
    return state if held is None or held.card is None else _with_departed(state, reader, held.card)


def _with_departed(state: ConsoleState, reader: str, card: CardInReader | None) -> ConsoleState:
    if card is None and reader not in state.departed_cards:
        return state
    departed = dict(state.departed_cards)
    if card is None:
        departed.pop(reader, None)
    else:
        departed[reader] = card
    return replace(state, departed_cards=MappingProxyType(departed))


def inserted_again(reader: str, card: CardInReader) -> CardInserted:
    """The insertion a resumed card was: what follows a card into a reader follows a resumed one."""
    return CardInserted(
        reader=reader,
        atr=card.atr,
        kind=card.kind,
        session=card.session,
        card_ref=card.card_ref,
        card_type=card.card_type,
    )


def _staff_card_back(state: ConsoleState, event: CardInserted) -> ConsoleState:
    """The staff card whose level 3 outlived its removal is back: the level follows it to this insertion."""
    hpc = state.hpc
    if (
        event.kind == "hpc"
        and hpc.status == 3
        and hpc.reader is None
        and hpc.type in (1, 2)
        and event.card_ref is not None
        and event.card_ref == hpc.card_ref
    ):
        return replace(state, hpc=replace(hpc, reader=event.reader, session=event.session))
    return state


def _apply_staff(state: ConsoleState, event: Event) -> ConsoleState | None:
    """The staff card's own events (PIN, PUK, expiry, mobile HCA); None for any other event."""
    hpc = state.hpc
    if isinstance(event, HpcPinVerified):
        card = state.readers.get(event.reader)
        card_in = card.card if card is not None else None
        kind_type = card_in.card_type if card_in is not None and card_in.card_type in (1, 2) else (hpc.type or 2)
        return replace(
            state,
            hpc=replace(
                hpc,
                status=3,
                type=kind_type,
                expire_time=event.expires_at,
                reader=event.reader,
                session=event.session,
                card_ref=card_in.card_ref if card_in is not None else hpc.card_ref,
                pin_session=event.session,
            ),
            reader_in_use=event.reader,
        )
    if isinstance(event, (HpcPinRejected, HpcPinReset)):
        # A wrong try, or a PIN replaced by the PUK, on the card holding level 3 ends it, even within the
        # 8 hours of a card put back: the holder has just failed to prove who they are.
        if hpc.status == 3 and hpc.type != 3 and (hpc.reader, hpc.session) == (event.reader, event.session):
            return replace(state, hpc=replace(hpc, status=2, expire_time=None, pin_session=None))
        return state
    if isinstance(event, (HpcPinChanged, HpcPukRejected, MobileHcaRejected)):
        return state
    if isinstance(event, HpcAuthenticationExpired):
        if hpc.status != 3:
            return state
        if hpc.reader is not None and hpc.type in (1, 2):
            return replace(state, hpc=replace(hpc, status=2, expire_time=None, pin_session=None))
        return replace(state, hpc=HpcState())
    if isinstance(event, HpcAuthenticationEnded):
        return replace(state, hpc=HpcState())
    if isinstance(event, MobileHcaLoggedIn):
        return replace(state, hpc=HpcState(status=3, type=3, expire_time=event.expires_at, card_ref=event.person_ref))
    return None


def _with_card_level(state: ConsoleState, kind: str, reader: str, session: int, level: int) -> ConsoleState:
    """A card reaches level 1 or 2; a level 3 it already holds is kept (authentication does not undo a PIN)."""
    if kind == "hc":
        current = state.hc if (state.hc.reader, state.hc.session) == (reader, session) else HcState()
        return replace(
            state,
            hc=replace(current, status=max(level, current.status), type=1, reader=reader, session=session),
            reader_in_use=reader,
        )
    current_hpc = state.hpc if (state.hpc.reader, state.hpc.session) == (reader, session) else HpcState()
    holder = state.readers.get(reader)
    card = holder.card if holder is not None else None
    card_type = card.card_type if card is not None and card.card_type in (1, 2) else 2
    return replace(
        state,
        hpc=replace(
            current_hpc,
            status=max(level, current_hpc.status),
            type=card_type,
            reader=reader,
            session=session,
            card_ref=card.card_ref if card is not None else current_hpc.card_ref,
        ),
        reader_in_use=reader,
    )


def _apply_session(state: ConsoleState, event: Event) -> ConsoleState | None:
    """The session's events (Initial, the SAM, card levels); None for any other event."""
    if isinstance(event, SessionInitialized):
        return replace(
            state,
            initialized=True,
            device_name=event.device,
            reader_in_use=event.reader,
            last_device=event.device,
            sam=SamState(status=1, type=event.sam_type),
            hc=HcState(),
            hpc=HpcState(),
        )
    if isinstance(event, PhysicalSamIdentified):
        identity = PhysicalSamIdentity(
            event.port, event.sam_id, event.hospital_id, event.hospital_name, event.hospital_short_name
        )
        return replace(state, sam=replace(state.sam, physical=identity))
    if isinstance(event, SessionFinalized):
        return replace(
            state, initialized=False, device_name=None, reader_in_use=None, sam=SamState(), hc=HcState(), hpc=HpcState()
        )
    if isinstance(event, SamVerified):
        return replace(state, sam=replace(state.sam, status=2, expire_time=event.expires_at))
    if isinstance(event, SamVerificationFailed):
        if event.code in REFUSED_BY_DC and state.sam.status == 2:
            return replace(state, sam=replace(state.sam, status=1, expire_time=None))
        return state
    if isinstance(event, SamSessionExpired):
        if state.sam.status != 2:
            return state
        return replace(state, sam=replace(state.sam, status=1, expire_time=None))
    if isinstance(event, SamLoggedOut):
        sam = replace(state.sam, status=min(state.sam.status, 1), expire_time=None)
        return replace(state, sam=sam, hc=HcState(), hpc=HpcState())
    if isinstance(event, CardDetected):
        return _with_card_level(state, event.kind, event.reader, event.session, 1)
    if isinstance(event, CardAuthenticated):
        return _with_card_level(state, event.kind, event.reader, event.session, 2)
    if isinstance(event, CardAuthenticationFailed):
        return state
    if isinstance(event, CardLoggedOut):
        return replace(state, hc=HcState()) if event.kind == "hc" else replace(state, hpc=HpcState())
    if isinstance(event, CloudSamImported):
        sams = dict(state.cloud_sams)
        sams[event.sam_id] = event.hospital_id
        return replace(state, cloud_sams=MappingProxyType(sams))
    if isinstance(event, CloudSamRemoved):
        sams = dict(state.cloud_sams)
        sams.pop(event.sam_id, None)
        return replace(state, cloud_sams=MappingProxyType(sams))
    if isinstance(event, SimClockAdvanced):
        return replace(state, clock_offset_seconds=state.clock_offset_seconds + event.seconds)
    return None


def _same_health_card(state: ConsoleState, reader: str, session: int) -> bool:
    return (state.hc.reader, state.hc.session) == (reader, session) and state.hc.status >= 1


def _apply_health_card(state: ConsoleState, event: Event) -> ConsoleState | None:
    """The health card's own events (PIN, level 3, virtual cards, notes); None for any other event."""
    hc = state.hc
    if isinstance(event, HcPinStateRead):
        if not _same_health_card(state, event.reader, event.session):
            return state
        return replace(
            state, hc=replace(hc, has_pin=event.has_pin, verified_pin=event.verified if event.has_pin else None)
        )
    if isinstance(event, (HcPinVerified, HcPinSet)):
        if not _same_health_card(state, event.reader, event.session):
            return state
        return replace(state, hc=replace(hc, has_pin=True, verified_pin=True))
    if isinstance(event, HcPinRejected):
        if not _same_health_card(state, event.reader, event.session):
            return state
        return replace(state, hc=replace(hc, has_pin=True, verified_pin=False))
    if isinstance(event, HcPinRemoved):
        if not _same_health_card(state, event.reader, event.session):
            return state
        return replace(state, hc=replace(hc, has_pin=False, verified_pin=None))
    if isinstance(event, HcHpcAuthenticated):
        if hc.status >= 2 and state.hpc.status == 3:
            return replace(state, hc=replace(hc, status=3))
        return state
    if isinstance(event, VirtualHcVerified):
        return replace(
            state, hc=HcState(status=2, type=VIRTUAL_HC, expire_time=event.expires_at, card_ref=event.card_ref)
        )
    if isinstance(event, (VirtualHcExported, VirtualHcExpired)):
        return replace(state, hc=HcState()) if hc.type == VIRTUAL_HC else state
    if isinstance(event, VirtualHcRejected):
        return state
    if isinstance(event, HcNotesUpdated):
        return replace(state, hc=HcState()) if _same_health_card(state, event.reader, event.session) else state
    return None


def _health_card_level_3_needs_the_staff_card(state: ConsoleState) -> ConsoleState:
    """HC level 3 is "authenticated with the HCA": it cannot outlast the staff card's level 3."""
    if state.hc.status == 3 and state.hpc.status < 3:
        return replace(state, hc=replace(state.hc, status=2))
    return state


def apply(state: ConsoleState, event: Event) -> ConsoleState:
    """The state after `event`; events about unknown readers are facts too, so they attach it."""
    return _health_card_level_3_needs_the_staff_card(_apply(state, event))


def _apply(state: ConsoleState, event: Event) -> ConsoleState:
    health_card_state = _apply_health_card(state, event)
    if health_card_state is not None:
        return health_card_state
    session_state = _apply_session(state, event)
    if session_state is not None:
        return session_state
    staff_state = _apply_staff(state, event)
    if staff_state is not None:
        return staff_state
    if isinstance(event, CorsHostAllowed):
        hosts = state.cors_hosts if event.host in state.cors_hosts else (*state.cors_hosts, event.host)
        return replace(state, cors_hosts=hosts)
    if isinstance(event, CorsHostRemoved):
        return replace(state, cors_hosts=tuple(host for host in state.cors_hosts if host != event.host))
    if isinstance(event, ReaderAttached):
        existing = state.readers.get(event.reader)
        card = existing.card if existing else None
        return _with_reader(state, ReaderState(event.reader, event.backend, card))
    if isinstance(event, ReaderDetached):
        return _without_reader(_card_gone(_departing(state, event.reader), event.reader), event.reader)
    if isinstance(event, WorkerLost):
        reader = state.readers.get(event.reader)
        state = _card_gone(_departing(state, event.reader), event.reader)
        return state if reader is None else _with_reader(state, replace(reader, card=None))
    if isinstance(event, CardInserted):
        reader = state.readers.get(event.reader) or ReaderState(event.reader, "unknown")
        card = CardInReader(event.atr, event.kind, event.session, event.card_ref, event.card_type)
        state = _with_departed(state, event.reader, None)
        return _staff_card_back(_with_reader(state, replace(reader, card=card)), event)
    if isinstance(event, CardSessionResumed):
        departed = state.departed_cards.get(event.reader)
        if departed is None or departed.session != event.session:
            return state
        reader = state.readers.get(event.reader) or ReaderState(event.reader, "unknown")
        state = _with_reader(_with_departed(state, event.reader, None), replace(reader, card=departed))
        return _staff_card_back(state, inserted_again(event.reader, departed))
    if isinstance(event, AgentEnrolled):
        return replace(state, agents=MappingProxyType({**state.agents, event.name: event.key_id}))
    if isinstance(event, AgentRemoved):
        agents = dict(state.agents)
        agents.pop(event.name, None)
        return replace(state, agents=MappingProxyType(agents))
    if isinstance(event, CardRemoved):
        reader = state.readers.get(event.reader)
        state = _card_gone(state, event.reader, event.session)
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
    if isinstance(event, CallRefused | CardDataRead):
        return state  # the audit's facts: a refused request changed nothing; a read changes no level
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
                "card": None if reader.card is None else _card_data(reader.card),
            }
            for name, reader in sorted(state.readers.items())
        },
        "defaultReader": state.default_reader,
        "recordClearedThrough": state.record_cleared_through,
        "simReaders": dict(sorted(state.sim_readers.items())),
        "cloudSams": dict(sorted(state.cloud_sams.items())),
        "lastDevice": state.last_device,
        "clockOffsetSeconds": state.clock_offset_seconds,
        "corsHosts": list(state.cors_hosts),
        "agents": dict(sorted(state.agents.items())),
        "departedCards": {name: _card_data(card) for name, card in sorted(state.departed_cards.items())},
        "physicalSam": None
        if state.sam.physical is None
        else {
            "port": state.sam.physical.port,
            "samId": state.sam.physical.sam_id,
            "hospitalId": state.sam.physical.hospital_id,
            "hospitalName": state.sam.physical.hospital_name,
            "hospitalShortName": state.sam.physical.hospital_short_name,
        },
        "cards": {
            "hc": {"reader": state.hc.reader, "session": state.hc.session, "cardRef": state.hc.card_ref},
            "hpc": {
                "reader": state.hpc.reader,
                "session": state.hpc.session,
                "cardRef": state.hpc.card_ref,
                "pinSession": state.hpc.pin_session,
            },
        },
        "status": render_status(state),
    }


def _card_data(card: CardInReader) -> dict[str, Any]:
    return {
        "atr": card.atr,
        "kind": card.kind,
        "session": card.session,
        "cardRef": card.card_ref,
        "cardType": card.card_type,
    }


def restore(data: Mapping[str, Any]) -> ConsoleState:
    """The inverse of `snapshot`: a broker starts from a stored snapshot instead of folding the whole log.

    Strict on purpose: a field missing or of the wrong type raises `ValueError` (or `KeyError`), so that a
    snapshot written by another shape of the state is refused and the log is replayed instead of trusted.
    The rendered `status` block is where the levels live; `cards` adds what the status does not show.
    """
    status, cards = _mapping(data["status"]), _mapping(data["cards"])
    sam_status, hpc_status, hc_status = _mapping(status["sam"]), _mapping(status["hpc"]), _mapping(status["hc"])
    hpc_card, hc_card = _mapping(cards["hpc"]), _mapping(cards["hc"])
    physical = data["physicalSam"]
    readers = {_str(name): _reader(_str(name), _mapping(reader)) for name, reader in _mapping(data["readers"]).items()}
    return ConsoleState(
        readers=MappingProxyType(readers),
        default_reader=_opt_str(data["defaultReader"]),
        initialized=_bool(status["initialized"]),
        device_name=_opt_str(status["name"]),
        reader_in_use=_opt_str(status["readerName"]),
        sam=SamState(
            status=_int(sam_status["status"]),
            type=_int(sam_status["type"]),
            expire_time=_opt_str(sam_status["expireTime"]),
            physical=None if physical is None else _physical_sam(_mapping(physical)),
        ),
        hpc=HpcState(
            status=_int(hpc_status["status"]),
            type=_int(hpc_status["type"]),
            expire_time=_opt_str(hpc_status["expireTime"]),
            reader=_opt_str(hpc_card["reader"]),
            session=_opt_int(hpc_card["session"]),
            card_ref=_opt_str(hpc_card["cardRef"]),
            pin_session=_opt_int(hpc_card["pinSession"]),
        ),
        hc=HcState(
            status=_int(hc_status["status"]),
            type=_int(hc_status["type"]),
            expire_time=_opt_str(hc_status["expireTime"]),
            has_pin=_opt_bool(hc_status["hasPin"]),
            verified_pin=_opt_bool(hc_status["verifiedPin"]),
            reader=_opt_str(hc_card["reader"]),
            session=_opt_int(hc_card["session"]),
            card_ref=_opt_str(hc_card["cardRef"]),
        ),
        record_cleared_through=_int(data["recordClearedThrough"]),
        sim_readers=MappingProxyType(
            {_str(name): _opt_str(profile) for name, profile in _mapping(data["simReaders"]).items()}
        ),
        cloud_sams=MappingProxyType(
            {_str(sam): _str(hospital) for sam, hospital in _mapping(data["cloudSams"]).items()}
        ),
        last_device=_opt_str(data["lastDevice"]),
        clock_offset_seconds=_int(data["clockOffsetSeconds"]),
        cors_hosts=tuple(_str(host) for host in _list(data["corsHosts"])),
        agents=MappingProxyType({_str(name): _str(key) for name, key in _mapping(data["agents"]).items()}),
        departed_cards=MappingProxyType(
            {_str(name): _card(_mapping(card)) for name, card in _mapping(data["departedCards"]).items()}
        ),
    )


def _reader(name: str, data: Mapping[str, Any]) -> ReaderState:
    card = data["card"]
    if card is None:
        return ReaderState(name, _str(data["backend"]))
    return ReaderState(name, _str(data["backend"]), _card(_mapping(card)))


def _card(card: Mapping[str, Any]) -> CardInReader:
    return CardInReader(
        atr=_str(card["atr"]),
        kind=_str(card["kind"]),
        session=_int(card["session"]),
        card_ref=_opt_str(card["cardRef"]),
        card_type=_opt_int(card["cardType"]),
    )


def _physical_sam(data: Mapping[str, Any]) -> PhysicalSamIdentity:
    return PhysicalSamIdentity(
        port=_str(data["port"]),
        sam_id=_str(data["samId"]),
        hospital_id=_str(data["hospitalId"]),
        hospital_name=_str(data["hospitalName"]),
        hospital_short_name=_str(data["hospitalShortName"]),
    )


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected a boolean, got {type(value).__name__}")
    return value


def _opt_bool(value: object) -> bool | None:
    return None if value is None else _bool(value)
