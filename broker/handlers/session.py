"""The session: its devices, `Initial` and `Finalize`, the SAM, and the DC's time."""

from __future__ import annotations

from broker.context import ConsoleContext
from broker.domain import events as domain
from broker.flows import session as session_flows
from broker.handlers.registry import Answer, StartFlow, handles
from contract import commands
from contract.status_codes import StatusCode


@handles(commands.ListDevices)
def list_devices(ctx: ConsoleContext, command: commands.ListDevices) -> Answer:
    return StatusCode.OK, {"names": ctx.devices.names(ctx.state)}


@handles(commands.Initialize)
def initialize(ctx: ConsoleContext, command: commands.Initialize) -> StartFlow:
    return StartFlow(session_flows.initial(ctx, command.name))


@handles(commands.Finalize)
def finalize(ctx: ConsoleContext, command: commands.Finalize) -> Answer:
    ctx.end_session("finalize")
    return StatusCode.OK, {}


@handles(commands.GetSamBasic)
def get_sam_basic(ctx: ConsoleContext, command: commands.GetSamBasic) -> Answer:
    sam_file = ctx.secrets.sam.file
    if ctx.state.sam.status < 1 or sam_file is None:
        return StatusCode.SAM_LEVEL1_FAILED, {"message": "the SAM cannot be read"}
    return StatusCode.OK, {
        "samId": sam_file.sam_id,
        "hospitalId": sam_file.hospital_id,
        "hospitalName": sam_file.hospital_name,
        "hospitalShortName": sam_file.hospital_short_name,
    }


@handles(commands.LogoutSam)
def logout_sam(ctx: ConsoleContext, command: commands.LogoutSam) -> Answer:
    ctx.secrets.sam.drop_token()
    ctx.secrets.forget_cards()
    ctx.emit(domain.SamLoggedOut())
    return StatusCode.OK, {}


@handles(commands.VerifySam)
def verify_sam(ctx: ConsoleContext, command: commands.VerifySam) -> StartFlow:
    return StartFlow(session_flows.sam_verification(ctx))


@handles(commands.SignWithSam)
def sign_with_sam(ctx: ConsoleContext, command: commands.SignWithSam) -> StartFlow:
    return StartFlow(session_flows.sam_signature(ctx, command.service_type))


@handles(commands.GetServerDateTime)
def get_server_date_time(ctx: ConsoleContext, command: commands.GetServerDateTime) -> StartFlow:
    return StartFlow(session_flows.server_date_time(ctx))
