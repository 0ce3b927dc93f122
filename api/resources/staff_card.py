"""HCA: the staff card's endpoints and the mobile HCA login, as routes of declared commands.

PINs and PUKs are checked by their commands' rules (`contract.commands`: digits, lengths), so a malformed one
is a 400 that never reaches a card; they are passed on once and never logged.
"""

from __future__ import annotations

from api.operations import Operation
from contract import commands

HPC_BASIC_FIELDS = ("cardId", "idNo", "cName", "eName", "birthday")
HPC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hpcId", "hpcIdNo")

HPC_VERIFICATION = Operation("Verify the staff card with its PIN (levels 2 and 3)", "HPC", commands.VerifyHpcPin)
HPC_BASIC = Operation("The staff card's public data", "HPC", commands.ReadHpcBasic, answers=HPC_BASIC_FIELDS)
HPC_LOGOUT = Operation("Log the staff card out", "HPC", commands.LogoutHpc)
HPC_PIN_CHANGE = Operation("Change the staff card's PIN (level 3)", "HPC", commands.ChangeHpcPin)
HPC_PIN_UNBLOCK = Operation("Unblock the staff card with its PUK and set a new PIN", "HPC", commands.ResetHpcPin)
HPC_SIGNATURE = Operation(
    "Sign with the SAM and the staff card",
    "HPC",
    commands.SignWithHpc,
    answers=HPC_SIGNATURE_FIELDS,
    base64_answers=("signature", "clientRandom"),
)
MOBILE_HCA = Operation("Log in with a mobile HCA certificate", "HPC", commands.VerifyMobileHca)
"""`POST /api/hpc/v1/Verification/MobiliHca` (the spec's spelling)."""
