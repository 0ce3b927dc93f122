"""HC: the health card's endpoints, physical and virtual, as routes of declared commands.

What each body holds and how it is checked (the PIN's 4 to 6 digits, the tokens' lengths) is the command's own
declaration in `contract.commands`; a malformed value is a 400 that never reaches a card. None is ever logged.
"""

from __future__ import annotations

from api.operations import Operation
from contract import commands

HC_BASIC_FIELDS = ("cardId", "name", "idNo", "birthday", "sex", "dateIssue", "identityStatus")
HC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hcId", "hcIdNo")
HPC_HC_SIGNATURE_FIELDS = (
    "signature",
    "clientRandom",
    "samId",
    "hospitalId",
    "serviceType",
    "hpcId",
    "hpcIdNo",
    "hcId",
    "hcIdNo",
)
SIGNATURE_BYTES = ("signature", "clientRandom")
EMPTY_BODY = {"type": "object", "description": "The spec sends {}"}

HC_BASIC = Operation("The health card's public data", "HC", commands.ReadHcBasic, answers=HC_BASIC_FIELDS)
HC_LOGOUT = Operation("Log the health card out", "HC", commands.LogoutHc)
HC_PIN_GET = Operation("Has the health card a PIN", "HC", commands.GetHcPin, answers=("hasPin",))
HC_PIN_VERIFY = Operation("Verify the health card's PIN", "HC", commands.VerifyHcPin)
HC_PIN_SET = Operation("Set a new PIN on the health card", "HC", commands.SetHcPin)
HC_PIN_REMOVE = Operation("Remove the health card's PIN", "HC", commands.RemoveHcPin)
HC_SIGNATURE = Operation(
    "Sign with the SAM and the health card",
    "HC",
    commands.SignWithHc,
    answers=HC_SIGNATURE_FIELDS,
    base64_answers=SIGNATURE_BYTES,
)
HPC_HC_SIGNATURE = Operation(
    "Sign with the SAM, the staff card and the health card",
    "HC",
    commands.SignWithHpcHc,
    answers=HPC_HC_SIGNATURE_FIELDS,
    base64_answers=SIGNATURE_BYTES,
)
VIRTUAL_HC_VERIFICATION = Operation("Verify a virtual health card's token", "HC", commands.VerifyVirtualHc)
VIRTUAL_HC_READ_BASIC = Operation(
    "A virtual health card's public data", "HC", commands.ReadVirtualHcBasic, answers=HC_BASIC_FIELDS
)
VIRTUAL_HC_EXPORT = Operation(
    "Export the virtual health card for a transfer",
    "HC",
    commands.ExportVirtualHc,
    answers=("transferToken",),
    body_schema=EMPTY_BODY,
    body_optional=True,
)
VIRTUAL_HC_IMPORT = Operation("Import a transferred virtual health card", "HC", commands.ImportVirtualHc)
REAL_HC_UPDATE = Operation(
    "Update the health card from the DC", "HC", commands.UpdateRealHc, body_schema=EMPTY_BODY, body_optional=True
)
