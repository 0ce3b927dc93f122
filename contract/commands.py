"""Commands the API sends the broker: one class per command, named in the imperative.

`parse_command(name, args)` is the only way in; it checks every argument's type
and range and raises `BadArguments` (answered as 1704) instead of trusting the
wire.  The API validates the HTTP request first; this is the second, independent
line, because the broker must not trust any peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from contract.text import CONTROL_CHARACTERS
from contract.host_names import MAX_HOST_LENGTH, NotAHostName, normalize_host

MAX_RECORD_TAKE = 1000
"""The cap on `take` in `GET /api/common/v1/Record`: a HIS asking for more gets this many."""


class BadArguments(ValueError):
    """A command whose arguments are missing or malformed; the message names the field."""


@dataclass(frozen=True, slots=True)
class GetStatus:
    NAME: ClassVar[str] = "GetStatus"


@dataclass(frozen=True, slots=True)
class ListRecords:
    NAME: ClassVar[str] = "ListRecords"
    RECORDED: ClassVar[bool] = False
    skip: int = 0
    take: int = 100


@dataclass(frozen=True, slots=True)
class ClearRecords:
    NAME: ClassVar[str] = "ClearRecords"
    RECORDED: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class RecordCall:
    """Record a call the API answered itself (Version, a rejected request) with its statusCode."""

    NAME: ClassVar[str] = "RecordCall"
    status_code: int


@dataclass(frozen=True, slots=True)
class GetStateSnapshot:
    """The state and the last event it includes: what `nhi-console log replay` compares its own fold with."""

    NAME: ClassVar[str] = "GetStateSnapshot"
    RECORDED: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class WaitForEvents:
    """The live stream's long poll: what happened after `after` (stream position) and `after_call` (call seq),
    answered at once if anything did, else when something does or `wait_seconds` pass. `after` None: a snapshot
    first. Not a call of its own: the stream is not recorded."""

    NAME: ClassVar[str] = "WaitForEvents"
    RECORDED: ClassVar[bool] = False
    after: tuple[int, int] | None
    after_call: int | None
    wait_seconds: float


@dataclass(frozen=True, slots=True)
class ListReaders:
    NAME: ClassVar[str] = "ListReaders"


@dataclass(frozen=True, slots=True)
class AutoDetectReader:
    NAME: ClassVar[str] = "AutoDetectReader"


@dataclass(frozen=True, slots=True)
class GetDefaultReader:
    NAME: ClassVar[str] = "GetDefaultReader"


@dataclass(frozen=True, slots=True)
class SetDefaultReader:
    NAME: ClassVar[str] = "SetDefaultReader"
    reader: str


@dataclass(frozen=True, slots=True)
class ClearDefaultReader:
    NAME: ClassVar[str] = "ClearDefaultReader"


@dataclass(frozen=True, slots=True)
class ReadPublicData:
    """Read a health card's public data block (on `reader`, or the one the routing rule picks)."""

    NAME: ClassVar[str] = "ReadPublicData"
    reader: str | None = None


@dataclass(frozen=True, slots=True)
class SimListReaders:
    NAME: ClassVar[str] = "SimListReaders"


@dataclass(frozen=True, slots=True)
class SimPlugReader:
    NAME: ClassVar[str] = "SimPlugReader"
    reader: str


@dataclass(frozen=True, slots=True)
class SimUnplugReader:
    NAME: ClassVar[str] = "SimUnplugReader"
    reader: str


@dataclass(frozen=True, slots=True)
class SimPutCard:
    NAME: ClassVar[str] = "SimPutCard"
    reader: str
    profile: str


@dataclass(frozen=True, slots=True)
class SimTakeCard:
    NAME: ClassVar[str] = "SimTakeCard"
    reader: str


@dataclass(frozen=True, slots=True)
class ListDevices:
    """`GET /api/common/v1/Name`: imported cloud SAM ids, then the machine's serial ports."""

    NAME: ClassVar[str] = "ListDevices"


@dataclass(frozen=True, slots=True)
class Initialize:
    NAME: ClassVar[str] = "Initialize"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Finalize:
    NAME: ClassVar[str] = "Finalize"


@dataclass(frozen=True, slots=True)
class GetServerDateTime:
    NAME: ClassVar[str] = "GetServerDateTime"


@dataclass(frozen=True, slots=True)
class GetSamBasic:
    NAME: ClassVar[str] = "GetSamBasic"


@dataclass(frozen=True, slots=True)
class VerifySam:
    NAME: ClassVar[str] = "VerifySam"


@dataclass(frozen=True, slots=True)
class LogoutSam:
    NAME: ClassVar[str] = "LogoutSam"


@dataclass(frozen=True, slots=True)
class SignWithSam:
    NAME: ClassVar[str] = "SignWithSam"
    service_type: str


@dataclass(frozen=True, slots=True)
class ListCloudSams:
    NAME: ClassVar[str] = "ListCloudSams"


@dataclass(frozen=True, slots=True)
class ImportCloudSam:
    """The file's content travels only in `context` and is never logged (the dataclass hides it from repr)."""

    NAME: ClassVar[str] = "ImportCloudSam"
    context: str = field(repr=False)
    sam_id: str | None = None
    hospital_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveCloudSam:
    NAME: ClassVar[str] = "RemoveCloudSam"
    sam_id: str


@dataclass(frozen=True, slots=True)
class ReadHcBasic:
    NAME: ClassVar[str] = "ReadHcBasic"


@dataclass(frozen=True, slots=True)
class SimAdvanceClock:
    NAME: ClassVar[str] = "SimAdvanceClock"
    seconds: int


@dataclass(frozen=True, slots=True)
class VerifyHpcPin:
    """The PIN never shows in a repr, a log line or an error message."""

    NAME: ClassVar[str] = "VerifyHpcPin"
    pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChangeHpcPin:
    NAME: ClassVar[str] = "ChangeHpcPin"
    new_pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ResetHpcPin:
    NAME: ClassVar[str] = "ResetHpcPin"
    puk: str = field(repr=False)
    new_pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReadHpcBasic:
    NAME: ClassVar[str] = "ReadHpcBasic"


@dataclass(frozen=True, slots=True)
class LogoutHpc:
    NAME: ClassVar[str] = "LogoutHpc"


@dataclass(frozen=True, slots=True)
class SignWithHpc:
    NAME: ClassVar[str] = "SignWithHpc"
    service_type: str


@dataclass(frozen=True)
class MobileHcaLogin:
    """The request body's fields, decoded (Base64 → bytes) but otherwise as sent.

    `certificate_der` and `signature` are kept out of repr: they are not
    secret, but they identify a person and have no business in a traceback.
    """

    id_no: str
    birthday: str
    c_name: str
    e_name: str
    hospital_id: str
    med_id: str
    login_date_time: str
    certificate_der: bytes = field(repr=False)
    signature: bytes = field(repr=False)



@dataclass(frozen=True, slots=True)
class VerifyMobileHca:
    NAME: ClassVar[str] = "VerifyMobileHca"
    login: MobileHcaLogin


@dataclass(frozen=True, slots=True)
class LogoutHc:
    NAME: ClassVar[str] = "LogoutHc"


@dataclass(frozen=True, slots=True)
class GetHcPin:
    NAME: ClassVar[str] = "GetHcPin"


@dataclass(frozen=True, slots=True)
class VerifyHcPin:
    NAME: ClassVar[str] = "VerifyHcPin"
    pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SetHcPin:
    NAME: ClassVar[str] = "SetHcPin"
    new_pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RemoveHcPin:
    NAME: ClassVar[str] = "RemoveHcPin"


@dataclass(frozen=True, slots=True)
class SignWithHc:
    NAME: ClassVar[str] = "SignWithHc"
    service_type: str


@dataclass(frozen=True, slots=True)
class SignWithHpcHc:
    NAME: ClassVar[str] = "SignWithHpcHc"
    service_type: str


@dataclass(frozen=True, slots=True)
class VerifyVirtualHc:
    """The token is a bearer credential: hidden from every repr."""

    NAME: ClassVar[str] = "VerifyVirtualHc"
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReadVirtualHcBasic:
    NAME: ClassVar[str] = "ReadVirtualHcBasic"
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExportVirtualHc:
    NAME: ClassVar[str] = "ExportVirtualHc"


@dataclass(frozen=True, slots=True)
class ImportVirtualHc:
    NAME: ClassVar[str] = "ImportVirtualHc"
    transfer_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class UpdateRealHc:
    NAME: ClassVar[str] = "UpdateRealHc"


@dataclass(frozen=True, slots=True)
class ListCorsHosts:
    """`GET /api/settings/v1/Cors`; also what the API's caller gate asks (unrecorded) before serving an Origin."""

    NAME: ClassVar[str] = "ListCorsHosts"


@dataclass(frozen=True, slots=True)
class AllowCorsHost:
    NAME: ClassVar[str] = "AllowCorsHost"
    host: str


@dataclass(frozen=True, slots=True)
class RemoveCorsHost:
    NAME: ClassVar[str] = "RemoveCorsHost"
    host: str


Command = Union[
    GetStateSnapshot, GetStatus, ListRecords, ClearRecords, RecordCall, WaitForEvents, ListReaders, AutoDetectReader, GetDefaultReader,
    SetDefaultReader, ClearDefaultReader, ReadPublicData, SimListReaders, SimPlugReader, SimUnplugReader,
    SimPutCard, SimTakeCard, ListDevices, Initialize, Finalize, GetServerDateTime, GetSamBasic, VerifySam, LogoutSam,
    SignWithSam, ListCloudSams, ImportCloudSam, RemoveCloudSam, ReadHcBasic, SimAdvanceClock,
    VerifyHpcPin, ChangeHpcPin, ResetHpcPin, ReadHpcBasic, LogoutHpc, SignWithHpc, VerifyMobileHca,
    LogoutHc, GetHcPin, VerifyHcPin, SetHcPin, RemoveHcPin, SignWithHc, SignWithHpcHc, VerifyVirtualHc,
    ReadVirtualHcBasic, ExportVirtualHc, ImportVirtualHc, UpdateRealHc, ListCorsHosts, AllowCorsHost, RemoveCorsHost,
]

MAX_READER_NAME = 128
"""PC/SC reader names are at most 128 characters (MAX_READERNAME in pcsc-lite)."""


def _integer(args: dict[str, Any], name: str, default: int | None = None) -> int:
    if name not in args:
        if default is None:
            raise BadArguments(f"{name} is required")
        return default
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadArguments(f"{name} must be an integer")
    return value


def _optional_text(args: dict[str, Any], name: str, *, max_length: int) -> str | None:
    if args.get(name) is None:
        return None
    return _text(args, name, max_length=max_length)


def _text(args: dict[str, Any], name: str, *, max_length: int) -> str:
    if name not in args or args[name] is None:
        raise BadArguments(f"{name} is required")
    value = args[name]
    if not isinstance(value, str):
        raise BadArguments(f"{name} must be a string")
    if not value or len(value) > max_length or CONTROL_CHARACTERS.search(value):
        raise BadArguments(f"{name} must be 1 to {max_length} characters, none of them a control character")
    return value


def _parse_list_records(args: dict[str, Any]) -> ListRecords:
    skip = _integer(args, "skip", 0)
    take = _integer(args, "take", 100)
    if skip < 0:
        raise BadArguments("skip must be 0 or more")
    if take < 0:
        raise BadArguments("take must be 0 or more")
    return ListRecords(skip=skip, take=min(take, MAX_RECORD_TAKE))


MAX_STREAM_WAIT = 30.0


def _parse_wait_for_events(args: dict[str, Any]) -> WaitForEvents:
    after = args.get("after")
    if after is not None:
        if not isinstance(after, list) or len(after) != 2 or any(
                isinstance(part, bool) or not isinstance(part, int) or part < 0 for part in after):
            raise BadArguments("after must be [seq, index], two integers of 0 or more")
        after = (after[0], after[1])
    after_call = args.get("afterCall")
    if after_call is not None and (isinstance(after_call, bool) or not isinstance(after_call, int) or after_call < 0):
        raise BadArguments("afterCall must be an integer of 0 or more")
    wait = args.get("waitSeconds", 0)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_STREAM_WAIT:
        raise BadArguments(f"waitSeconds must be 0 to {MAX_STREAM_WAIT:g}")
    return WaitForEvents(after=after, after_call=after_call, wait_seconds=float(wait))


def _parse_record_call(args: dict[str, Any]) -> RecordCall:
    code = _integer(args, "statusCode")
    if not 0 <= code <= 9999:
        raise BadArguments("statusCode must be 0..9999")
    return RecordCall(status_code=code)


MAX_DEVICE_NAME = 128
MAX_CLOUD_SAM_CONTEXT = 64 * 1024
MAX_CLOCK_ADVANCE = 10 * 366 * 24 * 3600


def _service_type_of(args: dict[str, Any]) -> str:
    value = _text(args, "serviceType", max_length=2)
    if len(value) != 2 or not value.isascii() or not value.isalnum():
        raise BadArguments("serviceType must be 2 ASCII letters or digits")
    return value


def _cors_host(args: dict[str, Any], name: str) -> str:
    try:
        return normalize_host(_text(args, name, max_length=MAX_HOST_LENGTH + 2))
    except NotAHostName as error:
        raise BadArguments(f"{name}: {error}") from None


def _service_type(args: dict[str, Any]) -> SignWithSam:
    return SignWithSam(service_type=_service_type_of(args))


def _secret_digits(args: dict[str, Any], name: str, shortest: int, longest: int) -> str:
    """A PIN or PUK: digits only; the message says what is wrong, never what was sent."""
    value = args.get(name)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() \
            or not shortest <= len(value) <= longest:
        raise BadArguments(f"{name} must be {shortest} to {longest} digits")
    return value


MAX_TOKEN = 8 * 1024


def _secret_text(args: dict[str, Any], name: str) -> str:
    """A token or transfer token: a string of bounded length; its content is judged by the flow, never echoed."""
    value = args.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TOKEN:
        raise BadArguments(f"{name} must be a string of 1 to {MAX_TOKEN} characters")
    return value


def _bytes(args: dict[str, Any], name: str, longest: int) -> bytes:
    value = args.get(name)
    if not isinstance(value, bytes) or not 0 < len(value) <= longest:
        raise BadArguments(f"{name} must be 1 to {longest} bytes")
    return value


def _mobile_hca(args: dict[str, Any]) -> VerifyMobileHca:
    return VerifyMobileHca(login=MobileHcaLogin(
        id_no=_text(args, "idNo", max_length=10),
        birthday=_text(args, "birthday", max_length=10),
        c_name=_text(args, "cName", max_length=64),
        e_name=str(args.get("eName") or ""),
        hospital_id=_text(args, "hospitalId", max_length=10),
        med_id=_text(args, "medId", max_length=1),
        login_date_time=_text(args, "loginDateTime", max_length=20),
        certificate_der=_bytes(args, "signatureCertificate", 16 * 1024),
        signature=_bytes(args, "signature", 512),
    ))


def _optional_pattern(args: dict[str, Any], name: str, longest: int, digits_only: bool) -> str | None:
    value = _optional_text(args, name, max_length=longest)
    if value is None:
        return None
    if not value.isascii() or not (value.isdigit() if digits_only else value.isalnum()):
        raise BadArguments(f"{name} must be ASCII {'digits' if digits_only else 'letters or digits'}")
    if digits_only and len(value) != longest:
        raise BadArguments(f"{name} must be {longest} digits")
    return value


def _import_cloud_sam(args: dict[str, Any]) -> ImportCloudSam:
    return ImportCloudSam(
        context=_text(args, "cloudSamContext", max_length=MAX_CLOUD_SAM_CONTEXT),
        sam_id=_optional_pattern(args, "samId", 12, digits_only=True),
        hospital_id=_optional_pattern(args, "hospitalId", 10, digits_only=False),
    )


def _advance_clock(args: dict[str, Any]) -> SimAdvanceClock:
    seconds = _integer(args, "advanceSeconds")
    if not 0 <= seconds <= MAX_CLOCK_ADVANCE:
        raise BadArguments(f"advanceSeconds must be 0 to {MAX_CLOCK_ADVANCE}")
    return SimAdvanceClock(seconds=seconds)


_PARSERS = {
    GetStatus.NAME: lambda args: GetStatus(),
    ListRecords.NAME: _parse_list_records,
    ClearRecords.NAME: lambda args: ClearRecords(),
    RecordCall.NAME: _parse_record_call,
    WaitForEvents.NAME: _parse_wait_for_events,
    GetStateSnapshot.NAME: lambda args: GetStateSnapshot(),
    ListReaders.NAME: lambda args: ListReaders(),
    AutoDetectReader.NAME: lambda args: AutoDetectReader(),
    GetDefaultReader.NAME: lambda args: GetDefaultReader(),
    SetDefaultReader.NAME: lambda args: SetDefaultReader(reader=_text(args, "readerName", max_length=MAX_READER_NAME)),
    ClearDefaultReader.NAME: lambda args: ClearDefaultReader(),
    ReadPublicData.NAME: lambda args: ReadPublicData(reader=_optional_text(args, "reader", max_length=MAX_READER_NAME)),
    SimListReaders.NAME: lambda args: SimListReaders(),
    SimPlugReader.NAME: lambda args: SimPlugReader(reader=_text(args, "reader", max_length=MAX_READER_NAME)),
    SimUnplugReader.NAME: lambda args: SimUnplugReader(reader=_text(args, "reader", max_length=MAX_READER_NAME)),
    SimPutCard.NAME: lambda args: SimPutCard(reader=_text(args, "reader", max_length=MAX_READER_NAME), profile=_text(args, "profile", max_length=64)),
    SimTakeCard.NAME: lambda args: SimTakeCard(reader=_text(args, "reader", max_length=MAX_READER_NAME)),
    ListDevices.NAME: lambda args: ListDevices(),
    Initialize.NAME: lambda args: Initialize(name=_optional_text(args, "name", max_length=MAX_DEVICE_NAME)),
    Finalize.NAME: lambda args: Finalize(),
    GetServerDateTime.NAME: lambda args: GetServerDateTime(),
    GetSamBasic.NAME: lambda args: GetSamBasic(),
    VerifySam.NAME: lambda args: VerifySam(),
    LogoutSam.NAME: lambda args: LogoutSam(),
    SignWithSam.NAME: _service_type,
    ListCloudSams.NAME: lambda args: ListCloudSams(),
    ListCorsHosts.NAME: lambda args: ListCorsHosts(),
    AllowCorsHost.NAME: lambda args: AllowCorsHost(host=_cors_host(args, "allowHost")),
    RemoveCorsHost.NAME: lambda args: RemoveCorsHost(host=_cors_host(args, "id")),
    ImportCloudSam.NAME: _import_cloud_sam,
    RemoveCloudSam.NAME: lambda args: RemoveCloudSam(sam_id=_text(args, "samId", max_length=MAX_DEVICE_NAME)),
    ReadHcBasic.NAME: lambda args: ReadHcBasic(),
    SimAdvanceClock.NAME: _advance_clock,
    VerifyHpcPin.NAME: lambda args: VerifyHpcPin(pin=_secret_digits(args, "pin", 4, 8)),
    ChangeHpcPin.NAME: lambda args: ChangeHpcPin(new_pin=_secret_digits(args, "newPin", 4, 8)),
    ResetHpcPin.NAME: lambda args: ResetHpcPin(
        puk=_secret_digits(args, "puk", 1, 8), new_pin=_secret_digits(args, "newPin", 4, 8)),
    ReadHpcBasic.NAME: lambda args: ReadHpcBasic(),
    LogoutHpc.NAME: lambda args: LogoutHpc(),
    SignWithHpc.NAME: lambda args: SignWithHpc(service_type=_service_type_of(args)),
    VerifyMobileHca.NAME: _mobile_hca,
    LogoutHc.NAME: lambda args: LogoutHc(),
    GetHcPin.NAME: lambda args: GetHcPin(),
    VerifyHcPin.NAME: lambda args: VerifyHcPin(pin=_secret_digits(args, "pin", 4, 6)),
    SetHcPin.NAME: lambda args: SetHcPin(new_pin=_secret_digits(args, "newPin", 4, 6)),
    RemoveHcPin.NAME: lambda args: RemoveHcPin(),
    SignWithHc.NAME: lambda args: SignWithHc(service_type=_service_type_of(args)),
    SignWithHpcHc.NAME: lambda args: SignWithHpcHc(service_type=_service_type_of(args)),
    VerifyVirtualHc.NAME: lambda args: VerifyVirtualHc(token=_secret_text(args, "token")),
    ReadVirtualHcBasic.NAME: lambda args: ReadVirtualHcBasic(token=_secret_text(args, "token")),
    ExportVirtualHc.NAME: lambda args: ExportVirtualHc(),
    ImportVirtualHc.NAME: lambda args: ImportVirtualHc(transfer_token=_secret_text(args, "transferToken")),
    UpdateRealHc.NAME: lambda args: UpdateRealHc(),
}

COMMAND_NAMES = frozenset(_PARSERS)


def is_recorded(command: Command) -> bool:
    """The Record endpoints are never recorded themselves (the spec's Record would record its own reads)."""
    return bool(getattr(command, "RECORDED", True))


def parse_command(name: str, args: dict[str, Any]) -> Command:
    parser = _PARSERS.get(name)
    if parser is None:
        raise BadArguments(f"unknown command {name!r}")
    return parser(args)
