"""The simulation bench's commands in the broker: declared, handled and wired in here, only under `serve --sim`.

The bench's HTTP routes (`sim.control_api`) send these commands; the broker answers them only when its config
names this module (`BrokerConfig.bench`), which `serve --sim` does. Nothing in the production core knows them:
`install` adds their handlers, the bench readers that want workers, and a card for a bench reader's worker
that (re)started empty, to one core (`broker.core.Extension`).

The bench's readers and cards are events (`SimReaderPlugged`, `SimCardPut`…), so a restarted console's bench is
where it was, and the log shows what the bench did.
"""

from __future__ import annotations

import os
from typing import Any, Final

from broker.context import ConsoleContext
from broker.core import ConsoleCore, Extension
from broker.credentials.cloud_sam_file import parse_cloud_sam_file
from broker.domain import events as domain
from broker.flows.runner import Flow
from broker.handlers.registry import Answer, Handler, StartFlow, one_card_step
from broker.runtime.config import BrokerConfig
from contract.arguments import Integer, Text, argument
from contract.commands import READER_NAME, command
from contract.protocol import WorkerStatus
from contract.status_codes import StatusCode
from sim.card_commands import COUNTS_ENV, clear, counts_dir

MAX_CLOCK_ADVANCE: Final = 10 * 366 * 24 * 3600
MAX_BENCH_READERS: Final = 16
"""Bench readers plugged in at once: each is a worker process, so a test script (or a fuzzer) plugging readers
in a loop would otherwise fill a 2-core machine with them; a clinic's counters and desks fit several times over."""
CONTROL_BACKEND = "ControlBackend"
"""The worker command that puts a card in a bench reader or takes it out (`workers.execute`)."""


@command()
class SimListReaders:
    pass


@command()
class SimPlugReader:
    reader: str = argument(READER_NAME, "reader")


@command()
class SimUnplugReader:
    reader: str = argument(READER_NAME, "reader")


@command()
class SimPutCard:
    reader: str = argument(READER_NAME, "reader")
    profile: str = argument(Text(max_length=64), "profile")


@command()
class SimTakeCard:
    reader: str = argument(READER_NAME, "reader")


@command()
class SimAdvanceClock:
    seconds: int = argument(Integer(maximum=MAX_CLOCK_ADVANCE), "advanceSeconds")


def _not_found(message: str) -> Answer:
    """An unknown bench reader: the bench's HTTP layer turns `notFound` into 404."""
    return StatusCode.BAD_PARAMETER, {"message": message, "notFound": True}


def list_readers(ctx: ConsoleContext, command: SimListReaders) -> Answer:
    readers = [
        {"name": name, "card": None if profile is None else {"profile": profile}}
        for name, profile in sorted(ctx.state.sim_readers.items())
    ]
    return StatusCode.OK, {"readers": readers}


def advance_clock(ctx: ConsoleContext, command: SimAdvanceClock) -> Answer:
    if command.seconds:
        ctx.emit(domain.SimClockAdvanced(seconds=command.seconds))
    return StatusCode.OK, {"consoleTime": ctx.now().isoformat()}


def plug_reader(ctx: ConsoleContext, command: SimPlugReader) -> Answer:
    if command.reader in ctx.state.sim_readers or command.reader in ctx.state.readers:
        return StatusCode.BAD_PARAMETER, {"message": "a reader of that name is already plugged in"}
    if len(ctx.state.sim_readers) >= MAX_BENCH_READERS:
        return StatusCode.BAD_PARAMETER, {"message": f"the bench holds {MAX_BENCH_READERS} readers at most: unplug one"}
    ctx.emit(domain.SimReaderPlugged(reader=command.reader))
    return StatusCode.OK, {}


def unplug_reader(ctx: ConsoleContext, command: SimUnplugReader) -> Answer:
    if command.reader not in ctx.state.sim_readers:
        return _not_found("no bench reader of that name")
    ctx.emit(domain.SimReaderUnplugged(reader=command.reader))
    return StatusCode.OK, {}


def _change_card(ctx: ConsoleContext, reader: str, profile: str | None) -> Answer | StartFlow:
    """A flow of one step at the reader's worker; the bench's state follows only a change that worked."""
    if reader not in ctx.state.sim_readers:
        return _not_found("no bench reader of that name")

    def changed(code: int, body: dict[str, Any]) -> None:
        if code == StatusCode.OK and reader in ctx.state.sim_readers:
            ctx.emit(domain.SimCardPut(reader, profile) if profile else domain.SimCardTaken(reader))

    args = {"action": "insert", "profile": profile} if profile else {"action": "remove"}
    return StartFlow(one_card_step(reader, CONTROL_BACKEND, args, then=changed))


def put_card(ctx: ConsoleContext, command: SimPutCard) -> Answer | StartFlow:
    return _change_card(ctx, command.reader, command.profile)


def take_card(ctx: ConsoleContext, command: SimTakeCard) -> Answer | StartFlow:
    return _change_card(ctx, command.reader, None)


HANDLERS: Final[dict[type, Handler]] = {
    SimListReaders: list_readers,
    SimAdvanceClock: advance_clock,
    SimPlugReader: plug_reader,
    SimUnplugReader: unplug_reader,
    SimPutCard: put_card,
    SimTakeCard: take_card,
}


def reset_bench(ctx: ConsoleContext, readers: list[str], cards: dict[str, str], default_reader: str | None) -> None:
    """Bring the bench to its start state (sim-control.md) from whatever the log says it was."""
    for name in sorted(set(ctx.state.sim_readers) - set(readers)):
        ctx.emit(domain.SimReaderUnplugged(reader=name))
    for name in readers:
        if name not in ctx.state.sim_readers:
            ctx.emit(domain.SimReaderPlugged(reader=name))
        if ctx.state.sim_readers.get(name) != cards.get(name):
            profile = cards.get(name)
            ctx.emit(domain.SimCardPut(name, profile) if profile else domain.SimCardTaken(name))
    if default_reader is not None and ctx.state.default_reader is None:
        # Only when none is set: a default the user chose is a setting, and settings persist.
        ctx.emit(domain.DefaultReaderSet(reader=default_reader))


def import_bench_sam(ctx: ConsoleContext, raw: bytes) -> None:
    """The bench's start state holds one imported cloud SAM (sim-control.md); imported like any other."""
    sam_file = parse_cloud_sam_file(raw)
    if sam_file.sam_id not in ctx.state.cloud_sams:
        ctx.devices.cloud_sams.save(sam_file.sam_id, raw)
        ctx.emit(domain.CloudSamImported(sam_id=sam_file.sam_id, hospital_id=sam_file.hospital_id))


class CardOffer:
    """A bench reader's worker that (re)started empty gets the card the bench put in it.

    Only on a worker's first report: later reports of an empty reader may be a removal the bench itself asked
    for, whose `SimCardTaken` is not yet applied when the report arrives.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, int]] = set()

    def __call__(self, ctx: ConsoleContext, report: WorkerStatus) -> Flow | None:
        key = (report.reader, report.pid)
        if key in self._seen:
            return None
        self._seen.add(key)
        profile = ctx.state.sim_readers.get(report.reader)
        if profile is None or report.card is not None:
            return None
        # Ahead of anything already asked of this reader (a card taken out by a caller who did not wait for the
        # worker to start, say): the card the bench put in goes in first, as it would have been there all along.
        return one_card_step(report.reader, CONTROL_BACKEND, {"action": "insert", "profile": profile}, ahead=True)


def bench_extension(backend: str) -> Extension:
    """The bench's handlers, its readers (each with a worker on `backend`) and its card offers."""
    return Extension(
        handlers=HANDLERS,
        readers=lambda state: dict.fromkeys(state.sim_readers, backend),
        on_report=CardOffer(),
    )


def install(core: ConsoleCore, config: BrokerConfig) -> None:
    """`BrokerConfig.bench` names this: wire the bench into the broker's core; on a fresh start (not a restart
    after a crash) bring it to its start state."""
    if config.sim_backend is None:
        return
    # The bench readers' workers, started by this process after this, count the APDUs their cards get into this
    # directory (sim/card_commands.py); a fresh start counts from 0, a restarted broker's adopted workers go on.
    counts = counts_dir(config.database.parent)
    os.environ[COUNTS_ENV] = str(counts)
    if config.adopt_grace == 0:
        clear(counts)
    core.install(bench_extension(config.sim_backend))
    start = config.sim_start
    if start is not None and config.adopt_grace == 0:
        reset_bench(core.context, start.readers, start.cards, start.default_reader)
        if start.cloud_sam is not None:
            import_bench_sam(core.context, start.cloud_sam.read_bytes())
