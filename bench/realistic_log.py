"""A large event log with a clinic's mix of events, written by the console's own writer (`SqliteEventStore`).

Why not bench/make_log.py's insert/remove pairs: a start-up measurement should fold what a clinic's log holds
(readers attached, sessions opened and verified at the DC, staff cards with their PIN, patients' health cards
detected, authenticated, their PIN state read, removed), so that the fold's cost per event is the real one.
Every payload is a real domain event, encoded as the broker encodes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from broker.domain import events as domain
from eventlog import format_record_timestamp
from eventlog.sqlite_store import SqliteEventStore

BATCH = 10_000
HC_ATR = "3B8980018057424E4348484396"
HPC_ATR = "3B8980018057424E4348485096"


def clinic_events() -> Iterator[domain.Event]:
    """Days of a two-reader clinic, without end: a session a day, a staff card, forty patients."""
    day = 0
    session = 1_700_000_000_000
    while True:
        day += 1
        yield domain.ReaderAttached(reader="Reader 0", backend="pcsc")
        yield domain.ReaderAttached(reader="Reader 1", backend="pcsc")
        yield domain.SessionInitialized(device="901000000047", sam_type=1, reader="Reader 0")
        yield domain.SamVerified(expires_at="2026-12-04T22:00:00+08:00")
        session += 1
        staff = session
        yield domain.CardInserted("Reader 1", HPC_ATR, "hpc", staff, f"card:{day:032x}", 1)
        yield domain.CardDetected(kind="hpc", reader="Reader 1", session=staff)
        yield domain.CardAuthenticated(kind="hpc", reader="Reader 1", session=staff)
        yield domain.HpcPinVerified(reader="Reader 1", session=staff, expires_at="2026-12-04T18:00:00+08:00")
        for patient in range(40):
            session += 1
            yield domain.CardInserted("Reader 0", HC_ATR, "hc", session, f"card:{day:016x}{patient:016x}", None)
            yield domain.CardDetected(kind="hc", reader="Reader 0", session=session)
            yield domain.CardAuthenticated(kind="hc", reader="Reader 0", session=session)
            yield domain.HcPinStateRead(reader="Reader 0", session=session, has_pin=patient % 3 == 0, verified=None)
            if patient % 3 == 0:
                yield domain.HcPinVerified(reader="Reader 0", session=session)
                yield domain.HcHpcAuthenticated()
            yield domain.CardRemoved(reader="Reader 0", session=session, reason="removed")
            if patient == 20:
                yield domain.SamSessionExpired()
                yield domain.SamVerified(expires_at="2026-12-04T23:00:00+08:00")
        yield domain.HpcAuthenticationExpired()
        yield domain.CardRemoved(reader="Reader 1", session=staff, reason="removed")
        yield domain.SessionFinalized(reason="finalize")
        if day % 30 == 0:
            yield domain.CallRecordCleared(through_seq=0)


def make_realistic_log(database: Path, events: int, durability: str = "normal") -> None:
    """`events` events of `clinic_events()`, committed in batches of BATCH (one fsync each)."""
    store = SqliteEventStore(database, durability=durability)
    try:
        base_ns = time.time_ns() - events * 1_000_000
        source = clinic_events()
        for index in range(events):
            type_name, version, payload = domain.encode(next(source))
            store.append_event(type_name, version, payload, format_record_timestamp(base_ns + index * 1_000_000))
            if index % BATCH == BATCH - 1:
                store.commit()
        store.commit()
    finally:
        store.close()
