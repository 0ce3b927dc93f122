"""Reader agents' enrolment (issue 23): `nhi-console agents add`, `list` and `remove`, as events.

The console keeps an agent's key id, never its key: the ZAP handler of the agent endpoint admits a connection
whose public key hashes to an enrolled id (broker/runtime/agent_endpoint.py). These commands come from the
local CLI over the broker's own socket; no HTTP route leads here.
"""

from __future__ import annotations

from broker.context import ConsoleContext
from broker.domain import events as domain
from broker.handlers.registry import Answer, handles
from contract import commands
from contract.agent_link import remote_reader, shown
from contract.status_codes import StatusCode


@handles(commands.ListAgents)
def list_agents(ctx: ConsoleContext, command: commands.ListAgents) -> Answer:
    agents = []
    for name, key in sorted(ctx.state.agents.items()):
        prefix = remote_reader(name, "")
        readers = sorted(reader for reader in ctx.state.readers if reader.startswith(prefix))
        agents.append({"name": name, "keyId": shown(key), "readers": readers})
    return StatusCode.OK, {"agents": agents}


@handles(commands.EnrollAgent)
def enroll_agent(ctx: ConsoleContext, command: commands.EnrollAgent) -> Answer:
    enrolled = ctx.state.agents.get(command.name)
    if enrolled == command.key_id:
        return StatusCode.OK, {"message": f"agent {command.name} is enrolled with that key already"}
    if enrolled is not None:
        return StatusCode.BAD_PARAMETER, {
            "message": f"agent {command.name} is enrolled with another key: --replace to rotate it"
        }
    holder = _holder_of(ctx, command.key_id)
    if holder is not None:
        return StatusCode.BAD_PARAMETER, {"message": f"that key is agent {holder}'s already"}
    ctx.emit(domain.AgentEnrolled(name=command.name, key_id=command.key_id))
    return StatusCode.OK, {"message": f"agent {command.name} enrolled (key id {shown(command.key_id)})"}


@handles(commands.ReplaceAgentKey)
def replace_agent_key(ctx: ConsoleContext, command: commands.ReplaceAgentKey) -> Answer:
    if command.name not in ctx.state.agents:
        return StatusCode.BAD_PARAMETER, {"message": f"no agent is enrolled as {command.name}"}
    holder = _holder_of(ctx, command.key_id)
    if holder == command.name:
        return StatusCode.OK, {"message": f"agent {command.name} is enrolled with that key already"}
    if holder is not None:
        return StatusCode.BAD_PARAMETER, {"message": f"that key is agent {holder}'s already"}
    ctx.emit(domain.AgentEnrolled(name=command.name, key_id=command.key_id))
    return StatusCode.OK, {"message": f"agent {command.name} now has key id {shown(command.key_id)}"}


@handles(commands.RemoveAgent)
def remove_agent(ctx: ConsoleContext, command: commands.RemoveAgent) -> Answer:
    key = ctx.state.agents.get(command.name)
    if key is None:
        return StatusCode.BAD_PARAMETER, {"message": f"no agent is enrolled as {command.name}"}
    ctx.emit(domain.AgentRemoved(name=command.name, key_id=key))
    return StatusCode.OK, {"message": f"agent {command.name} removed"}


def _holder_of(ctx: ConsoleContext, key: str) -> str | None:
    return next((name for name, enrolled in ctx.state.agents.items() if enrolled == key), None)
