"""SETTING: the PC/SC reader settings, the cloud SAMs and the CORS allow-list, as routes of declared commands.

A cloud SAM file's content goes to the broker and nowhere else: not into a log line, not into an error. The CORS
list changes without the restart the spec asks for.
"""

from __future__ import annotations

from api.operations import Operation
from contract import commands

READERS = Operation("The PC/SC readers", "SETTING", commands.ListReaders, answers=("readers",))
AUTO_DETECT = Operation(
    "Make the reader with a card the default reader", "SETTING", commands.AutoDetectReader, answers=("readerName",)
)
DEFAULT_READER = Operation("The default reader", "SETTING", commands.GetDefaultReader, answers=("readerName",))
SET_DEFAULT_READER = Operation("Set the default reader", "SETTING", commands.SetDefaultReader)
CLEAR_DEFAULT_READER = Operation("Clear the default reader", "SETTING", commands.ClearDefaultReader)
CLOUD_SAMS = Operation("The imported cloud SAMs", "SETTING", commands.ListCloudSams, answers=("sams",))
IMPORT_CLOUD_SAM = Operation("Import a cloud SAM file", "SETTING", commands.ImportCloudSam, answers=("sam",))
REMOVE_CLOUD_SAM = Operation(
    "Remove a cloud SAM", "SETTING", commands.RemoveCloudSam, path_arguments={"sam_id": "samId"}
)
CORS_HOSTS = Operation("The CORS allow-list", "SETTING", commands.ListCorsHosts, answers=("cors",))
ALLOW_CORS_HOST = Operation("Allow a host name; in effect at once", "SETTING", commands.AllowCorsHost)
REMOVE_CORS_HOST = Operation(
    "Take a host name off the allow-list", "SETTING", commands.RemoveCorsHost, path_arguments={"host": "id"}
)
