"""The flow runner and reader holds: what keeps a multi-step card operation from being interleaved."""

from __future__ import annotations

import itertools
from typing import Any

from broker.dc.seam import DcError
from broker.flows.runner import Acquire, CardStep, DcCall, Flow, FlowRunner, Release
from broker.runtime.dispatch import PendingCommand, ReaderQueues
from contract.protocol import Reply
from contract.status_codes import StatusCode

ids = itertools.count()


def pending(reader: str, flow_id: int | None = None, command: str = "C") -> PendingCommand:
    """A flow's card step; without `flow_id`, a one-step flow of its own."""
    return PendingCommand(
        flow_id=1000 + next(ids) if flow_id is None else flow_id, reader=reader, command=command, args={}, deadline=1e9
    )


def test_a_reader_held_by_a_flow_takes_only_that_flows_commands() -> None:
    queues = ReaderQueues()
    first_step = pending("R", flow_id=7, command="Begin")
    queues.submit(first_step)
    other = pending("R", command="ReadPublicData")
    queues.submit(other)
    sent = queues.next_to_send("R", lambda: "w1")
    assert sent is first_step
    assert queues.complete("R", "w1") is first_step
    assert queues.readers_with_work() == []  # held for flow 7, which has not asked for its next step yet
    assert queues.next_to_send("R", lambda: "w2") is None
    second_step = pending("R", flow_id=7, command="Finish")
    queues.submit(second_step)
    assert queues.next_to_send("R", lambda: "w3") is second_step  # ahead of the command that waited
    queues.complete("R", "w3")
    queues.release(7)
    assert queues.next_to_send("R", lambda: "w4") is other


def test_dropping_a_reader_frees_its_hold() -> None:
    queues = ReaderQueues()
    queues.submit(pending("R", flow_id=3))
    queues.next_to_send("R", lambda: "w")
    queues.drop_reader("R")
    queues.submit(pending("R"))
    assert queues.next_to_send("R", lambda: "w2") is not None


class Recorder:
    def __init__(self) -> None:
        self.cards: list[tuple[int, CardStep]] = []
        self.dc: list[tuple[int, DcCall]] = []
        self.released: list[int] = []
        self.runner = FlowRunner(
            lambda flow_id, step: self.cards.append((flow_id, step)),
            lambda flow_id, call: self.dc.append((flow_id, call)),
            self.released.append,
        )


def test_results_flow_back_in_and_the_outcome_goes_out() -> None:
    seen: list[Any] = []

    def flow() -> Flow:
        reply = yield CardStep("R", "Begin")
        seen.append(reply.code)
        value = yield DcCall(lambda dc: dc, "echo")
        seen.append(value)
        return 0, {"done": True}

    recorder = Recorder()
    outcomes: list[Any] = []
    flow_id = recorder.runner.start(flow(), outcomes.append)
    assert [step.command for _, step in recorder.cards] == ["Begin"]
    recorder.runner.card_done(flow_id, Reply(id="x", code=0, body={}))
    assert len(recorder.dc) == 1
    recorder.runner.dc_done(flow_id, "answer")
    assert seen == [0, "answer"] and outcomes == [(0, {"done": True})]
    assert recorder.released == [flow_id] and recorder.runner.active == 0


def test_a_dc_error_is_thrown_into_the_flow() -> None:
    def flow() -> Flow:
        try:
            yield DcCall(lambda dc: dc, "x")
        except DcError as error:
            return int(error.code), {}
        return 0, {}

    recorder = Recorder()
    outcomes: list[Any] = []
    flow_id = recorder.runner.start(flow(), outcomes.append)
    recorder.runner.dc_done(flow_id, DcError(StatusCode.DC_CONNECTION_FAILED, "connectionFailed"))
    assert outcomes == [(1700, {})]
    assert recorder.released == []  # it held no reader


def test_a_resource_is_held_by_one_flow_at_a_time_and_handed_on() -> None:
    order: list[str] = []

    def flow(name: str) -> Flow:
        yield Acquire("sam")
        order.append(f"{name} in")
        yield DcCall(lambda dc: dc, name)
        order.append(f"{name} out")
        yield Release("sam")
        return 0, {}

    recorder = Recorder()
    outcomes: list[Any] = []
    first = recorder.runner.start(flow("a"), outcomes.append)
    second = recorder.runner.start(flow("b"), outcomes.append)
    assert order == ["a in"] and len(recorder.dc) == 1
    recorder.runner.dc_done(first, None)
    assert order == ["a in", "a out", "b in"]
    recorder.runner.dc_done(second, None)
    assert order[-1] == "b out" and len(outcomes) == 2


def test_a_flow_that_ends_holding_a_resource_releases_it() -> None:
    def holder() -> Flow:
        yield Acquire("sam")
        yield DcCall(lambda dc: dc, "x")
        return 1, {}  # no Release: ending is enough

    def waiter() -> Flow:
        yield Acquire("sam")
        return 0, {}

    recorder = Recorder()
    outcomes: list[Any] = []
    holding = recorder.runner.start(holder(), outcomes.append)
    recorder.runner.start(waiter(), outcomes.append)
    assert outcomes == []  # the waiter waits
    recorder.runner.dc_done(holding, None)
    assert outcomes == [(1, {}), (0, {})]


def test_a_bug_in_a_flow_answers_its_caller() -> None:
    def broken() -> Flow:
        yield CardStep("R", "Begin")
        raise RuntimeError("bug")

    recorder = Recorder()
    outcomes: list[Any] = []
    flow_id = recorder.runner.start(broken(), outcomes.append)
    recorder.runner.card_done(flow_id, Reply(id="x", code=0, body={}))
    assert outcomes == [(1799, {"message": "internal error in the console"})]
    assert recorder.released == [flow_id]
