"""COMMON's session endpoints (Name, Initial, Finalize, ServerDateTime) and the SAM's (Basic, Verification,
Logout, Signature), as routes of declared commands."""

from __future__ import annotations

from api.operations import Operation
from contract import commands

NAME = Operation("List the devices: cloud SAMs, then serial ports", "COMMON", commands.ListDevices, answers=("names",))
INITIAL = Operation(
    "Initialize with a device (a cloud SAM or an NHI reader's port)", "COMMON", commands.Initialize, body_optional=True
)
FINALIZE = Operation("End the session", "COMMON", commands.Finalize)
SERVER_DATE_TIME = Operation(
    "The DC's (or the NHI reader's) date and time", "COMMON", commands.GetServerDateTime, answers=("serverDateTime",)
)
SAM_BASIC = Operation(
    "The SAM's public data",
    "SAM",
    commands.GetSamBasic,
    answers=("samId", "hospitalId", "hospitalName", "hospitalShortName"),
)
SAM_VERIFICATION = Operation("Verify the SAM with the DC (level 2)", "SAM", commands.VerifySam)
SAM_LOGOUT = Operation("Log the SAM out", "SAM", commands.LogoutSam)
SAM_SIGNATURE = Operation(
    "Sign with the SAM",
    "SAM",
    commands.SignWithSam,
    answers=("signature", "clientRandom", "samId", "hospitalId", "serviceType"),
    base64_answers=("signature", "clientRandom"),
)
