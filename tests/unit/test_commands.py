"""`parse_command`: the broker's own check of every command's arguments (the second line after the API)."""

from __future__ import annotations

from typing import Any

import pytest

import sim.bench  # noqa: F401 - declares the bench's commands, as `serve --sim` does
from contract.commands import (
    COMMAND_NAMES,
    MAX_RECORD_TAKE,
    BadArguments,
    ClearRecords,
    GetStatus,
    ListRecords,
    ReadPublicData,
    RecordCall,
    command_names,
    parse_command,
)

BENCH_COMMANDS = {"SimListReaders", "SimPlugReader", "SimUnplugReader", "SimPutCard", "SimTakeCard", "SimAdvanceClock"}


def test_command_names() -> None:
    assert {
        "GetStateSnapshot",
        "GetStatus",
        "ListAgents",
        "EnrollAgent",
        "ReplaceAgentKey",
        "RemoveAgent",
        "ListRecords",
        "RecordRefusal",
        "ClearRecords",
        "RecordCall",
        "WaitForEvents",
        "ListReaders",
        "AutoDetectReader",
        "GetDefaultReader",
        "SetDefaultReader",
        "ClearDefaultReader",
        "ReadPublicData",
        "ListDevices",
        "Initialize",
        "Finalize",
        "GetServerDateTime",
        "GetSamBasic",
        "VerifySam",
        "LogoutSam",
        "SignWithSam",
        "ListCloudSams",
        "ImportCloudSam",
        "RemoveCloudSam",
        "ReadHcBasic",
        "VerifyHpcPin",
        "ChangeHpcPin",
        "ResetHpcPin",
        "ReadHpcBasic",
        "LogoutHpc",
        "SignWithHpc",
        "VerifyMobileHca",
        "LogoutHc",
        "GetHcPin",
        "VerifyHcPin",
        "SetHcPin",
        "RemoveHcPin",
        "SignWithHc",
        "SignWithHpcHc",
        "VerifyVirtualHc",
        "ReadVirtualHcBasic",
        "ExportVirtualHc",
        "ImportVirtualHc",
        "UpdateRealHc",
        "ListCorsHosts",
        "AllowCorsHost",
        "RemoveCorsHost",
    } == COMMAND_NAMES
    # The bench's commands are declared by the bench (sim.bench, imported above as `serve --sim` wires it in).
    assert command_names() == COMMAND_NAMES | BENCH_COMMANDS


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("SetDefaultReader", {}, "readerName"),
        ("SetDefaultReader", {"readerName": ""}, "readerName"),
        ("SetDefaultReader", {"readerName": 5}, "readerName"),
        ("SetDefaultReader", {"readerName": "x" * 129}, "readerName"),
        ("SetDefaultReader", {"readerName": "bad\nname"}, "readerName"),
        ("SimPutCard", {"reader": "A"}, "profile"),
        ("SimPlugReader", {"reader": None}, "reader"),
        ("ReadPublicData", {"reader": 7}, "reader"),
    ],
)
def test_reader_and_profile_arguments_are_checked(name: str, args: dict[str, object], field: str) -> None:
    with pytest.raises(BadArguments, match=field):
        parse_command(name, args)


def test_read_public_data_reader_is_optional() -> None:
    without = parse_command("ReadPublicData", {})
    assert isinstance(without, ReadPublicData) and without.reader is None
    named = parse_command("ReadPublicData", {"reader": "R"})
    assert isinstance(named, ReadPublicData) and named.reader == "R"


def test_get_status() -> None:
    assert parse_command("GetStatus", {}) == GetStatus()


def test_clear_records() -> None:
    assert parse_command("ClearRecords", {}) == ClearRecords()


def test_list_records_defaults() -> None:
    assert parse_command("ListRecords", {}) == ListRecords(skip=0, take=100)


def test_list_records_explicit() -> None:
    assert parse_command("ListRecords", {"skip": 7, "take": 3}) == ListRecords(skip=7, take=3)
    assert parse_command("ListRecords", {"skip": 0, "take": 0}) == ListRecords(skip=0, take=0)
    assert parse_command("ListRecords", {"take": MAX_RECORD_TAKE}) == ListRecords(skip=0, take=MAX_RECORD_TAKE)


@pytest.mark.parametrize("take", [MAX_RECORD_TAKE + 1, 10 * MAX_RECORD_TAKE, 2**63])
def test_list_records_take_is_capped(take: int) -> None:
    assert parse_command("ListRecords", {"take": take}) == ListRecords(skip=0, take=MAX_RECORD_TAKE)


def test_max_record_take_is_the_contract_value() -> None:
    assert MAX_RECORD_TAKE == 1000


@pytest.mark.parametrize("field", ["skip", "take"])
@pytest.mark.parametrize("value", [-1, -(2**63), True, False, 1.0, 2.5, "10", "", None, [1], {"n": 1}])
def test_list_records_refuses_bad_values(field: str, value: Any) -> None:
    """Negatives, bools (an int subclass), floats, strings and others are refused, naming the field."""
    with pytest.raises(BadArguments, match=field):
        parse_command("ListRecords", {field: value})


@pytest.mark.parametrize("code", [0, 1704, 9999])
def test_record_call(code: int) -> None:
    assert parse_command("RecordCall", {"statusCode": code}) == RecordCall(status_code=code)


@pytest.mark.parametrize("code", [-1, 10_000, 2**40])
def test_record_call_status_code_out_of_range(code: int) -> None:
    with pytest.raises(BadArguments, match="statusCode"):
        parse_command("RecordCall", {"statusCode": code})


@pytest.mark.parametrize("value", [True, "0", 0.0, None])
def test_record_call_status_code_wrong_type(value: Any) -> None:
    with pytest.raises(BadArguments, match="statusCode"):
        parse_command("RecordCall", {"statusCode": value})


def test_record_call_status_code_required() -> None:
    with pytest.raises(BadArguments, match="statusCode"):
        parse_command("RecordCall", {})


@pytest.mark.parametrize("name", ["NoSuchCommand", "", "getstatus", "GetStatus ", "__init__"])
def test_unknown_command(name: str) -> None:
    with pytest.raises(BadArguments, match="unknown command"):
        parse_command(name, {})


def test_bad_arguments_is_a_value_error() -> None:
    assert issubclass(BadArguments, ValueError)
