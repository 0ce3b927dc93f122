"""The guarded loop (issue 19): a failing command is undone and answered, a failing commit loses nothing
acknowledged and acknowledges nothing unrecorded, and the state stays the fold of what is committed.

Real SQLite files; the broker is built but never bound to its sockets: its turn is driven by hand (handle the
requests, commit, read the answers), which is what `Broker.run` does around a poll. A full disk is SQLite's
own SQLITE_FULL, made by `PRAGMA max_page_count` on the broker's connection (tests/integration/
test_disk_full.py fills a real file system).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.domain import events as domain
from broker.domain.replay import fold
from broker.flows.runner import DcCall, Outcome, Step
from broker.ledger import Ledger
from broker.runtime.clock import ManualClock
from broker.runtime.config import BrokerConfig
from broker.runtime.loop import Broker
from contract.commands import GetStatus
from contract.protocol import CallMeta, Reply, Request
from contract.status_codes import StatusCode
from eventlog import StoreWriteError
from eventlog.memory_store import MemoryEventStore
from eventlog.sqlite_store import SqliteEventStore
from eventlog.verify import verify

pytestmark = pytest.mark.timeout(60)

_ids = itertools.count(1)


def _request(command: str, args: dict[str, Any] | None = None, recorded: bool = True) -> Request:
    call = CallMeta(url=f"/api/test/{command}", uuid=str(uuid.uuid4())) if recorded else None
    return Request(id=f"r{next(_ids)}", command=command, args=args or {}, call=call)


class Turns:
    """One broker, its turns driven by hand."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock()
        config = BrokerConfig(
            api_endpoint=f"ipc://{tmp_path}/api.sock",
            worker_endpoint=f"ipc://{tmp_path}/workers.sock",
            database=tmp_path / "console.db",
        )
        self.broker = Broker(config, clock=self.clock)
        self.store: SqliteEventStore = self.broker.store

    def turn(self, *requests: Request) -> list[Reply]:
        broker = self.broker
        mark = broker.core.ledger.mark()
        for request in requests:
            broker.handle_request(b"caller", request)
        self.clock.advance(0.01)
        broker.commit_turn(mark, self.clock.monotonic())
        return [answer.reply for answer in broker.take_answers()]

    def fill_the_disk(self) -> None:
        """SQLITE_FULL from the next page the log needs: the file may not grow past its size now."""
        self.store._conn.execute("PRAGMA max_page_count = 1")  # noqa: SLF001 - a full disk, for SQLite

    def free_space(self) -> None:
        self.store._conn.execute("PRAGMA max_page_count = 1073741823")  # noqa: SLF001

    def committed_uuids(self) -> list[str]:
        """The committed calls, newest first, read on a connection of its own (what a restart would find)."""
        reader = SqliteEventStore(self.store.path)
        try:
            return [row.uuid for row in reader.calls_newest_first(0, 100_000)]
        finally:
            reader.close()


@pytest.fixture
def turns(tmp_path: Path) -> Iterator[Turns]:
    made = Turns(tmp_path)
    yield made
    made.broker._shutdown()  # noqa: SLF001 - closes what `run` would have


def test_a_command_that_raises_is_undone_and_answered_1799_and_the_broker_goes_on(turns: Turns) -> None:
    core = turns.broker.core

    def broken(ctx: Any, command: Any) -> Any:
        ctx.emit(domain.DefaultReaderSet(reader="Half Done Reader"))
        raise RuntimeError("a bug")

    core._handlers[GetStatus] = broken  # noqa: SLF001 - a handler with a bug
    before = core.state
    first, second = _request("GetStatus"), _request("ListReaders")
    replies = turns.turn(first, second)
    assert [reply.code for reply in replies] == [StatusCode.DC_UNDEFINED_ERROR, StatusCode.OK]
    assert replies[0].body == {"message": "internal error in the console"}
    assert core.state == before  # the half-done event is gone from the state ...
    types = [event.type for event in turns.store.events()]
    assert "DefaultReaderSet" not in types  # ... and from the log
    assert first.call is not None and second.call is not None
    assert turns.committed_uuids() == [second.call.uuid, first.call.uuid]  # the 1799 is recorded, as flows do


def test_a_failed_commit_answers_1098_rolls_back_and_recovers_when_space_returns(turns: Turns) -> None:
    acknowledged: list[str] = []
    refused: list[str] = []

    def run(*requests: Request) -> list[Reply]:
        replies = turns.turn(*requests)
        for request, reply in zip(requests, replies, strict=True):
            assert request.call is not None
            if reply.code == StatusCode.NOT_RECORDED:
                refused.append(request.call.uuid)
            else:
                assert reply.code == StatusCode.OK
                acknowledged.append(request.call.uuid)
        return replies

    run(_request("GetStatus"), _request("GetStatus"))
    turns.fill_the_disk()
    for _ in range(200):
        replies = run(*(_request("GetStatus") for _ in range(5)))
        if any(reply.code == StatusCode.NOT_RECORDED for reply in replies):
            break
    else:
        pytest.fail("the log never filled up")
    # The whole turn is answered 1098, "nothing ran", and nothing of it is pending or in the state.
    assert all(reply.code == StatusCode.NOT_RECORDED for reply in replies)
    assert all(reply.body["mayHaveRun"] is False for reply in replies)
    ledger = turns.broker.core.ledger
    assert ledger.last_event_seq == turns.store.last_event_seq()
    assert turns.store.last_call_seq() == len(acknowledged)  # nothing of the turn is pending
    assert turns.broker.degraded

    # While the log cannot be written, card and DC work is not started at all.
    (initial,) = turns.turn(_request("Initialize"))
    assert initial.code == StatusCode.NOT_RECORDED
    assert initial.body["mayHaveRun"] is False and "was not run" in initial.body["message"]

    turns.free_space()
    run(_request("GetStatus"))
    assert not turns.broker.degraded
    run(_request("GetStatus"), _request("GetStatus"))

    committed = turns.committed_uuids()
    assert sorted(committed) == sorted(acknowledged)  # every acknowledged call, exactly once
    assert not set(committed) & set(refused)  # and none that was answered 1098
    assert verify(turns.store.path).ok


def test_a_flow_alive_during_a_failed_turn_answers_1098_may_have_run(turns: Turns) -> None:
    """A flow still running when a turn fails lost what it appended then: its answer must not claim more."""
    broker = turns.broker
    request = _request("Initialize")
    waiting: list[int] = []

    def hold(flow_id: int, call: DcCall) -> None:
        waiting.append(flow_id)  # a DC call that has not come back yet

    broker._runner._submit_dc = hold  # noqa: SLF001 - a DC call that stays out

    def flow() -> Generator[Step, Any, Outcome]:
        yield DcCall(lambda dc: None, "wait")
        return (0, {"done": True})

    mark = broker.core.ledger.mark()
    broker._start_flow(b"caller", request, flow())  # noqa: SLF001 - what Initialize's StartFlow leads to
    broker.commit_turn(mark, turns.clock.monotonic())
    assert broker.take_answers() == []
    broker.store._failed = "disk full (simulated)"  # noqa: SLF001 - the next commit fails, as after SQLITE_FULL
    mark = broker.core.ledger.mark()
    broker.commit_turn(mark, turns.clock.monotonic())
    broker._runner.dc_done(waiting[0], None)  # noqa: SLF001 - the DC call comes back after the failed turn
    (answer,) = broker.take_answers()
    assert answer.reply.code == StatusCode.NOT_RECORDED
    assert answer.reply.body["mayHaveRun"] is True
    assert "may have run" in answer.reply.body["message"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_ledger_rollback_puts_the_state_and_the_log_back(kind: str, tmp_path: Path) -> None:
    store = MemoryEventStore() if kind == "memory" else SqliteEventStore(tmp_path / "l.db")
    ledger = Ledger(store, ManualClock())
    ledger.emit(domain.DefaultReaderSet(reader="A"))
    ledger.commit()
    turn = ledger.mark()
    ledger.emit(domain.DefaultReaderSet(reader="B"))
    command = ledger.mark()
    ledger.emit(domain.DefaultReaderCleared())
    ledger.record_call("/api/x", "u-1", 0)
    ledger.rollback_to(command)  # one command undone, the one before it kept
    assert ledger.state.default_reader == "B"
    ledger.emit(domain.DefaultReaderSet(reader="C"))
    ledger.rollback_turn(turn)  # the whole turn undone
    assert ledger.state.default_reader == "A"
    assert ledger.last_event_seq == 1 == store.last_event_seq()
    ledger.emit(domain.DefaultReaderSet(reader="D"))  # the seq is handed out again: no one saw the undone one
    ledger.commit()
    state, last = fold(store.events())
    assert (state, last) == (ledger.state, ledger.last_event_seq)
    assert store.calls_newest_first(0, 10) == []
    store.close()
    if kind == "sqlite":
        assert verify(tmp_path / "l.db").ok


def test_sqlite_store_refuses_appends_after_a_failed_write_until_rolled_back(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "s.db")
    store.append_call("/a", "u0", "t", 0)
    store.commit()
    store._conn.execute("PRAGMA max_page_count = 1")  # noqa: SLF001 - a full disk, for SQLite
    with pytest.raises(StoreWriteError):
        for index in range(10_000):
            store.append_call("/a", f"u{index + 1}", "t", 0)
    with pytest.raises(StoreWriteError):
        store.append_call("/a", "late", "t", 0)  # it would chain onto rows that are gone
    with pytest.raises(StoreWriteError):
        store.commit()
    store.rollback()
    store._conn.execute("PRAGMA max_page_count = 1073741823")  # noqa: SLF001
    store.append_call("/a", "after", "t", 0)
    store.commit()
    assert [row.uuid for row in store.calls_newest_first(0, 10)] == ["after", "u0"]
    store.close()
    assert verify(tmp_path / "s.db").ok
