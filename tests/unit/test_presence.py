"""`presence_events`: the reconcile step run on every worker report.

It must turn exactly the difference between belief and report into events,
and nothing when they agree, since it runs on every heartbeat.
"""

from __future__ import annotations

from broker.domain.events import CardInserted, CardRemoved, Event, ReaderAttached
from broker.domain.presence import presence_events
from broker.domain.state import ConsoleState, project
from contract.protocol import CardPresence, WorkerStatus

READER = "ACS ACR39U 00 00"


def report(card: CardPresence | None = None, reader: str = READER) -> WorkerStatus:
    return WorkerStatus(reader=reader, backend="pcsc", pid=4242, card=card)


def known_with(card: CardPresence | None) -> ConsoleState:
    events: list[Event] = [ReaderAttached(reader=READER, backend="pcsc")]
    if card is not None:
        events.append(CardInserted(reader=READER, atr=card.atr, kind=card.kind, session=card.session))
    return project(events)


CARD = CardPresence(atr="3B 7F 11", kind="hc", session=3)


def test_unknown_reader_reporting_empty_attaches_only() -> None:
    assert presence_events(ConsoleState(), report()) == [ReaderAttached(reader=READER, backend="pcsc")]


def test_unknown_reader_with_card_attaches_then_inserts() -> None:
    assert presence_events(ConsoleState(), report(CARD)) == [
        ReaderAttached(reader=READER, backend="pcsc"),
        CardInserted(reader=READER, atr=CARD.atr, kind=CARD.kind, session=CARD.session),
    ]


def test_same_session_and_atr_gives_nothing() -> None:
    assert presence_events(known_with(CARD), report(CARD)) == []


def test_reconcile_is_idempotent() -> None:
    """Applying the events of a report and reconciling the same report again gives nothing."""
    for state, seen in [
        (ConsoleState(), report(CARD)),
        (ConsoleState(), report()),
        (known_with(None), report(CARD)),
        (known_with(CARD), report(CardPresence(atr="3B 7F 11", kind="hc", session=4))),
        (known_with(CARD), report()),
    ]:
        events = presence_events(state, seen)
        assert events, "each case changes something the first time"
        after = project(events, state)
        assert presence_events(after, seen) == []
        assert presence_events(project(presence_events(after, seen), after), seen) == []


def test_new_session_removes_then_inserts() -> None:
    """A swap between two looks (same ATR, new session) is a removal and an insertion, in that order."""
    swapped = CardPresence(atr=CARD.atr, kind=CARD.kind, session=CARD.session + 1)
    assert presence_events(known_with(CARD), report(swapped)) == [
        CardRemoved(reader=READER, session=CARD.session, reason="removed"),
        CardInserted(reader=READER, atr=swapped.atr, kind=swapped.kind, session=swapped.session),
    ]


def test_same_session_different_atr_removes_then_inserts() -> None:
    other = CardPresence(atr="3B BE 96", kind="hpc", session=CARD.session)
    assert presence_events(known_with(CARD), report(other)) == [
        CardRemoved(reader=READER, session=CARD.session, reason="removed"),
        CardInserted(reader=READER, atr=other.atr, kind=other.kind, session=other.session),
    ]


def test_card_gone_removes() -> None:
    assert presence_events(known_with(CARD), report()) == [
        CardRemoved(reader=READER, session=CARD.session, reason="removed")
    ]


def test_empty_and_empty_gives_nothing() -> None:
    assert presence_events(known_with(None), report()) == []


def test_other_readers_are_not_touched() -> None:
    """A report about one reader never produces events about another."""
    state = known_with(CARD)
    events = presence_events(state, report(reader="Other Reader"))
    assert events == [ReaderAttached(reader="Other Reader", backend="pcsc")]
