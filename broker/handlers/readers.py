"""The PC/SC reader settings (the default reader, auto-detection) and reading a health card's public data."""

from __future__ import annotations

from broker.context import ConsoleContext
from broker.domain import events as domain
from broker.domain.routing import auto_detected_reader, reader_for
from broker.handlers.registry import Answer, StartFlow, handles, one_card_step
from contract import commands
from contract.status_codes import StatusCode


@handles(commands.ListReaders)
def list_readers(ctx: ConsoleContext, command: commands.ListReaders) -> Answer:
    return StatusCode.OK, {"readers": sorted(ctx.state.readers)}


@handles(commands.GetDefaultReader)
def get_default_reader(ctx: ConsoleContext, command: commands.GetDefaultReader) -> Answer:
    if ctx.state.default_reader is None:
        return StatusCode.NO_DEFAULT_READER, {}
    return StatusCode.OK, {"readerName": ctx.state.default_reader}


@handles(commands.SetDefaultReader)
def set_default_reader(ctx: ConsoleContext, command: commands.SetDefaultReader) -> Answer:
    if command.reader not in ctx.state.readers:
        return StatusCode.READER_NAME_UNKNOWN, {}
    if ctx.state.default_reader != command.reader:
        ctx.emit(domain.DefaultReaderSet(reader=command.reader))
    return StatusCode.OK, {}


@handles(commands.ClearDefaultReader)
def clear_default_reader(ctx: ConsoleContext, command: commands.ClearDefaultReader) -> Answer:
    if ctx.state.default_reader is not None:
        ctx.emit(domain.DefaultReaderCleared())
    return StatusCode.OK, {}


@handles(commands.AutoDetectReader)
def auto_detect_reader(ctx: ConsoleContext, command: commands.AutoDetectReader) -> Answer:
    found = auto_detected_reader(ctx.state)
    if found is None:
        return StatusCode.AUTO_DETECT_FAILED, {}
    if ctx.state.default_reader != found:
        ctx.emit(domain.DefaultReaderSet(reader=found))
    return StatusCode.OK, {"readerName": found}


@handles(commands.ReadPublicData)
def read_public_data(ctx: ConsoleContext, command: commands.ReadPublicData) -> Answer | StartFlow:
    """A health card's public data block, read on `reader` or on the one the routing rule picks."""
    if command.reader is not None:
        reader = ctx.state.readers.get(command.reader)
        if reader is None:
            return StatusCode.READER_NAME_UNKNOWN, {}
        if reader.card is None:
            return StatusCode.NO_CARD, {}
        return StartFlow(one_card_step(command.reader, "ReadPublicData"))
    routed = reader_for(ctx.state, "hc")
    if isinstance(routed, StatusCode):
        return routed, {}
    return StartFlow(one_card_step(routed, "ReadPublicData"))
