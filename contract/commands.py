"""Every command the API sends the broker, declared once: its name, its arguments and their rules, whether its
call is recorded, what it needs, and how long the API waits for it.

A command is a frozen dataclass named in the imperative and marked with `@command(...)`; its fields that are
arguments are `argument(rule, wire_name)`. From that one declaration come:

- the broker's parser, `parse_command(name, args)`, which checks every argument (the broker trusts no peer) and
  raises `BadArguments` (answered 1704);
- the API's reading of a request body, `read_json(Command, body)`, with the same rules (a 400 that runs nothing);
- the OpenAPI document's request body, `body_schema(Command)`;
- the broker's preconditions (`spec_of(command).needs_session`: 1000 before `Initial`) and the call record
  (`is_recorded`);
- the API's wait (`api_seconds`; unset: the API's own request timeout).

Adding a command is this declaration, a handler in the broker (`broker.handlers`) and a route in api/.
The bench's own commands are declared the same way in `sim.bench`, whose handlers a broker gets only under
`serve --sim`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, dataclass_transform

from contract.agent_link import AGENT_NAME
from contract.arguments import (
    MISSING,
    Argument,
    BadArguments,
    Base64Bytes,
    Digits,
    HostName,
    Integer,
    LooseText,
    Number,
    Pattern,
    ServiceType,
    StreamPosition,
    Text,
    argument,
)
from contract.deadlines import FLOW_SECONDS, KEYPAD_FLOW_SECONDS
from contract.schemas import Schema
from contract.text import MAX_KEPT_TEXT

__all__ = ["BadArguments", "COMMAND_NAMES", "CommandSpec", "parse_command", "read_json", "spec_of"]

MAX_RECORD_TAKE: Final = 1000
"""The cap on `take` in `GET /api/common/v1/Record`: a HIS asking for more gets this many."""
MAX_READER_NAME: Final = 128
"""PC/SC reader names are at most 128 characters (MAX_READERNAME in pcsc-lite)."""
MAX_DEVICE_NAME: Final = 128
MAX_CLOUD_SAM_CONTEXT: Final = 64 * 1024
MAX_TOKEN: Final = 8 * 1024
MAX_STREAM_WAIT: Final = 30.0
CERTIFICATE_BYTES: Final = 16 * 1024
SIGNATURE_BYTES: Final = 512

# The rules each kind of argument follows, named once.
READER_NAME: Final = Text(max_length=MAX_READER_NAME)
SERVICE_TYPE: Final = ServiceType(description="The service type, 2 ASCII letters or digits")
HPC_PIN: Final = Digits(shortest=4, longest=8)
"""The staff card's PIN: the spec's "String(48)", 4 to 8 digits."""
HPC_PUK: Final = Digits(shortest=1, longest=8)
HC_PIN: Final = Digits(
    shortest=4, longest=6, description="4 to 6 digits; on an NHI reader the keypad is used and this value is ignored"
)
"""The health card's PIN: the spec's "String(46)", 4 to 6 digits."""
TOKEN: Final = Text(max_length=MAX_TOKEN, secret=True)
"""A virtual health card token or a transfer token: a bearer credential, judged by its flow, never echoed."""


@dataclass(frozen=True)
class CommandSpec:
    """What the declaration says of a command beyond its fields."""

    name: str
    arguments: dict[str, Argument]
    """field name -> its argument (its rule and its wire name)."""
    recorded: bool
    needs_session: bool
    api_seconds: float | None


_COMMANDS: dict[str, type] = {}
_SPECS: dict[type, CommandSpec] = {}

Declared = TypeVar("Declared", bound=type)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(argument, field))
def command(
    *, recorded: bool = True, needs_session: bool = False, api_seconds: float | None = None
) -> Callable[[Declared], Declared]:
    """Declare a command: a frozen dataclass registered under its class name.

    `recorded`: its call goes into the call record (not the Record endpoints themselves, nor internal asks);
    `needs_session`: it answers 1000 until `Initial`;
    `api_seconds`: how long the API waits for its answer; None: the API's request timeout (the settings').
    """

    def declare(cls: Declared) -> Declared:
        made: Any = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        arguments = {
            item.name: item.metadata["argument"] for item in dataclasses.fields(made) if "argument" in item.metadata
        }
        if made.__name__ in _COMMANDS:
            raise ValueError(f"command {made.__name__} is declared twice")
        _COMMANDS[made.__name__] = made
        _SPECS[made] = CommandSpec(made.__name__, arguments, recorded, needs_session, api_seconds)
        return made

    return declare


def spec_of(command: object) -> CommandSpec:
    """The declaration of a command class or of one of its instances."""
    return _SPECS[command if isinstance(command, type) else type(command)]


def is_recorded(command: object) -> bool:
    return spec_of(command).recorded


def command_names() -> frozenset[str]:
    """Every command declared so far (the bench's too, once `sim.bench` is imported)."""
    return frozenset(_COMMANDS)


def parse_command(name: str, args: dict[str, Any]) -> Any:
    """The command `name` with `args` from the wire, every argument checked; `BadArguments` otherwise."""
    made = _COMMANDS.get(name)
    if made is None:
        raise BadArguments(f"unknown command {name!r}")
    spec = _SPECS[made]
    return made(**{field_name: arg.from_wire(args) for field_name, arg in spec.arguments.items()})


def read_json(command_class: type, body: dict[str, Any], *, leave_out: Collection[str] = ()) -> dict[str, Any]:
    """The API's side: a request body's arguments checked by the same rules, as they go on the wire
    (optional ones left out stay out); `BadArguments` names the first that is wrong. `leave_out`: arguments
    that do not come from the body (a URL's fields), which the broker checks on its own."""
    wire: dict[str, Any] = {}
    for arg in spec_of(command_class).arguments.values():
        if arg.wire in leave_out:
            continue
        value = arg.from_json(body)
        if value is not MISSING:
            wire[arg.wire] = value
    return wire


def body_schema(command_class: type) -> tuple[dict[str, Schema], tuple[str, ...]]:
    """The OpenAPI request body's properties and required names, from the arguments' rules."""
    arguments = spec_of(command_class).arguments.values()
    return (
        {arg.wire: arg.rule.schema() for arg in arguments},
        tuple(arg.wire for arg in arguments if not arg.optional),
    )


# --- the call record, the state, the live stream ------------------------------------------------


@command()
class GetStatus:
    pass


@command(recorded=False)
class ListRecords:
    skip: int = argument(Integer(), "skip", optional=True, default=0)
    take: int = argument(Integer(cap=MAX_RECORD_TAKE), "take", optional=True, default=100)


@command(recorded=False)
class ClearRecords:
    pass


@command()
class RecordCall:
    """Record a call the API answered itself (Version, a rejected request) with its statusCode."""

    status_code: int = argument(Integer(maximum=9999), "statusCode")


REFUSAL_STATUSES: Final = (403, 415, 421)
"""The refusals the log keeps (`CallRefused`): an origin or fetch metadata (403), a body that is not JSON (415),
a `Host` that is not this machine (421)."""
MAX_REFUSED_TEXT: Final = MAX_KEPT_TEXT
"""A refused request's path and `Origin` are cut to this many characters before they travel (api/refusals.py)."""


@command(recorded=False)
class RecordRefusal:
    """A request the API refused before it ran: kept as `CallRefused` (the log's, not the call record's: the Record
    API lists calls that ran). The request's uuid travels as the call's, which makes the event's `caused_by`."""

    url: str = argument(Text(max_length=MAX_REFUSED_TEXT), "url")
    caller: str = argument(Text(max_length=MAX_REFUSED_TEXT), "caller")
    status: int = argument(Integer(minimum=400, maximum=499), "status")
    reason: str = argument(Text(max_length=MAX_REFUSED_TEXT), "reason")


@command(recorded=False)
class GetStateSnapshot:
    """The state and the last event it includes: what `nhi-console log replay` compares its own fold with."""


@command(recorded=False)
class WaitForEvents:
    """The live stream's long poll: what happened after `after` (stream position) and `after_call` (call seq),
    answered at once if anything did, else when something does or `wait_seconds` pass. `after` None: a snapshot
    first. Not a call of its own: the stream is not recorded."""

    after: tuple[int, int] | None = argument(StreamPosition(), "after", optional=True)
    after_call: int | None = argument(Integer(null_is_absent=True), "afterCall", optional=True)
    wait_seconds: float = argument(Number(maximum=MAX_STREAM_WAIT), "waitSeconds", optional=True, default=0.0)


# --- readers ------------------------------------------------------------------------------------


@command()
class ListReaders:
    pass


@command()
class AutoDetectReader:
    pass


@command()
class GetDefaultReader:
    pass


@command()
class SetDefaultReader:
    reader: str = argument(READER_NAME, "readerName")


@command()
class ClearDefaultReader:
    pass


@command()
class ReadPublicData:
    """Read a health card's public data block (on `reader`, or the one the routing rule picks)."""

    reader: str | None = argument(READER_NAME, "reader", optional=True)


# --- the session: devices and the SAM -----------------------------------------------------------


@command(api_seconds=FLOW_SECONDS)
class ListDevices:
    """`GET /api/common/v1/Name`: imported cloud SAM ids, then the machine's serial ports."""


@command(api_seconds=FLOW_SECONDS)
class Initialize:
    name: str | None = argument(Text(max_length=MAX_DEVICE_NAME, nullable=True), "name", optional=True)


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class Finalize:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class GetServerDateTime:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class GetSamBasic:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class VerifySam:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class LogoutSam:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class SignWithSam:
    service_type: str = argument(SERVICE_TYPE, "serviceType")


@command()
class ListCloudSams:
    pass


@command()
class ImportCloudSam:
    """The file's content travels only in `context` and is never logged (hidden from repr)."""

    context: str = argument(
        Text(max_length=MAX_CLOUD_SAM_CONTEXT, description="The file, base64", secret=True), "cloudSamContext"
    )
    sam_id: str | None = argument(Pattern(max_length=12, pattern="^[0-9]{12}$", nullable=True), "samId", optional=True)
    hospital_id: str | None = argument(
        Pattern(max_length=12, pattern="^[0-9A-Za-z]{1,10}$", nullable=True), "hospitalId", optional=True
    )


@command()
class RemoveCloudSam:
    sam_id: str = argument(Text(max_length=MAX_DEVICE_NAME), "samId")


# --- the staff card -----------------------------------------------------------------------------


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class VerifyHpcPin:
    pin: str = argument(HPC_PIN, "pin")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class ChangeHpcPin:
    new_pin: str = argument(HPC_PIN, "newPin")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class ResetHpcPin:
    puk: str = argument(HPC_PUK, "puk")
    new_pin: str = argument(HPC_PIN, "newPin")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class ReadHpcBasic:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class LogoutHpc:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class SignWithHpc:
    service_type: str = argument(SERVICE_TYPE, "serviceType")


@dataclass(frozen=True)
class MobileHcaLogin:
    """A mobile HCA login's fields, decoded (Base64 → bytes) but otherwise as sent.

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


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class VerifyMobileHca:
    """`POST /api/hpc/v1/Verification/MobiliHca` (the spec's spelling): the login is checked by its flow."""

    id_no: str = argument(Text(max_length=10), "idNo")
    birthday: str = argument(Text(max_length=10), "birthday")
    c_name: str = argument(Text(max_length=64), "cName")
    e_name: str = argument(LooseText(max_length=64), "eName", optional=True, default="")
    hospital_id: str = argument(Text(max_length=10), "hospitalId")
    med_id: str = argument(Text(max_length=1), "medId")
    login_date_time: str = argument(Text(max_length=20), "loginDateTime")
    certificate_der: bytes = argument(
        Base64Bytes(longest=CERTIFICATE_BYTES, description="The certificate, DER in base64"), "signatureCertificate"
    )
    signature: bytes = argument(
        Base64Bytes(longest=SIGNATURE_BYTES, description="The login's signature, base64"), "signature"
    )

    @property
    def login(self) -> MobileHcaLogin:
        return MobileHcaLogin(
            self.id_no,
            self.birthday,
            self.c_name,
            self.e_name,
            self.hospital_id,
            self.med_id,
            self.login_date_time,
            self.certificate_der,
            self.signature,
        )


# --- the health card ----------------------------------------------------------------------------


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class ReadHcBasic:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class LogoutHc:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class GetHcPin:
    pass


@command(needs_session=True, api_seconds=KEYPAD_FLOW_SECONDS)
class VerifyHcPin:
    pin: str = argument(HC_PIN, "pin")


@command(needs_session=True, api_seconds=KEYPAD_FLOW_SECONDS)
class SetHcPin:
    new_pin: str = argument(HC_PIN, "newPin")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class RemoveHcPin:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class SignWithHc:
    service_type: str = argument(SERVICE_TYPE, "serviceType")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class SignWithHpcHc:
    service_type: str = argument(SERVICE_TYPE, "serviceType")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class VerifyVirtualHc:
    token: str = argument(TOKEN, "token")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class ReadVirtualHcBasic:
    token: str = argument(TOKEN, "token")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class ExportVirtualHc:
    pass


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class ImportVirtualHc:
    transfer_token: str = argument(TOKEN, "transferToken")


@command(needs_session=True, api_seconds=FLOW_SECONDS)
class UpdateRealHc:
    pass


# --- the CORS allow-list ------------------------------------------------------------------------


@command()
class ListCorsHosts:
    """`GET /api/settings/v1/Cors`; also what the API's caller gate asks (unrecorded) before serving an Origin."""


@command()
class AllowCorsHost:
    host: str = argument(HostName(), "allowHost")


@command()
class RemoveCorsHost:
    host: str = argument(HostName(), "id")


# --- reader agents (issue 23): the `nhi-console agents` commands, over the broker's local socket only --------------

AGENT_NAME_RULE: Final = Pattern(max_length=32, pattern=AGENT_NAME.pattern, description="An agent's name")
KEY_ID_RULE: Final = Pattern(max_length=64, pattern="[0-9a-f]{64}", description="SHA-256 of a public key, in hex")


@command(recorded=False)
class ListAgents:
    """`nhi-console agents list`: the enrolled agents, their key ids and the readers they serve now."""


@command(recorded=False)
class EnrollAgent:
    """`nhi-console agents add NAME KEY`: the key's id only (the key itself never reaches the console)."""

    name: str = argument(AGENT_NAME_RULE, "name")
    key_id: str = argument(KEY_ID_RULE, "keyId")


@command(recorded=False)
class ReplaceAgentKey:
    """`nhi-console agents add NAME KEY --replace`: key rotation; the old key's connections are dropped."""

    name: str = argument(AGENT_NAME_RULE, "name")
    key_id: str = argument(KEY_ID_RULE, "keyId")


@command(recorded=False)
class RemoveAgent:
    name: str = argument(AGENT_NAME_RULE, "name")


COMMAND_NAMES: Final = command_names()
"""The commands declared in this module (the bench's own are added by `sim.bench`)."""
