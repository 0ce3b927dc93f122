"""The staff card's and the health card's commands: each is a flow (`broker.flows.staff`, `.health_card`),
except the logouts, which only change the state."""

from __future__ import annotations

from broker.context import ConsoleContext
from broker.flows import health_card as health_card_flows
from broker.flows import staff as staff_flows
from broker.handlers.registry import Answer, StartFlow, handles
from contract import commands


@handles(commands.VerifyHpcPin)
def verify_hpc_pin(ctx: ConsoleContext, command: commands.VerifyHpcPin) -> StartFlow:
    return StartFlow(staff_flows.verify_hpc_pin(ctx, command.pin))


@handles(commands.ChangeHpcPin)
def change_hpc_pin(ctx: ConsoleContext, command: commands.ChangeHpcPin) -> StartFlow:
    return StartFlow(staff_flows.change_hpc_pin(ctx, command.new_pin))


@handles(commands.ResetHpcPin)
def reset_hpc_pin(ctx: ConsoleContext, command: commands.ResetHpcPin) -> StartFlow:
    return StartFlow(staff_flows.reset_hpc_pin(ctx, command.puk, command.new_pin))


@handles(commands.ReadHpcBasic)
def read_hpc_basic(ctx: ConsoleContext, command: commands.ReadHpcBasic) -> StartFlow:
    return StartFlow(staff_flows.read_hpc_basic(ctx))


@handles(commands.LogoutHpc)
def logout_hpc(ctx: ConsoleContext, command: commands.LogoutHpc) -> Answer:
    return staff_flows.logout_hpc(ctx)


@handles(commands.SignWithHpc)
def sign_with_hpc(ctx: ConsoleContext, command: commands.SignWithHpc) -> StartFlow:
    return StartFlow(staff_flows.sign_with_hpc(ctx, command.service_type))


@handles(commands.VerifyMobileHca)
def verify_mobile_hca(ctx: ConsoleContext, command: commands.VerifyMobileHca) -> StartFlow:
    return StartFlow(staff_flows.login_mobile_hca(ctx, command.login))


@handles(commands.LogoutHc)
def logout_hc(ctx: ConsoleContext, command: commands.LogoutHc) -> Answer:
    return health_card_flows.logout_hc(ctx)


@handles(commands.ReadHcBasic)
def read_hc_basic(ctx: ConsoleContext, command: commands.ReadHcBasic) -> StartFlow:
    return StartFlow(health_card_flows.read_hc_basic(ctx))


@handles(commands.GetHcPin)
def get_hc_pin(ctx: ConsoleContext, command: commands.GetHcPin) -> StartFlow:
    return StartFlow(health_card_flows.hc_has_pin(ctx))


@handles(commands.VerifyHcPin)
def verify_hc_pin(ctx: ConsoleContext, command: commands.VerifyHcPin) -> StartFlow:
    return StartFlow(health_card_flows.verify_hc_pin(ctx, command.pin))


@handles(commands.SetHcPin)
def set_hc_pin(ctx: ConsoleContext, command: commands.SetHcPin) -> StartFlow:
    return StartFlow(health_card_flows.set_hc_pin(ctx, command.new_pin))


@handles(commands.RemoveHcPin)
def remove_hc_pin(ctx: ConsoleContext, command: commands.RemoveHcPin) -> StartFlow:
    return StartFlow(health_card_flows.remove_hc_pin(ctx))


@handles(commands.SignWithHc)
def sign_with_hc(ctx: ConsoleContext, command: commands.SignWithHc) -> StartFlow:
    return StartFlow(health_card_flows.sign_with_hc(ctx, command.service_type))


@handles(commands.SignWithHpcHc)
def sign_with_hpc_and_hc(ctx: ConsoleContext, command: commands.SignWithHpcHc) -> StartFlow:
    return StartFlow(health_card_flows.sign_with_hpc_and_hc(ctx, command.service_type))


@handles(commands.VerifyVirtualHc)
def verify_virtual_hc(ctx: ConsoleContext, command: commands.VerifyVirtualHc) -> StartFlow:
    return StartFlow(health_card_flows.verify_virtual_hc(ctx, command.token))


@handles(commands.ReadVirtualHcBasic)
def read_virtual_hc_basic(ctx: ConsoleContext, command: commands.ReadVirtualHcBasic) -> StartFlow:
    return StartFlow(health_card_flows.read_virtual_hc_basic(ctx, command.token))


@handles(commands.ExportVirtualHc)
def export_virtual_hc(ctx: ConsoleContext, command: commands.ExportVirtualHc) -> StartFlow:
    return StartFlow(health_card_flows.export_virtual_hc(ctx))


@handles(commands.ImportVirtualHc)
def import_virtual_hc(ctx: ConsoleContext, command: commands.ImportVirtualHc) -> StartFlow:
    return StartFlow(health_card_flows.import_virtual_hc(ctx, command.transfer_token))


@handles(commands.UpdateRealHc)
def update_real_hc(ctx: ConsoleContext, command: commands.UpdateRealHc) -> StartFlow:
    return StartFlow(health_card_flows.update_real_hc(ctx))
