"""The live stream's core (broker/stream.py and the core's WaitForEvents): what a change of state becomes on the
stream, how a reconnecting client resumes, and that nothing personal is in it."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.core import ConsoleCore, Park
from broker.domain.state import CardInReader, ConsoleState, HcState, ReaderState, SamState
from broker.domain.stream import StreamFeed, public_view, stream_changes
from broker.runtime.clock import ManualClock
from contract.protocol import CallMeta, CardPresence, Reply, Request, WorkerStatus
from contract.stream_positions import Position, parse_position
from eventlog.memory_store import MemoryEventStore
from sim.profiles import PROFILES
from tests.unit.session_harness import Harness

READER_0, READER_1 = "Reader 0", "Reader 1"


def state_with(readers: dict[str, tuple[str, int] | None], **changes: Any) -> ConsoleState:
    return replace(
        ConsoleState(),
        readers=MappingProxyType(
            {
                name: ReaderState(name, "sim", None if card is None else CardInReader("3B", card[0], card[1]))
                for name, card in readers.items()
            }
        ),
        **changes,
    )


def changes(before: ConsoleState, after: ConsoleState) -> list[tuple[str, dict[str, object]]]:
    return stream_changes(public_view(before), public_view(after))


# --- what a change becomes ---------------------------------------------------------------------------


def test_a_card_in_and_out_of_a_reader() -> None:
    empty, full = state_with({READER_0: None}), state_with({READER_0: ("hc", 1)})
    assert changes(empty, full) == [("card-inserted", {"reader": READER_0, "kind": "hc"})]
    assert changes(full, empty) == [("card-removed", {"reader": READER_0, "kind": "hc"})]
    assert changes(full, full) == []


def test_another_insertion_of_the_same_kind_is_a_removal_then_an_insertion() -> None:
    first, second = state_with({READER_0: ("hc", 1)}), state_with({READER_0: ("hc", 2)})
    assert [kind for kind, _ in changes(first, second)] == ["card-removed", "card-inserted"]


def test_readers_plugged_and_unplugged_with_their_cards() -> None:
    before = state_with({READER_0: ("hpc", 1)})
    after = state_with({READER_1: ("hc", 2)})
    assert changes(before, after) == [
        ("card-removed", {"reader": READER_0, "kind": "hpc"}),
        ("reader-unplugged", {"reader": READER_0}),
        ("reader-plugged", {"reader": READER_1}),
        ("card-inserted", {"reader": READER_1, "kind": "hc"}),
    ]


def test_levels_the_session_the_default_reader_and_a_cleared_record() -> None:
    before = state_with({})
    after = state_with(
        {},
        sam=SamState(status=2, type=1),
        hc=HcState(status=1, type=1),
        initialized=True,
        device_name="901000000047",
        default_reader=READER_0,
        record_cleared_through=7,
    )
    assert changes(before, after) == [
        ("session-changed", {"initialized": True, "name": "901000000047", "readerName": None}),
        ("level-changed", {"card": "sam", "status": 2, "type": 1, "expireTime": None}),
        (
            "level-changed",
            {"card": "hc", "status": 1, "type": 1, "expireTime": None, "hasPin": None, "verifiedPin": None},
        ),
        ("default-reader-changed", {"reader": READER_0}),
        ("record-cleared", {}),
    ]


# --- positions and resuming ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("12-3", Position(12, 3)),
        ("12", Position(12, 999_999)),
        (" 7-0 ", Position(7, 0)),
        (None, None),
        ("", None),
        ("x", None),
        ("1-2-3", None),
        ("-1", None),
        ("1" * 19, None),
    ],
)
def test_last_event_id(text: str | None, position: Position | None) -> None:
    assert parse_position(text) == position


def feed_of(count: int, ring_size: int = 100) -> StreamFeed:
    """`count` log events, each inserting or removing a card: one stream event per log event."""
    feed = StreamFeed(ring_size)
    views = [public_view(state_with({READER_0: None})), public_view(state_with({READER_0: ("hc", 1)}))]
    for seq in range(1, count + 1):
        feed.observe(seq, views[(seq + 1) % 2], views[seq % 2])
    return feed


def test_a_client_gets_exactly_what_came_after_its_position() -> None:
    feed = feed_of(10)
    assert feed.position == Position(10, 0)
    assert [event.position.seq for event in feed.after(Position(7, 0)) or []] == [8, 9, 10]
    assert feed.after(Position(10, 0)) == []
    assert [event.position.seq for event in feed.after(Position(7, 999_999)) or []] == [8, 9, 10]


def test_a_client_behind_what_is_kept_or_ahead_of_the_stream_starts_afresh() -> None:
    feed = feed_of(150, ring_size=100)  # events 51..150 kept
    assert feed.after(Position(49, 0)) is None  # event 50 is gone
    assert [event.position.seq for event in feed.after(Position(50, 0)) or []] == list(range(51, 151))
    assert feed.after(Position(151, 0)) is None  # a position this stream never reached (a reset data dir)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60), st.integers(min_value=1, max_value=40))
def test_resuming_anywhere_gives_the_rest_of_the_stream_or_a_fresh_start(kinds: list[int], ring: int) -> None:
    """Whatever the events and the ring's size: from any position, either the exact tail of the whole stream
    or None, and None only when part of that tail is no longer kept."""
    feed = StreamFeed(ring)
    whole = []
    previous = public_view(state_with({}))
    cards = [None, ("hc", 1), ("hpc", 2), ("hc", 3)]
    for seq, kind in enumerate(kinds, start=1):
        current = public_view(state_with({READER_0: cards[kind]}))
        feed.observe(seq, previous, current)
        whole += [Position(seq, index) for index in range(len(stream_changes(previous, current)))]
        previous = current
    for start in [Position(0, 0), *whole]:
        rest = feed.after(start)
        tail = [position for position in whole if position > start]
        if rest is None:
            assert len(tail) > ring
        else:
            assert [event.position for event in rest] == tail


# --- the core: WaitForEvents -------------------------------------------------------------------------


def wait(
    core: ConsoleCore, after: list[int] | None, after_call: int | None = None, seconds: float = 1.0
) -> Reply | Park:
    outcome = core.handle(
        Request(id="w", command="WaitForEvents", args={"after": after, "afterCall": after_call, "waitSeconds": seconds})
    )
    assert isinstance(outcome, (Reply, Park))
    return outcome


def report(core: ConsoleCore, reader: str, session: int | None) -> None:
    card = None if session is None else CardPresence(atr="3B", kind="hc", session=session)
    core.worker_reported(WorkerStatus(reader=reader, backend="sim", pid=1, card=card))


def test_a_first_wait_is_a_snapshot_then_news_or_a_park() -> None:
    core = ConsoleCore(MemoryEventStore(), ManualClock())
    report(core, READER_0, 1)
    first = wait(core, None)
    assert isinstance(first, Reply) and first.body["events"] == []
    assert first.body["snapshot"]["readers"] == [{"name": READER_0, "card": "hc"}]
    position, last_call = first.body["position"], first.body["lastCall"]
    assert isinstance(wait(core, position, last_call), Park)  # nothing new yet
    report(core, READER_0, None)
    core.handle(Request(id="s", command="GetStatus", args={}, call=CallMeta(url="/api/common/v1/Status", uuid="u")))
    news = wait(core, position, last_call)
    assert isinstance(news, Reply)
    assert [(event["type"], event["data"]) for event in news.body["events"]] == [
        ("card-removed", {"reader": READER_0, "kind": "hc"})
    ]
    assert [call["url"] for call in news.body["calls"]] == ["/api/common/v1/Status"]
    assert "snapshot" not in news.body
    assert not core.ledger.store.calls_newest_first(0, 10)[0].url.endswith("WaitForEvents")
    assert len(core.ledger.store.calls_newest_first(0, 10)) == 1  # the stream itself is not recorded


def test_a_wait_of_zero_answers_at_once_and_a_bad_wait_is_refused() -> None:
    core = ConsoleCore(MemoryEventStore(), ManualClock())
    first = wait(core, None)
    assert isinstance(first, Reply)
    empty = wait(core, first.body["position"], first.body["lastCall"], seconds=0)
    assert isinstance(empty, Reply) and empty.body["events"] == [] and empty.body["calls"] == []
    refused = core.handle(Request(id="w", command="WaitForEvents", args={"after": [1], "waitSeconds": 0}))
    assert isinstance(refused, Reply) and refused.code == 1704


def test_a_restarted_broker_resumes_the_same_stream() -> None:
    store = MemoryEventStore()
    core = ConsoleCore(store, ManualClock())
    for session in (1, None, 2, None):
        report(core, READER_0, session)
    core.commit()
    before = wait(ConsoleCore(store, ManualClock()), [0, 0])
    after = wait(core, [0, 0])
    assert isinstance(before, Reply) and isinstance(after, Reply)
    assert before.body["events"] == after.body["events"] and len(after.body["events"]) == 5  # plugged + 4


def test_a_whole_session_streams_nothing_personal() -> None:
    """Every kind of card and a full session: no card number, ID number, name, birthday or pseudonym in the
    stream, whatever its events."""
    harness = Harness((READER_0, "hc-pin"), (READER_1, "hpc-doctor"))
    harness.command("SetDefaultReader", {"readerName": READER_0})
    assert harness.command("Initialize") == (0, {})
    assert harness.command("VerifyHpcPin", {"pin": "000000"})[0] == 0
    assert harness.command("ReadHcBasic")[0] == 0
    assert harness.command("VerifyHcPin", {"pin": "1234"})[0] == 0
    harness.command("SignWithHpcHc", {"serviceType": "01"})
    harness.remove(READER_0)
    harness.insert(READER_0, "hc-veteran", 9)
    outcome = wait(harness.core, [0, 0])
    assert isinstance(outcome, Reply)
    events = outcome.body["events"]
    assert {"card-inserted", "card-removed", "level-changed", "session-changed"} <= {event["type"] for event in events}
    assert any(
        event["data"] == {"card": "hc", "status": 3, "type": 1, "expireTime": None, "hasPin": True, "verifiedPin": True}
        for event in events
    )
    text = json.dumps(events, ensure_ascii=False)
    personal = {
        ref
        for reader in harness.core.state.readers.values()
        if reader.card and reader.card.card_ref
        for ref in [reader.card.card_ref]
    }
    for profile in ("hc-pin", "hpc-doctor", "hc-veteran"):
        data = PROFILES[profile].data
        personal |= {
            str(value)
            for name, value in vars(data).items()
            if name in ("card_id", "id_no", "name", "c_name", "birthday") and value
        }
    assert personal and not [value for value in personal if value in text]


def test_a_broker_restarted_over_a_long_log_streams_its_tail_and_refreshes_clients_from_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("broker.ledger.REPLAYED_EVENTS", 3)
    store = MemoryEventStore()
    core = ConsoleCore(store, ManualClock())
    for session in (1, None, 2, None, 3):  # log events 1 (attached + inserted) .. 5
        report(core, READER_0, session)
    core.commit()
    events = store.last_event_seq()
    restarted = ConsoleCore(store, ManualClock())
    assert restarted.state == core.state
    inside = wait(restarted, [events - 2, 0])
    assert isinstance(inside, Reply) and "snapshot" not in inside.body
    assert [event["id"] for event in inside.body["events"]] == [f"{events - 1}-0", f"{events}-0"]
    before = wait(restarted, [events - 3, 0])  # its next event was not rebuilt: start afresh
    assert isinstance(before, Reply) and before.body["snapshot"]["readers"] == [{"name": READER_0, "card": "hc"}]
