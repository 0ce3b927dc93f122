"""`ConsoleCore`: commands in, replies and stored events/calls out.

Run over `MemoryEventStore` and `ManualClock` (and once over SQLite), these
tests pin down the call record (what is recorded, with which code and
timestamp) and the restart guarantee: a core rebuilt from the committed store
has exactly the state of the core that wrote it, and uncommitted work is gone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.core import ConsoleCore
from broker.domain.events import (
    CallRecordCleared,
    CardInserted,
    Event,
    ReaderAttached,
    ReaderDetached,
    WorkerLost,
    decode,
)
from broker.domain.state import CardInReader, ConsoleState, ReaderState, render_status
from broker.runtime.clock import ManualClock
from contract.commands import MAX_RECORD_TAKE
from contract.protocol import CallMeta, CardPresence, Reply, Request, WorkerStatus
from eventlog import EventStore, format_record_timestamp
from eventlog.memory_store import MemoryEventStore
from eventlog.sqlite_store import SqliteEventStore

TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}[+-]\d{2}:\d{2}")
STATUS_URL = "/api/common/v1/Status"
CARD = CardPresence(atr="3B 7F 11", kind="hc", session=1)


def request(command: str, args: dict[str, Any] | None = None, call: CallMeta | None = None, id: str = "r-1") -> Request:
    return Request(id=id, command=command, args=args or {}, call=call)


def recorded(url: str = STATUS_URL, uuid: str = "u-1") -> CallMeta:
    return CallMeta(url=url, uuid=uuid)


def answered(core: ConsoleCore, sent: Request) -> Reply:
    """`core.handle` for a command the core answers at once (no flow, no long poll)."""
    reply = core.handle(sent)
    assert isinstance(reply, Reply)
    return reply


def stored_events(store: EventStore) -> list[Event]:
    return [decode(stored.type, stored.version, stored.payload) for stored in store.events()]


def list_records(core: ConsoleCore, **args: Any) -> list[dict[str, Any]]:
    reply = answered(core, request("ListRecords", args))
    assert reply.code == 0
    records: list[dict[str, Any]] = reply.body["records"]
    return records


def uuids(records: list[dict[str, Any]]) -> list[str]:
    return [record["uuid"] for record in records]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def core(store: MemoryEventStore, clock: ManualClock) -> ConsoleCore:
    return ConsoleCore(store, clock)


def record_calls(core: ConsoleCore, clock: ManualClock, count: int, prefix: str = "u") -> None:
    for index in range(count):
        clock.advance(0.001)
        core.handle(request("GetStatus", call=recorded(f"/api/call/{index}", f"{prefix}{index}")))


# --- GetStatus and the call record ------------------------------------------------


def test_get_status_with_call_meta_answers_and_records_one_call(
    core: ConsoleCore, store: MemoryEventStore, clock: ManualClock
) -> None:
    reply = answered(core, request("GetStatus", call=recorded(STATUS_URL, "uuid-42"), id="req-7"))
    assert reply == Reply(id="req-7", code=0, body={"status": render_status(ConsoleState())})
    calls = store.calls_newest_first(0, 10)
    assert len(calls) == 1
    call = calls[0]
    assert (call.url, call.uuid, call.status_code) == (STATUS_URL, "uuid-42", 0)
    assert TIMESTAMP_SHAPE.fullmatch(call.timestamp), call.timestamp
    assert call.timestamp == format_record_timestamp(clock.wall_ns())
    assert list(store.events()) == []


def test_get_status_reflects_current_state(core: ConsoleCore) -> None:
    core.worker_reported(WorkerStatus(reader="R", backend="pcsc", pid=1, card=CARD))
    reply = answered(core, request("GetStatus"))
    assert reply.body == {"status": render_status(core.state)}
    assert set(reply.body["status"]) == {"hc", "hpc", "initialized", "name", "readerName", "sam"}


def test_request_without_call_meta_records_nothing(core: ConsoleCore, store: MemoryEventStore) -> None:
    reply = answered(core, request("GetStatus"))
    assert reply.code == 0
    assert store.last_call_seq() == 0
    assert list(store.events()) == []


def test_record_timestamps_follow_the_clock(core: ConsoleCore, clock: ManualClock) -> None:
    core.handle(request("GetStatus", call=recorded(uuid="a")))
    clock.advance(1.5)
    core.handle(request("GetStatus", call=recorded(uuid="b")))
    newest, oldest = list_records(core)
    assert oldest["timestamp"] == format_record_timestamp(clock.wall_ns() - 1_500_000_000)
    assert newest["timestamp"] == format_record_timestamp(clock.wall_ns())
    assert newest["timestamp"] != oldest["timestamp"]


# --- ListRecords ----------------------------------------------------------------------


def test_list_records_newest_first_with_skip_and_take(core: ConsoleCore, clock: ManualClock) -> None:
    record_calls(core, clock, 5)
    assert uuids(list_records(core)) == ["u4", "u3", "u2", "u1", "u0"]
    assert uuids(list_records(core, skip=1, take=2)) == ["u3", "u2"]
    assert uuids(list_records(core, skip=4, take=10)) == ["u0"]
    assert uuids(list_records(core, skip=5)) == []
    assert list_records(core, take=0) == []


def test_list_records_shape(core: ConsoleCore, clock: ManualClock) -> None:
    """Each record has exactly the spec's four fields with the spec's names."""
    core.handle(request("RecordCall", {"statusCode": 1500}, call=recorded("/api/hc/v1/Basic", "u-9")))
    [record] = list_records(core)
    assert record == {
        "url": "/api/hc/v1/Basic",
        "uuid": "u-9",
        "timestamp": format_record_timestamp(clock.wall_ns()),
        "statusCode": 1500,
    }


def test_list_records_default_take_is_100(core: ConsoleCore, store: MemoryEventStore) -> None:
    for index in range(120):
        store.append_call("/api/x", f"u{index}", "2024-05-23T15:38:00.2514272+08:00", 0)
    records = list_records(core)
    assert len(records) == 100
    assert records[0]["uuid"] == "u119"


def test_list_records_caps_take_at_max(core: ConsoleCore, store: MemoryEventStore) -> None:
    for index in range(MAX_RECORD_TAKE + 5):
        store.append_call("/api/x", f"u{index}", "2024-05-23T15:38:00.2514272+08:00", 0)
    records = list_records(core, take=MAX_RECORD_TAKE * 10)
    assert len(records) == MAX_RECORD_TAKE
    assert records[0]["uuid"] == f"u{MAX_RECORD_TAKE + 4}"


def test_list_records_is_not_itself_recorded(core: ConsoleCore, store: MemoryEventStore, clock: ManualClock) -> None:
    """The API sends ListRecords without call metadata; listing twice shows the same records, no events."""
    record_calls(core, clock, 2)
    first = list_records(core)
    second = list_records(core)
    assert first == second
    assert store.last_call_seq() == 2
    assert list(store.events()) == []


# --- ClearRecords ----------------------------------------------------------------------


def test_clear_records_hides_everything_so_far_but_later_calls_show(
    core: ConsoleCore, store: MemoryEventStore, clock: ManualClock
) -> None:
    record_calls(core, clock, 3, prefix="before")
    reply = answered(core, request("ClearRecords"))
    assert (reply.code, reply.body) == (0, {})
    assert list_records(core) == []
    assert stored_events(store) == [CallRecordCleared(through_seq=3)]
    assert store.last_call_seq() == 3, "clearing hides, it never deletes"
    record_calls(core, clock, 2, prefix="after")
    assert uuids(list_records(core)) == ["after1", "after0"]


def test_clear_records_twice_keeps_later_calls(core: ConsoleCore, clock: ManualClock) -> None:
    record_calls(core, clock, 2, prefix="a")
    core.handle(request("ClearRecords"))
    record_calls(core, clock, 1, prefix="b")
    core.handle(request("ClearRecords"))
    assert list_records(core) == []
    record_calls(core, clock, 1, prefix="c")
    assert uuids(list_records(core)) == ["c0"]


# --- RecordCall ------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1704, 9999])
def test_record_call_records_its_own_status_code(core: ConsoleCore, store: MemoryEventStore, code: int) -> None:
    reply = answered(core, request("RecordCall", {"statusCode": code}, call=recorded("/api/common/v1/Version", "v-1")))
    assert (reply.code, reply.body) == (code, {})
    [call] = store.calls_newest_first(0, 10)
    assert (call.url, call.uuid, call.status_code) == ("/api/common/v1/Version", "v-1", code)


# --- bad commands ------------------------------------------------------------------------

BAD_COMMANDS: list[tuple[str, dict[str, Any], str]] = [
    ("NoSuchCommand", {}, "NoSuchCommand"),
    ("ListRecords", {"skip": -1}, "skip"),
    ("ListRecords", {"take": -5}, "take"),
    ("ListRecords", {"take": True}, "take"),
    ("ListRecords", {"take": "10"}, "take"),
    ("ListRecords", {"skip": 1.0}, "skip"),
    ("RecordCall", {}, "statusCode"),
    ("RecordCall", {"statusCode": 10_000}, "statusCode"),
]


@pytest.mark.parametrize(("command", "args", "field"), BAD_COMMANDS)
def test_bad_command_with_call_meta_answers_1704_and_records_it(
    core: ConsoleCore, store: MemoryEventStore, command: str, args: dict[str, Any], field: str
) -> None:
    state_before = core.state
    reply = answered(core, request(command, args, call=recorded("/api/bad", "bad-1"), id="b-1"))
    assert reply.id == "b-1"
    assert reply.code == 1704
    assert field in reply.body["message"]
    [call] = store.calls_newest_first(0, 10)
    assert (call.url, call.uuid, call.status_code) == ("/api/bad", "bad-1", 1704)
    assert list(store.events()) == []
    assert core.state == state_before


@pytest.mark.parametrize(("command", "args", "field"), BAD_COMMANDS)
def test_bad_command_without_call_meta_records_nothing(
    core: ConsoleCore, store: MemoryEventStore, command: str, args: dict[str, Any], field: str
) -> None:
    reply = answered(core, request(command, args))
    assert reply.code == 1704
    assert field in reply.body["message"]
    assert store.last_call_seq() == 0
    assert list(store.events()) == []


# --- worker reports ------------------------------------------------------------------------


def test_worker_report_attaches_reader_and_inserts_card(core: ConsoleCore, store: MemoryEventStore) -> None:
    report = WorkerStatus(reader="R", backend="pcsc", pid=10, card=CARD)
    core.worker_reported(report)
    assert dict(core.state.readers) == {"R": ReaderState("R", "pcsc", CardInReader(CARD.atr, CARD.kind, CARD.session))}
    expected = [
        ReaderAttached(reader="R", backend="pcsc"),
        CardInserted(reader="R", atr=CARD.atr, kind=CARD.kind, session=CARD.session),
    ]
    assert stored_events(store) == expected
    core.worker_reported(report)
    assert stored_events(store) == expected, "a repeated heartbeat appends nothing"


def test_stored_events_carry_the_clock_time(core: ConsoleCore, store: MemoryEventStore, clock: ManualClock) -> None:
    core.worker_reported(WorkerStatus(reader="R", backend="pcsc", pid=10))
    [stored] = list(store.events())
    assert stored.recorded_at == format_record_timestamp(clock.wall_ns())


def test_worker_lost_clears_card_keeps_reader(core: ConsoleCore, store: MemoryEventStore) -> None:
    core.worker_reported(WorkerStatus(reader="R", backend="pcsc", pid=10, card=CARD))
    core.worker_lost("R", "silent")
    assert dict(core.state.readers) == {"R": ReaderState("R", "pcsc", None)}
    assert stored_events(store)[-1] == WorkerLost(reader="R", reason="silent")


def test_worker_lost_for_unknown_reader_appends_nothing(core: ConsoleCore, store: MemoryEventStore) -> None:
    core.worker_lost("nobody", "silent")
    assert list(store.events()) == []
    assert core.state == ConsoleState()


def test_reader_detached(core: ConsoleCore, store: MemoryEventStore) -> None:
    core.worker_reported(WorkerStatus(reader="R", backend="pcsc", pid=10, card=CARD))
    core.worker_reported(WorkerStatus(reader="S", backend="pcsc", pid=11))
    core.reader_detached("R", "unplugged")
    assert set(core.state.readers) == {"S"}
    assert stored_events(store)[-1] == ReaderDetached(reader="R", reason="unplugged")
    count = len(list(store.events()))
    core.reader_detached("R", "unplugged")
    assert len(list(store.events())) == count, "detaching an unknown reader appends nothing"


def test_report_after_worker_lost_reinserts_card(core: ConsoleCore) -> None:
    """After a worker is lost its card is unknown; the next report (a new worker) brings it back."""
    core.worker_reported(WorkerStatus(reader="R", backend="pcsc", pid=10, card=CARD))
    core.worker_lost("R", "silent")
    core.worker_reported(WorkerStatus(reader="R", backend="pcsc", pid=12, card=CARD))
    assert core.state.readers["R"].card == CardInReader(CARD.atr, CARD.kind, CARD.session)


# --- restart ---------------------------------------------------------------------------------


def run_scenario(core: ConsoleCore, clock: ManualClock) -> None:
    """Reports, losses, detaches and commands: a state with readers, a card and a record watermark."""
    core.worker_reported(WorkerStatus(reader="R0", backend="pcsc", pid=1, card=CARD))
    core.worker_reported(WorkerStatus(reader="R1", backend="pcsc", pid=2))
    core.worker_reported(WorkerStatus(reader="R2", backend="serial", pid=3, card=CardPresence("3B BE", "hpc", 7)))
    record_calls(core, clock, 3, prefix="first")
    core.handle(request("ClearRecords"))
    core.worker_reported(
        WorkerStatus(reader="R0", backend="pcsc", pid=1, card=CardPresence(CARD.atr, CARD.kind, CARD.session + 1))
    )
    core.worker_lost("R2", "silent")
    core.reader_detached("R1", "unplugged")
    core.worker_reported(WorkerStatus(reader="R3", backend="pcsc", pid=4, card=CardPresence("3B 11", "hc", 1)))
    record_calls(core, clock, 2, prefix="second")
    core.handle(request("RecordCall", {"statusCode": 1704}, call=recorded("/api/bad", "bad")))


def assert_nontrivial(state: ConsoleState) -> None:
    """Guards the restart tests against comparing two empty states."""
    assert set(state.readers) == {"R0", "R2", "R3"}
    assert state.readers["R0"].card == CardInReader(CARD.atr, CARD.kind, CARD.session + 1)
    assert state.readers["R2"].card is None
    assert state.record_cleared_through == 3


def test_restart_equality_memory(store: MemoryEventStore, clock: ManualClock) -> None:
    core = ConsoleCore(store, clock)
    run_scenario(core, clock)
    core.commit()
    records_before = list_records(core)
    assert uuids(records_before) == ["bad", "second1", "second0"]
    assert_nontrivial(core.state)

    reopened = ConsoleCore(store.crash_and_reopen(), clock)
    assert reopened.state == core.state
    assert list_records(reopened) == records_before


def test_uncommitted_work_is_lost_by_crash(store: MemoryEventStore, clock: ManualClock) -> None:
    core = ConsoleCore(store, clock)
    run_scenario(core, clock)
    core.commit()
    committed_state = core.state

    core.handle(request("GetStatus", call=recorded(uuid="unanswered")))
    core.worker_reported(WorkerStatus(reader="R9", backend="pcsc", pid=9, card=CARD))
    core.handle(request("ClearRecords"))
    assert core.state != committed_state

    reopened = ConsoleCore(store.crash_and_reopen(), clock)
    assert reopened.state == committed_state
    assert "R9" not in reopened.state.readers
    assert "unanswered" not in uuids(list_records(reopened))
    assert uuids(list_records(reopened)) == ["bad", "second1", "second0"]


def test_restart_equality_sqlite(tmp_path: Path) -> None:
    """The same guarantee over the real store: close (rolling back nothing committed) and reopen the file."""
    path = tmp_path / "events.db"
    clock = ManualClock()
    store = SqliteEventStore(path)
    try:
        core = ConsoleCore(store, clock)
        run_scenario(core, clock)
        core.commit()
        records_before = list_records(core)
        state_before = core.state
        assert_nontrivial(state_before)
        # Uncommitted work at close time must not survive either.
        core.handle(request("GetStatus", call=recorded(uuid="unanswered")))
        core.worker_reported(WorkerStatus(reader="R9", backend="pcsc", pid=9))
    finally:
        store.close()

    reopened_store = SqliteEventStore(path)
    try:
        reopened = ConsoleCore(reopened_store, clock)
        assert reopened.state == state_before
        assert list_records(reopened) == records_before
    finally:
        reopened_store.close()


# A random walk over everything that changes the core, for the restart property.
READERS = st.sampled_from(["R0", "R1", "R2"])
CARDS = st.none() | st.builds(
    CardPresence,
    atr=st.sampled_from(["3B 7F", "3B BE"]),
    kind=st.sampled_from(["hc", "hpc"]),
    session=st.integers(0, 3),
)
Operation = Callable[[ConsoleCore], object]
OPERATIONS: st.SearchStrategy[Operation] = st.one_of(
    st.builds(
        lambda reader, card: lambda core: core.worker_reported(WorkerStatus(reader, "pcsc", 1, card)), READERS, CARDS
    ),
    st.builds(lambda reader: lambda core: core.worker_lost(reader, "silent"), READERS),
    st.builds(lambda reader: lambda core: core.reader_detached(reader, "gone"), READERS),
    st.builds(lambda n: lambda core: core.handle(request("GetStatus", call=recorded(uuid=f"g{n}"))), st.integers(0, 9)),
    st.just(lambda core: core.handle(request("ClearRecords"))),
    st.just(lambda core: core.handle(request("ListRecords", {"take": -1}, call=recorded(uuid="bad")))),
    st.just(lambda core: core.commit()),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(OPERATIONS, max_size=25))
def test_restart_equality_property(operations: list[Operation]) -> None:
    """For any sequence of reports and commands followed by a commit, a reopened core equals the live one."""
    clock = ManualClock()
    store = MemoryEventStore()
    core = ConsoleCore(store, clock)
    for operation in operations:
        operation(core)
        clock.advance(0.01)
    core.commit()
    records = list_records(core, take=MAX_RECORD_TAKE)
    reopened = ConsoleCore(store.crash_and_reopen(), clock)
    assert reopened.state == core.state
    assert list_records(reopened, take=MAX_RECORD_TAKE) == records


@pytest.mark.parametrize("command", ["ListRecords", "ClearRecords"])
def test_the_record_commands_are_never_recorded_even_if_sent_with_call_metadata(
    core: ConsoleCore, store: MemoryEventStore, command: str
) -> None:
    core.handle(request(command, call=recorded(url="/api/common/v1/Record", uuid="u-rec")))
    assert store.last_call_seq() == 0
