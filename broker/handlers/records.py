"""The state and the call record: Status, the record's list and clearing, calls the API answered itself."""

from __future__ import annotations

from typing import Any

from broker.context import ConsoleContext
from broker.domain import events as domain
from broker.domain.state import render_status, snapshot
from broker.handlers.registry import Answer, handles
from contract import commands
from contract.status_codes import StatusCode


@handles(commands.GetStatus)
def get_status(ctx: ConsoleContext, command: commands.GetStatus) -> Answer:
    return StatusCode.OK, {"status": render_status(ctx.state)}


@handles(commands.GetStateSnapshot)
def get_state_snapshot(ctx: ConsoleContext, command: commands.GetStateSnapshot) -> Answer:
    return StatusCode.OK, {"throughSeq": ctx.ledger.last_event_seq, "state": snapshot(ctx.state)}


def record_rows(rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {"url": row.url, "uuid": row.uuid, "timestamp": row.timestamp, "statusCode": row.status_code} for row in rows
    ]


@handles(commands.ListRecords)
def list_records(ctx: ConsoleContext, command: commands.ListRecords) -> Answer:
    rows = ctx.ledger.store.calls_newest_first(command.skip, command.take, ctx.state.record_cleared_through)
    return StatusCode.OK, {"records": record_rows(rows)}


@handles(commands.ClearRecords)
def clear_records(ctx: ConsoleContext, command: commands.ClearRecords) -> Answer:
    ctx.emit(domain.CallRecordCleared(through_seq=ctx.ledger.store.last_call_seq()))
    return StatusCode.OK, {}


@handles(commands.RecordRefusal)
def record_refusal(ctx: ConsoleContext, command: commands.RecordRefusal) -> Answer:
    """Kept as an event whatever the status (the API sends only `REFUSAL_STATUSES`); its cause is the request."""
    if command.status not in commands.REFUSAL_STATUSES:
        return StatusCode.BAD_PARAMETER, {"message": f"status must be one of {commands.REFUSAL_STATUSES}"}
    ctx.emit(domain.CallRefused(url=command.url, caller=command.caller, status=command.status, reason=command.reason))
    return StatusCode.OK, {}


@handles(commands.RecordCall)
def record_call(ctx: ConsoleContext, command: commands.RecordCall) -> Answer:
    return command.status_code, {}
