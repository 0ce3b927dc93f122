"""The console's settings that are events: the CORS allow-list and the imported cloud SAMs."""

from __future__ import annotations

from broker.context import ConsoleContext
from broker.credentials.cloud_sam_file import CloudSamFileInvalid, decode_context, parse_cloud_sam_file
from broker.domain import events as domain
from broker.handlers.registry import Answer, handles
from contract import commands
from contract.status_codes import StatusCode


@handles(commands.ListCorsHosts)
def list_cors_hosts(ctx: ConsoleContext, command: commands.ListCorsHosts) -> Answer:
    return StatusCode.OK, {"cors": list(ctx.state.cors_hosts)}


@handles(commands.AllowCorsHost)
def allow_cors_host(ctx: ConsoleContext, command: commands.AllowCorsHost) -> Answer:
    """A change is an event, so it is in effect for the very next request."""
    if command.host not in ctx.state.cors_hosts:
        ctx.emit(domain.CorsHostAllowed(host=command.host))
    return StatusCode.OK, {}


@handles(commands.RemoveCorsHost)
def remove_cors_host(ctx: ConsoleContext, command: commands.RemoveCorsHost) -> Answer:
    if command.host not in ctx.state.cors_hosts:
        return StatusCode.BAD_PARAMETER, {"message": "that host is not on the allow-list"}
    ctx.emit(domain.CorsHostRemoved(host=command.host))
    return StatusCode.OK, {}


@handles(commands.ListCloudSams)
def list_cloud_sams(ctx: ConsoleContext, command: commands.ListCloudSams) -> Answer:
    return StatusCode.OK, {"sams": sorted(ctx.state.cloud_sams)}


@handles(commands.ImportCloudSam)
def import_cloud_sam(ctx: ConsoleContext, command: commands.ImportCloudSam) -> Answer:
    try:
        raw = decode_context(command.context)
        sam_file = parse_cloud_sam_file(raw)
    except CloudSamFileInvalid as error:
        return StatusCode.CLOUD_SAM_FILE_INVALID, {"message": str(error)}
    if command.sam_id is not None and command.sam_id != sam_file.sam_id:
        return StatusCode.CLOUD_SAM_FILE_INVALID, {"message": "samId is not the file's"}
    if command.hospital_id is not None and command.hospital_id != sam_file.hospital_id:
        return StatusCode.CLOUD_SAM_FILE_INVALID, {"message": "hospitalId is not the file's"}
    ctx.devices.cloud_sams.save(sam_file.sam_id, raw)
    if ctx.state.cloud_sams.get(sam_file.sam_id) != sam_file.hospital_id:
        ctx.emit(domain.CloudSamImported(sam_id=sam_file.sam_id, hospital_id=sam_file.hospital_id))
    return StatusCode.OK, {
        "sam": {
            "samId": sam_file.sam_id,
            "hospitalId": sam_file.hospital_id,
            "hospitalName": sam_file.hospital_name,
            "hospitalShortName": sam_file.hospital_short_name,
            "comport": f"COMX{sorted(ctx.state.cloud_sams).index(sam_file.sam_id) + 1}",
        }
    }


@handles(commands.RemoveCloudSam)
def remove_cloud_sam(ctx: ConsoleContext, command: commands.RemoveCloudSam) -> Answer:
    if command.sam_id not in ctx.state.cloud_sams:
        return StatusCode.CLOUD_SAM_UNKNOWN, {"message": "no imported cloud SAM has that id"}
    if ctx.state.initialized and ctx.state.device_name == command.sam_id:
        ctx.end_session("its cloud SAM was removed")
    ctx.devices.cloud_sams.remove(command.sam_id)
    ctx.emit(domain.CloudSamRemoved(sam_id=command.sam_id))
    return StatusCode.OK, {}
