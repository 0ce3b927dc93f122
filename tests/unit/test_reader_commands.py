"""Settings and bench commands in the core, the routing rule, and the per-reader dispatch queues."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from broker.core import ConsoleCore
from broker.domain.routing import auto_detected_reader, reader_for
from broker.domain.state import ConsoleState
from broker.flows.runner import CardStep, Flow
from broker.handlers import StartFlow
from broker.runtime.clock import ManualClock
from broker.runtime.dispatch import PendingCommand, ReaderQueues
from contract.protocol import CallMeta, CardPresence, Reply, Request, WorkerStatus
from contract.status_codes import StatusCode
from eventlog.memory_store import MemoryEventStore
from sim.bench import MAX_BENCH_READERS, bench_extension, reset_bench


def request(command: str, args: dict[str, Any] | None = None, recorded: bool = True) -> Request:
    call = CallMeta(url=f"/api/x/{command}", uuid=f"u-{command}") if recorded else None
    return Request(id="r", command=command, args=args or {}, call=call)


def report(reader: str, kind: str | None, session: int = 1) -> WorkerStatus:
    card = None if kind is None else CardPresence(atr="3B00", kind=kind, session=session)
    return WorkerStatus(reader=reader, backend="test:open", pid=10, card=card)


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def core(store: MemoryEventStore) -> ConsoleCore:
    core = ConsoleCore(store, ManualClock())
    core.install(bench_extension("sim.virtual_reader:open_reader"))  # what `serve --sim` wires in
    return core


def first_step(outcome: object) -> tuple[Flow, CardStep]:
    """A card command is a flow: its first step, and the flow to answer it."""
    assert isinstance(outcome, StartFlow), outcome
    step = next(outcome.flow)
    assert isinstance(step, CardStep)
    return outcome.flow, step


def finish(flow: Flow, reply: Reply) -> tuple[int, dict[str, Any]]:
    try:
        flow.send(reply)
    except StopIteration as stop:
        return stop.value  # a flow's return value is its outcome
    raise AssertionError("the flow took another step")


def answer(core: ConsoleCore, command: str, args: dict[str, Any] | None = None) -> Reply:
    outcome = core.handle(request(command, args))
    assert isinstance(outcome, Reply), outcome
    return outcome


def test_readers_are_listed_sorted(core: ConsoleCore) -> None:
    core.worker_reported(report("B reader", None))
    core.worker_reported(report("A reader", "hc"))
    assert answer(core, "ListReaders").body == {"readers": ["A reader", "B reader"]}


def test_default_reader_set_get_clear_and_unknown_name(core: ConsoleCore) -> None:
    core.worker_reported(report("A", None))
    assert answer(core, "GetDefaultReader").code == StatusCode.NO_DEFAULT_READER
    assert answer(core, "SetDefaultReader", {"readerName": "nope"}).code == StatusCode.READER_NAME_UNKNOWN
    assert core.state.default_reader is None
    assert answer(core, "SetDefaultReader", {"readerName": "A"}).code == 0
    assert answer(core, "GetDefaultReader").body == {"readerName": "A"}
    assert answer(core, "ClearDefaultReader").code == 0
    assert core.state.default_reader is None


def test_the_default_reader_survives_a_restart(core: ConsoleCore, store: MemoryEventStore) -> None:
    core.worker_reported(report("A", None))
    answer(core, "SetDefaultReader", {"readerName": "A"})
    core.commit()
    assert ConsoleCore(store.crash_and_reopen(), ManualClock()).state.default_reader == "A"


def test_auto_detect_prefers_a_health_card_and_fails_with_1601(core: ConsoleCore) -> None:
    core.worker_reported(report("A", None))
    assert answer(core, "AutoDetectReader").code == StatusCode.AUTO_DETECT_FAILED
    core.worker_reported(report("C", "hpc"))
    core.worker_reported(report("B", "hc"))
    reply = answer(core, "AutoDetectReader")
    assert (reply.code, reply.body) == (0, {"readerName": "B"})
    assert core.state.default_reader == "B"


def test_routing_rule() -> None:
    core = ConsoleCore(MemoryEventStore(), ManualClock())
    assert reader_for(core.state, "hc") == StatusCode.NO_DEFAULT_READER
    core.worker_reported(report("staff", "hpc"))
    core.worker_reported(report("patient", "hc"))
    assert reader_for(core.state, "hc") == "patient"  # the one other reader holding one
    assert reader_for(core.state, "hpc") == "staff"
    core.worker_reported(report("second patient", "hc"))
    assert reader_for(core.state, "hc") == StatusCode.NO_DEFAULT_READER  # two candidates, no default: no guess
    core.handle(request("SetDefaultReader", {"readerName": "second patient"}))
    assert reader_for(core.state, "hc") == "second patient"
    core.handle(request("SetDefaultReader", {"readerName": "staff"}))
    assert reader_for(core.state, "hc") == StatusCode.NO_CARD  # default holds no HC, two others do
    assert auto_detected_reader(ConsoleState()) is None


def test_read_public_data_is_forwarded_to_the_routed_reader_and_recorded_when_finished(
    core: ConsoleCore, store: MemoryEventStore
) -> None:
    core.worker_reported(report("patient", "hc"))
    flow, step = first_step(core.handle(request("ReadPublicData")))
    assert step.reader == "patient" and step.command == "ReadPublicData"
    assert store.last_call_seq() == 0  # not recorded until the worker answered
    code, body = finish(flow, Reply(id="w", code=0, body={"cardId": "900000000711"}))
    core.answer(request("ReadPublicData"), code, body)
    assert store.calls_newest_first(0, 10)[0].status_code == 0


def test_read_public_data_without_a_card(core: ConsoleCore) -> None:
    core.worker_reported(report("empty", None))
    assert answer(core, "ReadPublicData", {"reader": "empty"}).code == StatusCode.NO_CARD
    assert answer(core, "ReadPublicData", {"reader": "missing"}).code == StatusCode.READER_NAME_UNKNOWN


def test_bench_readers_plug_unplug_and_cards(core: ConsoleCore) -> None:
    assert answer(core, "SimPlugReader", {"reader": "Bench A"}).code == 0
    assert answer(core, "SimPlugReader", {"reader": "Bench A"}).code == StatusCode.BAD_PARAMETER
    assert answer(core, "SimListReaders").body == {"readers": [{"name": "Bench A", "card": None}]}
    put, step = first_step(core.handle(request("SimPutCard", {"reader": "Bench A", "profile": "hc-basic"})))
    assert step.args == {"action": "insert", "profile": "hc-basic"}
    assert finish(put, Reply(id="w", code=0, body={})) == (0, {})
    assert answer(core, "SimListReaders").body == {"readers": [{"name": "Bench A", "card": {"profile": "hc-basic"}}]}
    refused, _ = first_step(core.handle(request("SimPutCard", {"reader": "Bench A", "profile": "hpc-doctor"})))
    finish(refused, Reply(id="w", code=1704, body={"message": "no"}))
    assert core.state.sim_readers["Bench A"] == "hc-basic"  # a failed insertion changes nothing
    missing = answer(core, "SimTakeCard", {"reader": "nope"})
    assert missing.code != 0 and missing.body["notFound"] is True
    assert answer(core, "SimUnplugReader", {"reader": "Bench A"}).code == 0
    assert answer(core, "SimListReaders").body == {"readers": []}


def test_a_full_bench_refuses_another_reader_and_changes_nothing(core: ConsoleCore) -> None:
    """Each bench reader is a worker process: a script plugging readers in a loop stops at the limit."""
    for number in range(MAX_BENCH_READERS):
        assert answer(core, "SimPlugReader", {"reader": f"Bench {number}"}).code == 0
    events_before = len(list(core.ledger.store.events()))
    refused = answer(core, "SimPlugReader", {"reader": "One Too Many"})
    assert (
        refused.code == StatusCode.BAD_PARAMETER and f"{MAX_BENCH_READERS} readers at most" in refused.body["message"]
    )
    assert "One Too Many" not in core.state.sim_readers and len(list(core.ledger.store.events())) == events_before
    assert answer(core, "SimUnplugReader", {"reader": "Bench 0"}).code == 0
    assert answer(core, "SimPlugReader", {"reader": "One Too Many"}).code == 0


def test_bench_commands_outside_sim_mode_are_refused() -> None:
    """Without the bench wired in, its commands are unknown to the core: refused, nothing run."""
    core = ConsoleCore(MemoryEventStore(), ManualClock())
    reply = core.handle(request("SimPlugReader", {"reader": "Bench A"}))
    assert isinstance(reply, Reply) and reply.code == StatusCode.BAD_PARAMETER
    assert "unknown command" in reply.body["message"] and core.state.sim_readers == {}


def test_reset_bench_reaches_the_start_state_from_anything(core: ConsoleCore) -> None:
    answer(core, "SimPlugReader", {"reader": "leftover"})
    reset_bench(core.context, ["R0", "R1"], {"R0": "hc-basic", "R1": "hpc-doctor"}, "R0")
    assert dict(core.state.sim_readers) == {"R0": "hc-basic", "R1": "hpc-doctor"}
    assert core.state.default_reader == "R0"
    events_before = len(list(core.ledger.store.events()))
    reset_bench(core.context, ["R0", "R1"], {"R0": "hc-basic", "R1": "hpc-doctor"}, "R0")
    assert len(list(core.ledger.store.events())) == events_before  # already there: nothing appended


flows = itertools.count(1)


def pending(reader: str, deadline: float = 10.0) -> PendingCommand:
    """A one-step flow's card command (each its own flow)."""
    return PendingCommand(flow_id=next(flows), reader=reader, command="ReadPublicData", args={}, deadline=deadline)


def test_one_command_in_flight_per_reader_and_readers_in_parallel() -> None:
    queues = ReaderQueues()
    ids = iter(str(n) for n in range(100))
    for reader in ("A", "A", "B"):
        assert queues.submit(pending(reader))
    first = queues.next_to_send("A", lambda: next(ids))
    assert first is not None and queues.next_to_send("A", lambda: next(ids)) is None
    assert queues.next_to_send("B", lambda: next(ids)) is not None  # another reader is not held up
    assert queues.complete("A", "wrong id") is None
    assert queues.complete("A", first.worker_request_id) is first
    queues.release(first.flow_id)  # its flow ended (the runner releases what a flow held)
    assert queues.next_to_send("A", lambda: next(ids)) is not None


def test_a_full_queue_refuses_instead_of_dropping() -> None:
    queues = ReaderQueues(limit=2)
    assert queues.submit(pending("A")) and queues.submit(pending("A"))
    assert not queues.submit(pending("A"))


def test_deadlines_and_a_dead_worker() -> None:
    queues = ReaderQueues()
    queues.submit(pending("A", deadline=5))
    queues.submit(pending("A", deadline=50))
    sent = queues.next_to_send("A", lambda: "1")
    assert queues.expired(now=6) == [sent]
    assert sent is not None
    queues.release(sent.flow_id)  # its flow ended with the timeout's answer
    assert queues.complete("A", "1") is None  # a late reply to a command already answered is dropped
    queues.next_to_send("A", lambda: "2")
    in_flight = queues.fail_in_flight("A")
    assert in_flight is not None and in_flight.worker_request_id == "2"
    assert queues.next_to_send("A", lambda: "3") is None  # nothing resent, nothing left


def test_pcsc_discovery_knows_the_readers_as_soon_as_it_starts() -> None:
    import time

    from broker.runtime.pcsc_discovery import PcscDiscovery

    def slow_listing() -> list[str]:
        time.sleep(0.2)  # with a listing only on the thread, start() would return before this
        return ["Reader A"]

    discovery = PcscDiscovery(slow_listing, interval=60)
    discovery.start()
    try:
        assert discovery.readers() == frozenset({"Reader A"})  # no wait for the thread's first turn
    finally:
        discovery.stop()


def test_pcsc_discovery_survives_a_failing_listing() -> None:
    from broker.runtime.pcsc_discovery import PcscDiscovery

    def broken() -> list[str]:
        raise RuntimeError("pcscd fell over")

    discovery = PcscDiscovery(broken, interval=60)
    discovery.start()
    try:
        assert discovery.readers() == frozenset()
    finally:
        discovery.stop()


def test_a_command_submitted_ahead_goes_before_those_waiting() -> None:
    queues = ReaderQueues()
    waiting = pending("A")
    queues.submit(waiting)
    offer = pending("A")
    queues.submit(offer, ahead=True)
    assert queues.next_to_send("A", lambda: "1") is offer


def test_a_restarted_bench_worker_gets_its_card_ahead_of_what_waits(core: ConsoleCore) -> None:
    """The bench's card for an empty, just-started bench reader goes in before anything already asked of it, as
    the card was there all along (a removal asked before the worker started must find it, not be undone by it)."""
    assert answer(core, "SimPlugReader", {"reader": "Bench A"}).code == 0
    put, _ = first_step(core.handle(request("SimPutCard", {"reader": "Bench A", "profile": "hc-basic"})))
    finish(put, Reply(id="w", code=0, body={}))
    [offer] = core.worker_reported(report("Bench A", None))
    step = next(offer)
    assert isinstance(step, CardStep) and step.ahead and step.args == {"action": "insert", "profile": "hc-basic"}
    assert core.worker_reported(report("Bench A", None)) == [], "only on a worker's first report"
