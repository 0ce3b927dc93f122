"""Multi-step operations (SAM verification, card authentication through the DC) as generators.

A flow is a generator that yields the steps it needs and gets their results
back: a `CardStep` (one worker command; the reply comes back), a `DcCall` (a
function of the `DataCenter`, run off the broker's loop; its result comes
back, or its `DcError` is thrown into the flow), `Acquire` (wait for a named
resource, such as the SAM, held until the flow ends or `Release`s it). It
returns the API's `(statusCode, body)`.

Writing flows this way keeps them pure: the runner below decides nothing, it
only moves results, so a flow is tested by feeding it results in a list, and
the broker's loop stays single-threaded while DC calls and cards take their
time. A reader a flow has used is held for it until it ends (`dispatch`), so no
other command's APDUs land between two of its steps.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from broker.dc.seam import DataCenter, DcError
from contract.protocol import Reply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardStep:
    reader: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    """Seconds the step may take at the reader; None: the broker's default (a keypad entry takes longer)."""
    ahead: bool = False
    """Goes ahead of the commands already waiting for the reader: the bench's card for a worker that has just
    started, which must be in the reader before anything asked of that reader runs."""


@dataclass(frozen=True)
class DcCall:
    call: Callable[[DataCenter], Any]
    name: str
    """The operation's name, for logs (the call's arguments may be secrets)."""


@dataclass(frozen=True)
class Acquire:
    resource: str


@dataclass(frozen=True)
class Release:
    resource: str


Step = CardStep | DcCall | Acquire | Release
Outcome = tuple[int, dict[str, Any]]
Flow = Generator[Step, Any, Outcome]


@dataclass
class FlowRun:
    id: int
    flow: Flow
    on_done: Callable[[Outcome], None]
    held: set[str] = field(default_factory=set)
    readers: set[str] = field(default_factory=set)
    cause: str | None = None
    """The call that started the flow (its uuid), if any: every step of the flow runs as caused by it."""


class FlowRunner:
    """Drives flows: sends their card steps and DC calls out, feeds results back in.

    `send_card(flow_id, step)` queues a worker command whose reply must come back
    through `card_done`; `submit_dc(flow_id, call)` runs a DC call off the loop
    and its result comes back through `dc_done`; `release_readers(flow_id)`
    frees the readers the flow held.
    """

    def __init__(
        self,
        send_card: Callable[[int, CardStep], None],
        submit_dc: Callable[[int, DcCall], None],
        release_readers: Callable[[int], None],
        caused_by: Callable[[str | None], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        self._send_card = send_card
        self._submit_dc = submit_dc
        self._release_readers = release_readers
        self._caused_by = caused_by or (lambda cause: contextlib.nullcontext())
        self._runs: dict[int, FlowRun] = {}
        self._ids = itertools.count(1)
        self._owners: dict[str, int] = {}
        self._waiting: dict[str, deque[int]] = {}

    @property
    def active(self) -> int:
        return len(self._runs)

    def start(self, flow: Flow, on_done: Callable[[Outcome], None], cause: str | None = None) -> int:
        run = FlowRun(next(self._ids), flow, on_done, cause=cause)
        self._runs[run.id] = run
        self._advance(run, lambda: next(run.flow))
        return run.id

    def card_done(self, flow_id: int, reply: Reply) -> None:
        run = self._runs.get(flow_id)
        if run is not None:
            self._advance(run, lambda: run.flow.send(reply))

    def dc_done(self, flow_id: int, result: Any) -> None:
        run = self._runs.get(flow_id)
        if run is None:
            return
        if isinstance(result, DcError):
            self._advance(run, lambda: run.flow.throw(result))
        else:
            self._advance(run, lambda: run.flow.send(result))

    def _advance(self, run: FlowRun, resume: Callable[[], Step]) -> None:
        """Run the flow until it waits for something outside the loop, or ends: as caused by its call."""
        with self._caused_by(run.cause):
            self._run_until_waiting(run, resume)

    def _run_until_waiting(self, run: FlowRun, resume: Callable[[], Step]) -> None:
        while True:
            try:
                step = resume()
            except StopIteration as stop:
                self._end(run, stop.value)
                return
            except Exception:  # a bug in a flow must answer its caller, not kill the broker
                log.exception("flow %d failed", run.id)
                self._end(run, (1799, {"message": "internal error in the console"}))
                return
            if isinstance(step, CardStep):
                run.readers.add(step.reader)
                self._send_card(run.id, step)
                return
            if isinstance(step, DcCall):
                self._submit_dc(run.id, step)
                return
            if isinstance(step, Acquire):
                owner = self._owners.get(step.resource)
                if owner is None or owner == run.id:
                    self._owners[step.resource] = run.id
                    run.held.add(step.resource)
                    resume = lambda: run.flow.send(None)  # noqa: E731
                    continue
                self._waiting.setdefault(step.resource, deque()).append(run.id)
                return
            if isinstance(step, Release):
                self._release(run, step.resource)
                resume = lambda: run.flow.send(None)  # noqa: E731
                continue
            self._end(run, (1799, {"message": "internal error in the console"}))
            log.error("flow %d yielded %r", run.id, step)
            return

    def _release(self, run: FlowRun, resource: str) -> None:
        if self._owners.get(resource) != run.id:
            return
        del self._owners[resource]
        run.held.discard(resource)
        waiting = self._waiting.get(resource)
        while waiting:
            next_id = waiting.popleft()
            waiter = self._runs.get(next_id)
            if waiter is None:
                continue
            self._owners[resource] = next_id
            waiter.held.add(resource)
            self._advance(waiter, functools.partial(waiter.flow.send, None))
            return

    def _end(self, run: FlowRun, outcome: Outcome) -> None:
        """Answer first, then hand on what the flow held: the waiters' answers come after this one."""
        self._runs.pop(run.id, None)
        for waiting in self._waiting.values():
            if run.id in waiting:
                waiting.remove(run.id)
        run.on_done(outcome)
        if run.readers:
            self._release_readers(run.id)
        for resource in list(run.held):
            self._release(run, resource)
