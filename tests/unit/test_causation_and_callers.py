"""Issue 22's record: each call keeps its caller (schema v3) and each event the call that caused it.

The store's side: a caller is one more field of the calls chain (its own tag), NULL for rows recorded before, so
old rows keep the bytes they were chained with and a v2 log or archive reads and verifies unchanged. The broker's
side: the ledger stamps the call being handled on every event, and a flow's later steps keep its call's stamp.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from broker.domain import events as domain
from broker.flows.runner import CardStep, FlowRunner
from broker.ledger import Ledger
from broker.runtime.clock import ManualClock
from contract.protocol import CallMeta, Reply, Request, build, parse
from eventlog import chain
from eventlog.memory_store import MemoryEventStore
from eventlog.reader import LogReader
from eventlog.sqlite_store import CALLS_DDL, CHAIN_HEADS_DDL, EVENTS_DDL, SEGMENTS_DDL, SqliteEventStore
from eventlog.verify import verify
from tests.audit_log import make_v2_archive

TS = "2026-12-04T10:00:00.0000000+08:00"


def test_a_call_without_caller_hashes_as_it_always_did() -> None:
    old = chain.call_bytes(3, "/api/hc/v1/Basic", "u", TS, 0)
    assert old.startswith(chain.CALL_DOMAIN)
    assert chain.call_bytes(3, "/api/hc/v1/Basic", "u", TS, 0, None) == old
    with_caller = chain.call_bytes(3, "/api/hc/v1/Basic", "u", TS, 0, "native")
    assert with_caller.startswith(chain.CALLER_CALL_DOMAIN) and with_caller != old
    assert chain.call_bytes(3, "/api/hc/v1/Basic", "u", TS, 0, "") != old, "an empty caller is still a caller"


def _v2_log(path: Path) -> None:
    """A log exactly as a v2 console left it: one call, chained with the v1 call bytes."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for ddl in (EVENTS_DDL, CALLS_DDL, CHAIN_HEADS_DDL, SEGMENTS_DDL):
        conn.execute(ddl)
    digest = chain.link(chain.GENESIS, chain.call_bytes(1, "/api/common/v1/Status", "u1", TS, 0))
    conn.execute("INSERT INTO calls VALUES (1, '/api/common/v1/Status', 'u1', ?, 0, ?, ?)", (TS, chain.GENESIS, digest))
    conn.execute("INSERT INTO chain_heads VALUES ('events', 0, ?), ('calls', 1, ?)", (chain.GENESIS, digest))
    conn.execute("PRAGMA user_version=2")
    conn.close()


def test_a_v2_log_is_read_as_it_is_then_migrated_keeping_its_rows(tmp_path: Path) -> None:
    database = tmp_path / "console.db"
    _v2_log(database)
    with LogReader(database) as reader:  # a v3 reader on a log no v3 console opened yet
        assert [call.caller for call in reader.calls()] == [None]
    assert verify(database).ok
    store = SqliteEventStore(database)
    try:
        store.append_call("/api/hc/v1/Basic", "u2", TS, 0, "https://his.example")
        store.commit()
        assert store._conn.execute("PRAGMA user_version").fetchone() == (3,)  # noqa: SLF001
    finally:
        store.close()
    with LogReader(database) as reader:
        assert [(call.uuid, call.caller) for call in reader.calls()] == [("u1", None), ("u2", "https://his.example")]
    report = verify(database)
    assert report.ok and report.calls_checked == 2


def test_a_caller_taken_away_or_given_is_an_edit(tmp_path: Path) -> None:
    database = tmp_path / "console.db"
    store = SqliteEventStore(database)
    store.append_call("/api/hc/v1/Basic", "u1", TS, 0, "https://his.example")
    store.append_call("/api/hc/v1/Basic", "u2", TS, 0)
    store.commit()
    store.close()
    for statement, seq in (
        ("UPDATE calls SET caller = NULL WHERE seq = 1", 1),
        ("UPDATE calls SET caller = 'native' WHERE seq = 2", 2),
        ("UPDATE calls SET caller = 'https://evil.example' WHERE seq = 1", 1),
    ):
        copy = tmp_path / f"copy{seq}-{len(statement)}.db"
        shutil.copy(database, copy)
        conn = sqlite3.connect(copy)
        conn.execute(statement)
        conn.commit()
        conn.close()
        report = verify(copy)
        assert report.first is not None and (report.first.table, report.first.seq) == ("calls", seq), statement


def test_an_archive_sealed_by_a_v2_console_reads_and_verifies(tmp_path: Path) -> None:
    database = tmp_path / "console.db"
    store = SqliteEventStore(database)
    for index in range(6):
        store.append_call("/api/common/v1/Status", f"u{index}", TS, 0)
    store.commit()
    segment = store.seal(0, 4, tmp_path / "archive")
    store.append_call("/api/common/v1/Status", "u6", TS, 0, "native")
    store.commit()
    store.close()
    assert segment is not None
    archive = tmp_path / segment.file
    make_v2_archive(archive)  # as a v2 console wrote it
    with LogReader(database) as reader:
        assert [(call.uuid, call.caller) for call in reader.calls()] == [
            *[(f"u{index}", None) for index in range(6)],
            ("u6", "native"),
        ]
    assert verify(database).ok


def test_the_caller_travels_from_the_api_to_the_broker() -> None:
    request = Request(
        id="r", command="GetStatus", call=CallMeta(url="/api/common/v1/Status", uuid="u", caller="native")
    )
    assert parse(build(request)) == request
    bare = Request(id="r", command="GetStatus", call=CallMeta(url="/api/common/v1/Status", uuid="u"))
    assert parse(build(bare)) == bare, "an API that sends no caller: the call keeps none"


def _causes(store: MemoryEventStore) -> list[tuple[str, Any]]:
    return [(event.type, json.loads(event.payload)["caused_by"]) for event in store.events()]


def test_the_ledger_stamps_the_call_being_handled() -> None:
    store = MemoryEventStore()
    ledger = Ledger(store, ManualClock())
    ledger.emit(domain.ReaderAttached(reader="Reader 0", backend="pcsc"))
    with ledger.caused_by("call-1"):
        ledger.emit(domain.CorsHostAllowed(host="his.example"))
        with ledger.caused_by(None):
            ledger.emit(domain.WorkerLost(reader="Reader 0", reason="silent"))
        ledger.emit(domain.DefaultReaderSet(reader="Reader 0"))
    ledger.emit(domain.DefaultReaderCleared())
    assert _causes(store) == [
        ("ReaderAttached", None),
        ("CorsHostAllowed", "call-1"),
        ("WorkerLost", None),
        ("DefaultReaderSet", "call-1"),
        ("DefaultReaderCleared", None),
    ]


def test_each_step_of_a_flow_is_caused_by_the_call_that_started_it() -> None:
    """Two flows interleaved at the card: each one's events name its own call, whoever's reply resumes it."""
    store = MemoryEventStore()
    ledger = Ledger(store, ManualClock())
    sent: list[tuple[int, CardStep]] = []
    runner = FlowRunner(
        lambda flow_id, step: sent.append((flow_id, step)), lambda *_: None, lambda _: None, ledger.caused_by
    )

    def flow(reader: str) -> Generator[CardStep, Any, tuple[int, dict[str, Any]]]:
        ledger.emit(domain.CardDetected(kind="hpc", reader=reader, session=1))
        yield CardStep(reader, "Verify")
        ledger.emit(domain.HpcPinRejected(reader=reader, session=1, tries_left=2, blocked=False))
        return 0, {}

    with ledger.caused_by("outer"):  # the loop's own context while it handles another request
        first = runner.start(flow("A"), lambda outcome: None, cause="call-A")
    second = runner.start(flow("B"), lambda outcome: None, cause="call-B")
    runner.card_done(second, Reply(id="x", code=0, body={}))
    runner.card_done(first, Reply(id="y", code=0, body={}))
    assert _causes(store) == [
        ("CardDetected", "call-A"),
        ("CardDetected", "call-B"),
        ("HpcPinRejected", "call-B"),
        ("HpcPinRejected", "call-A"),
    ]
    ledger.emit(domain.DefaultReaderCleared())
    assert _causes(store)[-1] == ("DefaultReaderCleared", None), "no cause left behind"


@pytest.mark.parametrize("status", [403, 415, 421])
def test_a_refusal_is_an_event_caused_by_the_refused_request(status: int) -> None:
    from broker.core import ConsoleCore

    store = MemoryEventStore()
    core = ConsoleCore(store, ManualClock())
    request = Request(
        id="r",
        command="RecordRefusal",
        args={"url": "/api/hc/v1/Basic", "caller": "https://evil.example", "status": status, "reason": "why"},
        call=CallMeta(url="/api/hc/v1/Basic", uuid="refused-1", caller="https://evil.example"),
    )
    with core.ledger.caused_by("refused-1"):
        reply = core.handle(request)
    assert isinstance(reply, Reply) and reply.code == 0
    assert _causes(store)[-1] == ("CallRefused", "refused-1")
    assert store.calls_newest_first(0, 10) == [], "a refusal is not a call: the Record API does not list it"
