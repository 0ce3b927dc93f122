"""The broker's core: commands in, events and replies out, over an EventStore.

No sockets here: the loop in `broker.loop` feeds it decoded messages and sends
what it returns.  Appends go into the store's open transaction; the loop calls
`commit()` once per batch and only then sends the replies, so a reply never
acknowledges something a crash could still lose.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from broker import events as domain
from broker.clock import Clock
from broker.commands import (
    AutoDetectReader,
    BadArguments,
    ClearDefaultReader,
    ClearRecords,
    Command,
    GetDefaultReader,
    GetStateSnapshot,
    GetStatus,
    ListReaders,
    ListRecords,
    ReadPublicData,
    RecordCall,
    SetDefaultReader,
    SimListReaders,
    SimPlugReader,
    SimPutCard,
    SimTakeCard,
    SimUnplugReader,
    is_recorded,
    parse_command,
)
from broker.routing import auto_detected_reader, reader_for
from broker.presence import presence_events
from broker.pseudonyms import Pseudonyms
from broker.protocol import Reply, Request, WorkerStatus
from broker.state import ConsoleState, apply, render_status, snapshot
from broker.status_codes import StatusCode
from eventlog import EventStore, format_record_timestamp

log = logging.getLogger(__name__)

CARD_COMMAND_TIMEOUT = 10.0
"""Seconds a card command may take at the reader before the client gets an error (the API waits longer)."""


@dataclass(frozen=True)
class Forward:
    """A command the reader's worker must run; `finish` turns its reply into the API's answer."""

    reader: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    finish: Callable[[Reply], tuple[int, dict[str, Any]]] = lambda reply: (reply.code, reply.body)
    timeout: float = CARD_COMMAND_TIMEOUT


def _not_found(message: str) -> tuple[int, dict[str, Any]]:
    """A bench answer for an unknown reader: the bench's HTTP layer turns `notFound` into 404."""
    return int(StatusCode.BAD_PARAMETER), {"message": message, "notFound": True}


class ConsoleCore:
    def __init__(
        self, store: EventStore, clock: Clock, *, sim: bool = False, pseudonyms: Pseudonyms | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self.sim = sim
        # Without the installation's key (unit tests), a throwaway one: pseudonyms still never leak numbers.
        self._pseudonyms = pseudonyms or Pseudonyms(secrets.token_bytes(32))
        self.last_event_seq = 0
        self.state = ConsoleState()
        for stored in store.events():
            self.state = apply(self.state, domain.decode(stored.type, stored.version, stored.payload))
            self.last_event_seq = stored.seq

    # --- requests from the API -------------------------------------------------

    def handle(self, request: Request) -> Reply | Forward:
        """Run one command, or say which worker must; a finished call is recorded with its outcome."""
        try:
            command = parse_command(request.command, request.args)
        except BadArguments as error:
            return self.answer(request, int(StatusCode.BAD_PARAMETER), {"message": str(error)})
        outcome = self._run(command)
        if isinstance(outcome, Forward):
            return outcome
        code, body = outcome
        return self.answer(request, code, body, recorded=is_recorded(command))

    def answer(self, request: Request, code: int, body: dict[str, Any], *, recorded: bool = True) -> Reply:
        if recorded and request.call is not None:
            self._store.append_call(request.call.url, request.call.uuid, self._timestamp(), code)
        return Reply(id=request.id, code=code, body=body)

    def _run(self, command: Command) -> tuple[int, dict[str, Any]] | Forward:
        if isinstance(command, GetStatus):
            return StatusCode.OK, {"status": render_status(self.state)}
        if isinstance(command, GetStateSnapshot):
            return StatusCode.OK, {"throughSeq": self.last_event_seq, "state": snapshot(self.state)}
        if isinstance(command, ListRecords):
            return StatusCode.OK, {"records": self._records(command)}
        if isinstance(command, ClearRecords):
            self.emit(domain.CallRecordCleared(through_seq=self._store.last_call_seq()))
            return StatusCode.OK, {}
        if isinstance(command, RecordCall):
            return command.status_code, {}
        if isinstance(command, ListReaders):
            return StatusCode.OK, {"readers": sorted(self.state.readers)}
        if isinstance(command, GetDefaultReader):
            if self.state.default_reader is None:
                return StatusCode.NO_DEFAULT_READER, {}
            return StatusCode.OK, {"readerName": self.state.default_reader}
        if isinstance(command, SetDefaultReader):
            if command.reader not in self.state.readers:
                return StatusCode.READER_NAME_UNKNOWN, {}
            if self.state.default_reader != command.reader:
                self.emit(domain.DefaultReaderSet(reader=command.reader))
            return StatusCode.OK, {}
        if isinstance(command, ClearDefaultReader):
            if self.state.default_reader is not None:
                self.emit(domain.DefaultReaderCleared())
            return StatusCode.OK, {}
        if isinstance(command, AutoDetectReader):
            found = auto_detected_reader(self.state)
            if found is None:
                return StatusCode.AUTO_DETECT_FAILED, {}
            if self.state.default_reader != found:
                self.emit(domain.DefaultReaderSet(reader=found))
            return StatusCode.OK, {"readerName": found}
        if isinstance(command, ReadPublicData):
            return self._read_public_data(command)
        return self._run_bench(command)

    def _read_public_data(self, command: ReadPublicData) -> tuple[int, dict[str, Any]] | Forward:
        if command.reader is not None:
            reader = self.state.readers.get(command.reader)
            if reader is None:
                return StatusCode.READER_NAME_UNKNOWN, {}
            if reader.card is None:
                return StatusCode.NO_CARD, {}
            return Forward(command.reader, "ReadPublicData")
        routed = reader_for(self.state, "hc")
        if isinstance(routed, StatusCode):
            return routed, {}
        return Forward(routed, "ReadPublicData")

    def _run_bench(self, command: Command) -> tuple[int, dict[str, Any]] | Forward:
        if not self.sim:
            return _not_found("the simulation bench is not running")
        sim_readers = self.state.sim_readers
        if isinstance(command, SimListReaders):
            readers = [
                {"name": name, "card": None if profile is None else {"profile": profile}}
                for name, profile in sorted(sim_readers.items())
            ]
            return StatusCode.OK, {"readers": readers}
        if isinstance(command, SimPlugReader):
            if command.reader in sim_readers or command.reader in self.state.readers:
                return int(StatusCode.BAD_PARAMETER), {"message": "a reader of that name is already plugged in"}
            self.emit(domain.SimReaderPlugged(reader=command.reader))
            return StatusCode.OK, {}
        if not isinstance(command, (SimUnplugReader, SimPutCard, SimTakeCard)):
            raise TypeError(f"no handler for {command!r}")
        if command.reader not in sim_readers:
            return _not_found("no bench reader of that name")
        if isinstance(command, SimUnplugReader):
            self.emit(domain.SimReaderUnplugged(reader=command.reader))
            return StatusCode.OK, {}
        if isinstance(command, SimPutCard):
            return Forward(command.reader, "ControlBackend", {"action": "insert", "profile": command.profile},
                           finish=self._finish_card_change(command.reader, command.profile))
        return Forward(command.reader, "ControlBackend", {"action": "remove"},
                       finish=self._finish_card_change(command.reader, None))

    def _finish_card_change(self, reader: str, profile: str | None) -> Callable[[Reply], tuple[int, dict[str, Any]]]:
        def finish(reply: Reply) -> tuple[int, dict[str, Any]]:
            if reply.code == StatusCode.OK and reader in self.state.sim_readers:
                self.emit(domain.SimCardPut(reader, profile) if profile else domain.SimCardTaken(reader))
            return reply.code, reply.body

        return finish

    def reset_bench(self, readers: list[str], cards: dict[str, str], default_reader: str | None) -> None:
        """Bring the bench to its start state (sim-control.md) from whatever the log says it was."""
        for name in sorted(set(self.state.sim_readers) - set(readers)):
            self.emit(domain.SimReaderUnplugged(reader=name))
        for name in readers:
            if name not in self.state.sim_readers:
                self.emit(domain.SimReaderPlugged(reader=name))
            if self.state.sim_readers.get(name) != cards.get(name):
                profile = cards.get(name)
                self.emit(domain.SimCardPut(name, profile) if profile else domain.SimCardTaken(name))
        if default_reader is not None and self.state.default_reader is None:
            # Only when none is set: a default the user chose is a setting, and settings persist.
            self.emit(domain.DefaultReaderSet(reader=default_reader))

    def _records(self, command: ListRecords) -> list[dict[str, Any]]:
        rows = self._store.calls_newest_first(command.skip, command.take, self.state.record_cleared_through)
        return [
            {"url": row.url, "uuid": row.uuid, "timestamp": row.timestamp, "statusCode": row.status_code}
            for row in rows
        ]

    # --- what the workers see --------------------------------------------------

    def worker_reported(self, report: WorkerStatus) -> None:
        for event in presence_events(self.state, report, self._pseudonyms.card):
            self.emit(event)

    def worker_lost(self, reader: str, reason: str) -> None:
        if reader in self.state.readers:
            self.emit(domain.WorkerLost(reader=reader, reason=reason))

    def reader_detached(self, reader: str, reason: str) -> None:
        if reader in self.state.readers:
            self.emit(domain.ReaderDetached(reader=reader, reason=reason))

    # --- storage ---------------------------------------------------------------

    def emit(self, event: domain.Event) -> None:
        type_name, version, payload = domain.encode(event)
        self.last_event_seq = self._store.append_event(type_name, version, payload, self._timestamp())
        self.state = apply(self.state, event)
        log.info("event %s", type_name)

    def commit(self) -> None:
        self._store.commit()

    def _timestamp(self) -> str:
        return format_record_timestamp(self._clock.wall_ns())
