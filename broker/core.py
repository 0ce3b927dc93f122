"""The broker's core: commands in, events and replies out, over an EventStore.

No sockets here: the loop in `broker.loop` feeds it decoded messages and sends
what it returns.  Appends go into the store's open transaction; the loop calls
`commit()` once per batch and only then sends the replies, so a reply never
acknowledges something a crash could still lose.
"""

from __future__ import annotations

import logging
from typing import Any

from broker import events as domain
from broker.clock import Clock
from broker.commands import (
    BadArguments,
    ClearRecords,
    Command,
    GetStatus,
    ListRecords,
    RecordCall,
    is_recorded,
    parse_command,
)
from broker.presence import presence_events
from broker.protocol import Reply, Request, WorkerStatus
from broker.state import ConsoleState, apply, render_status
from broker.status_codes import StatusCode
from eventlog import EventStore, format_record_timestamp

log = logging.getLogger(__name__)


class ConsoleCore:
    def __init__(self, store: EventStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.state = ConsoleState()
        for stored in store.events():
            self.state = apply(self.state, domain.decode(stored.type, stored.version, stored.payload))

    # --- requests from the API -------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Run one command; the call is recorded (if the request carries call metadata) with its outcome."""
        recorded = request.call is not None
        try:
            command = parse_command(request.command, request.args)
        except BadArguments as error:
            code, body = int(StatusCode.BAD_PARAMETER), {"message": str(error)}
        else:
            code, body = self._run(command)
            recorded = recorded and is_recorded(command)
        if recorded and request.call is not None:
            self._store.append_call(request.call.url, request.call.uuid, self._timestamp(), code)
        return Reply(id=request.id, code=code, body=body)

    def _run(self, command: Command) -> tuple[int, dict[str, Any]]:
        if isinstance(command, GetStatus):
            return StatusCode.OK, {"status": render_status(self.state)}
        if isinstance(command, ListRecords):
            return StatusCode.OK, {"records": self._records(command)}
        if isinstance(command, ClearRecords):
            self.emit(domain.CallRecordCleared(through_seq=self._store.last_call_seq()))
            return StatusCode.OK, {}
        if isinstance(command, RecordCall):
            return command.status_code, {}
        raise TypeError(f"no handler for {command!r}")

    def _records(self, command: ListRecords) -> list[dict[str, Any]]:
        rows = self._store.calls_newest_first(command.skip, command.take, self.state.record_cleared_through)
        return [
            {"url": row.url, "uuid": row.uuid, "timestamp": row.timestamp, "statusCode": row.status_code}
            for row in rows
        ]

    # --- what the workers see --------------------------------------------------

    def worker_reported(self, report: WorkerStatus) -> None:
        for event in presence_events(self.state, report):
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
        self._store.append_event(type_name, version, payload, self._timestamp())
        self.state = apply(self.state, event)
        log.info("event %s", type_name)

    def commit(self) -> None:
        self._store.commit()

    def _timestamp(self) -> str:
        return format_record_timestamp(self._clock.wall_ns())
