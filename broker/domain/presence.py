"""What a worker's status report means for the state: the pure reconcile step.

Reports arrive on every change and every heartbeat interval; this function
turns the difference between what the state believes and what the worker sees
into events, and returns nothing when they agree, so it is harmless to run on
every report.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.domain.events import CardInserted, CardRemoved, CardSessionResumed, Event, ReaderAttached
from broker.domain.state import CardInReader, ConsoleState
from contract.protocol import WorkerStatus


def _departed_as(departed: CardInReader | None, session: int, atr: str) -> CardInReader | None:
    """`departed` if it is the card of that insertion session and ATR (the proof it never left), else None."""
    if departed is not None and departed.session == session and departed.atr == atr:
        return departed
    return None


def presence_events(
    state: ConsoleState, report: WorkerStatus, card_ref: Callable[[str], str] | None = None
) -> list[Event]:
    """`card_ref` turns a card number into the installation's pseudonym; the number itself never enters an event."""
    events: list[Event] = []
    reader = state.readers.get(report.reader)
    if reader is None:
        events.append(ReaderAttached(reader=report.reader, backend=report.backend))
    believed = reader.card if reader is not None else None
    seen = report.card
    same_card = (
        believed is not None and seen is not None and believed.session == seen.session and believed.atr == seen.atr
    )
    if believed is not None and not same_card:
        events.append(CardRemoved(reader=report.reader, session=believed.session, reason="removed"))
    departed = state.departed_cards.get(report.reader)
    if believed is None and seen is not None and _departed_as(departed, seen.session, seen.atr) is not None:
        # Its worker never saw it leave and never restarted (a new worker numbers a card anew): the same card.
        events.append(CardSessionResumed(reader=report.reader, session=seen.session))
        return events
    if seen is not None and not same_card:
        reference = card_ref(seen.card_number) if card_ref is not None and seen.card_number else None
        events.append(
            CardInserted(
                reader=report.reader,
                atr=seen.atr,
                kind=seen.kind,
                session=seen.session,
                card_ref=reference,
                card_type=seen.card_type,
            )
        )
    return events
