"""Domain events and the fold: what is stored can be read back, and replaying it rebuilds the same state.

A broker restart is "replay the log"; these tests are what make that
indistinguishable from no restart at all.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.domain.events import (
    BORN_WITH_CAUSE,
    EVENT_TYPES,
    AgentEnrolled,
    AgentRefused,
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
    UnknownEvent,
    VirtualHcExpired,
    VirtualHcExported,
    VirtualHcRejected,
    VirtualHcVerified,
    WorkerLost,
    decode,
    decode_with_cause,
    encode,
)
from broker.domain.state import (
    CardInReader,
    ConsoleState,
    ReaderState,
    apply,
    project,
    render_status,
)
from tests.spec_samples import EMPTY_STATUS

# --- strategies ----------------------------------------------------------------

READERS = st.sampled_from(["Reader 0", "Reader 1", "讀卡機 2"])
TEXT = st.text(max_size=20)
SESSIONS = st.integers(min_value=0, max_value=2**40)

EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(ReaderAttached, reader=READERS, backend=TEXT),
    st.builds(ReaderDetached, reader=READERS, reason=TEXT),
    st.builds(WorkerLost, reader=READERS, reason=TEXT),
    st.builds(
        CardInserted,
        reader=READERS,
        atr=TEXT,
        kind=TEXT,
        session=SESSIONS,
        card_ref=st.none() | st.text(max_size=40),
        card_type=st.none() | st.sampled_from([1, 2]),
    ),
    st.builds(CardRemoved, reader=READERS, session=SESSIONS, reason=TEXT),
    st.builds(CallRecordCleared, through_seq=st.integers(min_value=0, max_value=10**6)),
    st.builds(DefaultReaderSet, reader=READERS),
    st.builds(DefaultReaderCleared),
    st.builds(SimReaderPlugged, reader=READERS),
    st.builds(SimReaderUnplugged, reader=READERS),
    st.builds(SimCardPut, reader=READERS, profile=st.sampled_from(["hc-basic", "hpc-doctor"])),
    st.builds(SimCardTaken, reader=READERS),
    st.builds(CloudSamImported, sam_id=st.sampled_from(["901000000047", "901000000001"]), hospital_id=TEXT),
    st.builds(CloudSamRemoved, sam_id=st.sampled_from(["901000000047", "901000000001"])),
    st.builds(SessionInitialized, device=TEXT, sam_type=st.sampled_from([1, 2]), reader=st.none() | READERS),
    st.builds(SessionFinalized, reason=TEXT),
    st.builds(SamVerified, expires_at=st.just("2026-11-23T22:00:00+08:00")),
    st.builds(SamVerificationFailed, code=st.sampled_from([1301, 1302, 1303, 1304, 1700, 1702]), reason=TEXT),
    st.builds(SamSessionExpired),
    st.builds(SamLoggedOut),
    st.builds(CardDetected, kind=st.sampled_from(["hc", "hpc"]), reader=READERS, session=SESSIONS),
    st.builds(CardAuthenticated, kind=st.sampled_from(["hc", "hpc"]), reader=READERS, session=SESSIONS),
    st.builds(
        CardAuthenticationFailed,
        kind=st.sampled_from(["hc", "hpc"]),
        reader=READERS,
        session=SESSIONS,
        code=st.sampled_from([1501, 1700]),
    ),
    st.builds(CardLoggedOut, kind=st.sampled_from(["hc", "hpc"])),
    st.builds(SimClockAdvanced, seconds=st.integers(min_value=0, max_value=10**8)),
    st.builds(HpcPinVerified, reader=READERS, session=SESSIONS, expires_at=st.just("2026-11-24T06:00:00+08:00")),
    st.builds(HpcPinRejected, reader=READERS, session=SESSIONS, tries_left=st.integers(0, 3), blocked=st.booleans()),
    st.builds(HpcPinChanged, reader=READERS, session=SESSIONS),
    st.builds(HpcPinReset, reader=READERS, session=SESSIONS),
    st.builds(HpcPukRejected, reader=READERS, session=SESSIONS, tries_left=st.integers(0, 10), blocked=st.booleans()),
    st.builds(HpcAuthenticationExpired),
    st.builds(HpcAuthenticationEnded, reason=TEXT),
    st.builds(MobileHcaLoggedIn, person_ref=TEXT, expires_at=st.just("2026-11-24T06:00:00+08:00")),
    st.builds(MobileHcaRejected, code=st.sampled_from([1421, 1430, 1431])),
    st.builds(
        HcPinStateRead, reader=READERS, session=SESSIONS, has_pin=st.booleans(), verified=st.none() | st.booleans()
    ),
    st.builds(HcPinVerified, reader=READERS, session=SESSIONS),
    st.builds(HcPinRejected, reader=READERS, session=SESSIONS, tries_left=st.integers(0, 3), blocked=st.booleans()),
    st.builds(HcPinSet, reader=READERS, session=SESSIONS),
    st.builds(HcPinRemoved, reader=READERS, session=SESSIONS),
    st.builds(HcHpcAuthenticated),
    st.builds(
        VirtualHcVerified,
        card_ref=TEXT,
        expires_at=st.just("2026-11-24T06:00:00+08:00"),
        via=st.sampled_from(["token", "transfer"]),
    ),
    st.builds(VirtualHcRejected, code=st.sampled_from([1520, 1523, 1525])),
    st.builds(VirtualHcExported),
    st.builds(VirtualHcExpired),
    st.builds(HcNotesUpdated, reader=READERS, session=SESSIONS),
)

ONE_OF_EACH: list[Event] = [
    ReaderAttached(reader="Reader 0", backend="pcsc"),
    ReaderDetached(reader="Reader 0", reason="unplugged"),
    WorkerLost(reader="Reader 0", reason="silent"),
    CardInserted(reader="Reader 0", atr="3B 7F", kind="hc", session=4),
    CardRemoved(reader="Reader 0", session=4, reason="removed"),
    CallRecordCleared(through_seq=17),
    DefaultReaderSet(reader="Reader 0"),
    DefaultReaderCleared(),
    SimReaderPlugged(reader="Reader 0"),
    SimReaderUnplugged(reader="Reader 0"),
    SimCardPut(reader="Reader 0", profile="hc-basic"),
    SimCardTaken(reader="Reader 0"),
    CloudSamImported(sam_id="901000000047", hospital_id="777777777"),
    CloudSamRemoved(sam_id="901000000047"),
    SessionInitialized(device="901000000047", sam_type=1, reader="Reader 0"),
    SessionFinalized(reason="finalize"),
    SamVerified(expires_at="2026-11-23T22:00:00+08:00"),
    SamVerificationFailed(code=1302, reason="contractExpired"),
    SamSessionExpired(),
    SamLoggedOut(),
    CardDetected(kind="hc", reader="Reader 0", session=4),
    CardAuthenticated(kind="hc", reader="Reader 0", session=4),
    CardAuthenticationFailed(kind="hc", reader="Reader 0", session=4, code=1501),
    CardLoggedOut(kind="hc"),
    SimClockAdvanced(seconds=3600),
    HpcPinVerified(reader="Reader 1", session=5, expires_at="2026-11-24T06:00:00+08:00"),
    HpcPinRejected(reader="Reader 1", session=5, tries_left=2, blocked=False),
    HpcPinChanged(reader="Reader 1", session=5),
    HpcPinReset(reader="Reader 1", session=5),
    HpcPukRejected(reader="Reader 1", session=5, tries_left=9, blocked=False),
    HpcAuthenticationExpired(),
    HpcAuthenticationEnded(reason="another staff card"),
    MobileHcaLoggedIn(person_ref="person:ab", expires_at="2026-11-24T06:00:00+08:00"),
    MobileHcaRejected(code=1430),
    HcPinStateRead(reader="Reader 0", session=4, has_pin=True, verified=False),
    HcPinVerified(reader="Reader 0", session=4),
    HcPinRejected(reader="Reader 0", session=4, tries_left=2, blocked=False),
    HcPinSet(reader="Reader 0", session=4),
    HcPinRemoved(reader="Reader 0", session=4),
    HcHpcAuthenticated(),
    VirtualHcVerified(card_ref="card:ab", expires_at="2026-11-24T06:00:00+08:00", via="token"),
    VirtualHcRejected(code=1523),
    VirtualHcExported(),
    VirtualHcExpired(),
    HcNotesUpdated(reader="Reader 0", session=4),
    CardDataRead(kind="hc", reader="Reader 0", session=4),
    AgentEnrolled(name="desk-2", key_id="ab" * 32),
    AgentRemoved(name="desk-2", key_id="ab" * 32),
    AgentRefused(key_id="cd" * 32, address="192.0.2.7", attempts=3),
    CardSessionResumed(reader="desk-2/Reader 0", session=4),
    CorsHostAllowed(host="medvpn.nhi.gov.tw"),
    CorsHostRemoved(host="localhost"),
    CallRefused(
        url="/api/hc/v1/Basic", caller="https://evil.example", status=403, reason="origin not on the allow-list"
    ),
    PhysicalSamIdentified(
        port="/dev/ttyUSB0",
        sam_id="000100000047",
        hospital_id="777777777",
        hospital_name="測試機構",
        hospital_short_name="測試",
    ),
]


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- encode / decode -----------------------------------------------------------


def test_one_of_each_covers_every_event_type() -> None:
    """If a new event type is added, the round-trip examples below must grow with it."""
    assert {type(event).__name__ for event in ONE_OF_EACH} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: type(event).__name__)
def test_encode_decode_round_trip(event: Event) -> None:
    type_name, version, payload = encode(event)
    assert type_name == type(event).__name__
    assert version == type(event).VERSION
    assert isinstance(payload, bytes)
    assert decode(type_name, version, payload) == event


@settings(max_examples=40, deadline=None)
@given(EVENTS)
def test_encode_decode_round_trip_any_event(event: Event) -> None:
    """Any text (including non-ASCII) and any session number survives the store format."""
    assert decode(*encode(event)) == event


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: type(event).__name__)
def test_the_cause_travels_beside_the_event(event: Event) -> None:
    """`caused_by` is in the payload (for the audit views' SQL) and back out of it, never in the dataclass."""
    type_name, version, payload = encode(event, "0b7e5a52-6c34-4a8e-9d4e-1f2a3b4c5d6e")
    assert json.loads(payload)["caused_by"] == "0b7e5a52-6c34-4a8e-9d4e-1f2a3b4c5d6e"
    assert decode_with_cause(type_name, version, payload) == (event, "0b7e5a52-6c34-4a8e-9d4e-1f2a3b4c5d6e")
    assert decode(type_name, version, payload) == event


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: type(event).__name__)
def test_an_event_stored_before_causation_reads_as_caused_by_nothing(event: Event) -> None:
    """The payload one version down, as a log written before issue 22 holds it: upcast, never rewritten."""
    type_name, version, payload = encode(event)
    if type_name in BORN_WITH_CAUSE:
        return
    old = json.loads(payload)
    del old["caused_by"]
    assert decode_with_cause(type_name, version - 1, canonical(old)) == (event, None)


def test_a_cause_that_is_no_uuid_is_refused() -> None:
    payload = canonical({"host": "localhost", "caused_by": 7})
    with pytest.raises(UnknownEvent, match="caused_by"):
        decode("CorsHostAllowed", CorsHostAllowed.VERSION, payload)


@settings(max_examples=40, deadline=None)
@given(EVENTS)
def test_payload_is_canonical_json(event: Event) -> None:
    """Sorted keys, no spaces, UTF-8: the same event always gives the same bytes."""
    _, _, payload = encode(event)
    assert payload == canonical(json.loads(payload.decode("utf-8")))
    assert json.loads(payload) == {**asdict(event), "caused_by": None}


def test_payload_exact_bytes_keep_non_ascii_as_utf8() -> None:
    """The literal bytes: keys sorted, no whitespace, 讀卡機 as UTF-8 rather than \\u escapes."""
    event = CardInserted(reader="讀卡機 1", atr="3B", kind="hc", session=2)
    _, _, payload = encode(event)
    assert payload == (
        '{"atr":"3B","card_ref":null,"card_type":null,"caused_by":null,"kind":"hc",'
        '"reader":"讀卡機 1","session":2}'.encode()
    )
    assert b"\\u" not in payload
    assert encode(CallRecordCleared(through_seq=5)) == ("CallRecordCleared", 2, b'{"caused_by":null,"through_seq":5}')


@pytest.mark.parametrize("type_name", ["CardSwallowed", "", "cardinserted", "Event"])
def test_decode_refuses_unknown_type(type_name: str) -> None:
    with pytest.raises(UnknownEvent):
        decode(type_name, 1, b'{"through_seq":1}')


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: type(event).__name__)
@pytest.mark.parametrize("ahead", [1, 97])
def test_decode_refuses_a_version_from_the_future_or_zero(event: Event, ahead: int) -> None:
    type_name, version, payload = encode(event)
    for wrong in (0, version + ahead):
        with pytest.raises(UnknownEvent):
            decode(type_name, wrong, payload)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: type(event).__name__)
def test_decode_refuses_missing_field(event: Event) -> None:
    type_name, version, payload = encode(event)
    for name in (field.name for field in fields(event)):
        data = json.loads(payload)
        del data[name]
        with pytest.raises(UnknownEvent):
            decode(type_name, version, canonical(data))


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: type(event).__name__)
def test_decode_refuses_extra_field(event: Event) -> None:
    """A payload from a newer console with more fields is not silently half-read."""
    type_name, version, payload = encode(event)
    data = json.loads(payload)
    data["extra"] = 1
    with pytest.raises(UnknownEvent):
        decode(type_name, version, canonical(data))


# --- the fold ----------------------------------------------------------------------


def test_attach_insert_remove_detach() -> None:
    state = ConsoleState()
    state = apply(state, ReaderAttached(reader="R", backend="pcsc"))
    assert dict(state.readers) == {"R": ReaderState("R", "pcsc", None)}
    state = apply(state, CardInserted(reader="R", atr="3B", kind="hc", session=1))
    assert state.readers["R"] == ReaderState("R", "pcsc", CardInReader("3B", "hc", 1))
    state = apply(state, CardRemoved(reader="R", session=1, reason="removed"))
    assert state.readers["R"] == ReaderState("R", "pcsc", None)
    state = apply(state, ReaderDetached(reader="R", reason="unplugged"))
    assert dict(state.readers) == {}


def test_apply_does_not_mutate_the_previous_state() -> None:
    """States are values: a caller holding an old state never sees it change."""
    before = apply(ConsoleState(), ReaderAttached(reader="R", backend="pcsc"))
    after = apply(before, CardInserted(reader="R", atr="3B", kind="hc", session=1))
    assert before.readers["R"].card is None
    assert after.readers["R"].card is not None
    with pytest.raises(TypeError):
        before.readers["X"] = ReaderState("X", "pcsc")  # type: ignore[index]  # the test: read-only


def test_worker_lost_clears_card_but_keeps_reader() -> None:
    state = project(
        [
            ReaderAttached(reader="R", backend="pcsc"),
            CardInserted(reader="R", atr="3B", kind="hc", session=1),
            WorkerLost(reader="R", reason="silent"),
        ]
    )
    assert dict(state.readers) == {"R": ReaderState("R", "pcsc", None)}


def test_worker_lost_for_unknown_reader_changes_nothing() -> None:
    state = project([ReaderAttached(reader="R", backend="pcsc")])
    assert apply(state, WorkerLost(reader="other", reason="silent")) == state


def test_card_inserted_for_unknown_reader_attaches_it() -> None:
    state = apply(ConsoleState(), CardInserted(reader="R", atr="3B", kind="hc", session=9))
    assert set(state.readers) == {"R"}
    assert state.readers["R"].card == CardInReader("3B", "hc", 9)


def test_reattaching_a_reader_keeps_its_card() -> None:
    """A repeated ReaderAttached (e.g. a backend change) is not a card removal."""
    state = project(
        [
            ReaderAttached(reader="R", backend="pcsc"),
            CardInserted(reader="R", atr="3B", kind="hc", session=1),
            ReaderAttached(reader="R", backend="serial"),
        ]
    )
    assert state.readers["R"] == ReaderState("R", "serial", CardInReader("3B", "hc", 1))


def test_call_record_cleared_never_moves_watermark_backwards() -> None:
    state = apply(ConsoleState(), CallRecordCleared(through_seq=5))
    assert state.record_cleared_through == 5
    state = apply(state, CallRecordCleared(through_seq=3))
    assert state.record_cleared_through == 5
    state = apply(state, CallRecordCleared(through_seq=8))
    assert state.record_cleared_through == 8


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=10))
def test_watermark_is_the_highest_clear(through: list[int]) -> None:
    state = project(CallRecordCleared(through_seq=seq) for seq in through)
    assert state.record_cleared_through == max([0, *through])


def test_apply_refuses_a_non_event() -> None:
    with pytest.raises(TypeError):
        apply(ConsoleState(), "ReaderAttached")  # type: ignore[arg-type]  # deliberately off-type


@settings(max_examples=40, deadline=None)
@given(st.lists(EVENTS, max_size=15))
def test_project_is_a_left_fold_of_apply(events: list[Event]) -> None:
    assert project(events) == functools.reduce(apply, events, ConsoleState())


def test_project_starts_from_initial_state() -> None:
    start = project([ReaderAttached(reader="R", backend="pcsc")])
    more = [CardInserted(reader="R", atr="3B", kind="hc", session=1)]
    assert project(more, start) == project([ReaderAttached(reader="R", backend="pcsc"), *more])


@settings(max_examples=50, deadline=None)
@given(st.lists(EVENTS, max_size=20))
def test_replay_of_stored_events_equals_original_state(events: list[Event]) -> None:
    """project(decode(encode(e)) for e) == project(e): a restart rebuilds exactly the running state."""
    replayed = [decode(*encode(event)) for event in events]
    assert project(replayed) == project(events)


# --- the Status object ----------------------------------------------------------------


def test_render_status_of_initial_state_is_contract_zero_object() -> None:
    """contract.md: initialized/name/readerName sit inside `status`; every level 0, every time null."""
    assert render_status(ConsoleState()) == EMPTY_STATUS


def test_render_status_keys_and_json_types() -> None:
    """Exact key set (no snake_case leaks), and `initialized` a real bool, levels real ints."""
    status = render_status(ConsoleState())
    assert sorted(status) == ["hc", "hpc", "initialized", "name", "readerName", "sam"]
    assert status["initialized"] is False
    for part in ("hc", "hpc", "sam"):
        assert type(status[part]["status"]) is int and type(status[part]["type"]) is int
    assert json.loads(json.dumps(status)) == status


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[1, 2]", b"42", b'"text"'])
def test_a_corrupt_payload_is_an_unknown_event_not_a_crash(payload: bytes) -> None:
    with pytest.raises(UnknownEvent):
        decode("CallRecordCleared", 1, payload)


def test_the_default_reader_is_set_and_cleared() -> None:
    state = project([DefaultReaderSet("Reader 1"), DefaultReaderSet("Reader 0")])
    assert state.default_reader == "Reader 0"
    assert apply(state, DefaultReaderCleared()).default_reader is None


def test_bench_readers_and_their_cards() -> None:
    state = project([SimReaderPlugged("A"), SimCardPut("A", "hc-basic"), SimReaderPlugged("B")])
    assert dict(state.sim_readers) == {"A": "hc-basic", "B": None}
    assert dict(apply(state, SimReaderPlugged("A")).sim_readers) == {"A": "hc-basic", "B": None}
    assert dict(apply(state, SimCardTaken("A")).sim_readers) == {"A": None, "B": None}
    assert dict(apply(state, SimReaderUnplugged("A")).sim_readers) == {"B": None}
    assert apply(state, SimCardTaken("gone")) == state


def test_a_version_1_card_insertion_is_upcast_on_read() -> None:
    """Logs written before card pseudonyms still replay: v1 CardInserted reads as v3 with no card_ref or type."""
    v1_payload = b'{"atr":"3B00","kind":"hc","reader":"Reader 0","session":7}'
    assert decode("CardInserted", 1, v1_payload) == CardInserted(
        reader="Reader 0", atr="3B00", kind="hc", session=7, card_ref=None, card_type=None
    )


def test_a_version_2_card_insertion_is_upcast_on_read() -> None:
    v2_payload = b'{"atr":"3B00","card_ref":"card:ab","kind":"hpc","reader":"Reader 0","session":7}'
    assert decode("CardInserted", 2, v2_payload) == CardInserted(
        reader="Reader 0", atr="3B00", kind="hpc", session=7, card_ref="card:ab", card_type=None
    )


@pytest.mark.parametrize("version", [0, 4, 99])
def test_versions_this_console_does_not_know_are_refused(version: int) -> None:
    with pytest.raises(UnknownEvent):
        decode("CardInserted", version, b'{"atr":"3B00","kind":"hc","reader":"R","session":7,"card_ref":null}')
