"""Domain events: facts in the past tense, the only thing the state is folded from.

Each event type has a version; its payload is canonical JSON (sorted keys, no
spaces) so that the bytes stored are stable and readable with the sqlite3 CLI.

Causation (issue 22): every payload also carries `caused_by`, the uuid (`X-Request-Id`) of the `/api/` call
whose handling appended the event, or null when no call did (a worker's report, the clock, the bench's own
card offer). It is the event's metadata, not its meaning: the dataclasses do not hold it, `encode` takes it
beside the event and `decode_with_cause` gives it back. Every type's version went up by one for it; events
stored before read as caused by nothing (the upcasters below), and their stored bytes never change.
Personal data never goes into an event: cards are identified by their ATR and
the worker's card session number, not by card or ID numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Final, get_args


@dataclass(frozen=True, slots=True)
class ReaderAttached:
    """A reader's worker registered with the broker for the first time (or after a detach)."""

    VERSION: ClassVar[int] = 2
    reader: str
    backend: str


@dataclass(frozen=True, slots=True)
class ReaderDetached:
    """A reader is no longer wanted or no longer present: its worker was stopped."""

    VERSION: ClassVar[int] = 2
    reader: str
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """A reader's worker died or went silent; what its card was doing is no longer known."""

    VERSION: ClassVar[int] = 2
    reader: str
    reason: str


@dataclass(frozen=True, slots=True)
class CardInserted:
    """A card appeared in a reader; `session` numbers insertions so a swap is never missed.

    Version 2 added `card_ref`, the installation's keyed hash of the card number (None when the
    card could not be read), so an auditor can follow one card through the log. Version 3 added
    `card_type`, the card's own type where it has one (staff card: 1 doctor, 2 other staff). Version 4: the
    payload's `caused_by` (see the module's docstring).
    """

    VERSION: ClassVar[int] = 4
    reader: str
    atr: str
    kind: str
    session: int
    card_ref: str | None = None
    card_type: int | None = None


@dataclass(frozen=True, slots=True)
class CardRemoved:
    VERSION: ClassVar[int] = 2
    reader: str
    session: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallRecordCleared:
    """`DELETE /api/common/v1/Record`: the record is hidden up to `through_seq`, never deleted."""

    VERSION: ClassVar[int] = 2
    through_seq: int


@dataclass(frozen=True, slots=True)
class DefaultReaderSet:
    """`POST .../PcscReader/Default` or `AutoDetected`: card operations go to this reader first."""

    VERSION: ClassVar[int] = 2
    reader: str


@dataclass(frozen=True, slots=True)
class DefaultReaderCleared:
    VERSION: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class SimReaderPlugged:
    """The bench plugged in one of its in-process virtual readers (only ever in a `--sim` log)."""

    VERSION: ClassVar[int] = 2
    reader: str


@dataclass(frozen=True, slots=True)
class SimReaderUnplugged:
    VERSION: ClassVar[int] = 2
    reader: str


@dataclass(frozen=True, slots=True)
class SimCardPut:
    """The bench put a fresh card of `profile` in a virtual reader (a profile name, not personal data)."""

    VERSION: ClassVar[int] = 2
    reader: str
    profile: str


@dataclass(frozen=True, slots=True)
class SimCardTaken:
    VERSION: ClassVar[int] = 2
    reader: str


@dataclass(frozen=True, slots=True)
class CloudSamImported:
    """`POST /api/settings/v1/CloudSam`: a SAM file was stored (its content never enters the log)."""

    VERSION: ClassVar[int] = 2
    sam_id: str
    hospital_id: str


@dataclass(frozen=True, slots=True)
class CloudSamRemoved:
    VERSION: ClassVar[int] = 2
    sam_id: str


@dataclass(frozen=True, slots=True)
class CorsHostAllowed:
    """`POST /api/settings/v1/Cors`: pages from this host may call the console (effective at once)."""

    VERSION: ClassVar[int] = 2
    host: str


@dataclass(frozen=True, slots=True)
class CorsHostRemoved:
    VERSION: ClassVar[int] = 2
    host: str


@dataclass(frozen=True, slots=True)
class SessionInitialized:
    """`POST /api/common/v1/Initial` opened a device: `sam_type` 1 cloud, 2 physical; `reader` the reader in use."""

    VERSION: ClassVar[int] = 2
    device: str
    sam_type: int
    reader: str | None


@dataclass(frozen=True, slots=True)
class PhysicalSamIdentified:
    """`Initial` opened an NHI dedicated reader and read its SAM's public identity (the SAM itself stays in the
    reader: signing goes through it). Kept in the log so a restarted broker still answers `sam/v1/Basic`."""

    VERSION: ClassVar[int] = 2
    port: str
    sam_id: str
    hospital_id: str
    hospital_name: str
    hospital_short_name: str


@dataclass(frozen=True, slots=True)
class SessionFinalized:
    """The session ended: `Finalize`, a fresh start of the console, or its SAM removed."""

    VERSION: ClassVar[int] = 2
    reason: str


@dataclass(frozen=True, slots=True)
class SamVerified:
    """The SAM was verified with the data center until `expires_at` (ISO 8601 with offset)."""

    VERSION: ClassVar[int] = 2
    expires_at: str


@dataclass(frozen=True, slots=True)
class SamVerificationFailed:
    """A verification the DC refused (1301 to 1304: the SAM drops to 1) or could not answer (17xx: unchanged)."""

    VERSION: ClassVar[int] = 2
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SamSessionExpired:
    """The SAM's DC session ran out (by the clock, or the DC said so): SAM 2 -> 1."""

    VERSION: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class SamLoggedOut:
    """`DELETE /api/sam/v1/Logout`: SAM 2 -> 1, both cards -> 0."""

    VERSION: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class CardDetected:
    """A card of `kind` (hc, hpc) reached level 1 in `reader` (its insertion `session`)."""

    VERSION: ClassVar[int] = 2
    kind: str
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class CardAuthenticated:
    """Card and SAM authenticated each other: the card is at level 2."""

    VERSION: ClassVar[int] = 2
    kind: str
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class CardAuthenticationFailed:
    """A step toward a card's level failed with `code` (the level's code or the DC's); the state is unchanged."""

    VERSION: ClassVar[int] = 2
    kind: str
    reader: str
    session: int
    code: int


@dataclass(frozen=True, slots=True)
class CardLoggedOut:
    """`DELETE /api/hc/v1/Logout` (or hpc): that card -> 0, re-detected on demand while still in its reader."""

    VERSION: ClassVar[int] = 2
    kind: str


@dataclass(frozen=True, slots=True)
class SimClockAdvanced:
    """The bench moved the console's clock forward (only ever in a `--sim` log)."""

    VERSION: ClassVar[int] = 2
    seconds: int


@dataclass(frozen=True, slots=True)
class HpcPinVerified:
    """The staff card in `reader` (that insertion) accepted its PIN: level 3 until `expires_at` (8 hours)."""

    VERSION: ClassVar[int] = 2
    reader: str
    session: int
    expires_at: str


@dataclass(frozen=True, slots=True)
class HpcPinRejected:
    """The card refused the PIN (`tries_left` after it), or its PIN is blocked and no VERIFY was sent."""

    VERSION: ClassVar[int] = 2
    reader: str
    session: int
    tries_left: int
    blocked: bool


@dataclass(frozen=True, slots=True)
class HpcPinChanged:
    VERSION: ClassVar[int] = 2
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class HpcPinReset:
    """The PUK unblocked the PIN and set a new one, which is not verified yet."""

    VERSION: ClassVar[int] = 2
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class HpcPukRejected:
    VERSION: ClassVar[int] = 2
    reader: str
    session: int
    tries_left: int
    blocked: bool


@dataclass(frozen=True, slots=True)
class HpcAuthenticationExpired:
    """The 8 hours after the PIN (or the mobile HCA login) passed: level 3 ends."""

    VERSION: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class HpcAuthenticationEnded:
    """Another staff card (or mobile HCA) took over: the previous one's authentication ends."""

    VERSION: ClassVar[int] = 2
    reason: str


@dataclass(frozen=True, slots=True)
class MobileHcaLoggedIn:
    """`POST /api/hpc/v1/Verification/MobiliHca` accepted a login: HPC level 3, type 3. `person_ref` is a pseudonym."""

    VERSION: ClassVar[int] = 2
    person_ref: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class MobileHcaRejected:
    VERSION: ClassVar[int] = 2
    code: int


@dataclass(frozen=True, slots=True)
class HcPinStateRead:
    """The health card's PIN state as the card told it: `verified` None when it has no PIN."""

    VERSION: ClassVar[int] = 2
    reader: str
    session: int
    has_pin: bool
    verified: bool | None


@dataclass(frozen=True, slots=True)
class HcPinVerified:
    VERSION: ClassVar[int] = 2
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class HcPinRejected:
    VERSION: ClassVar[int] = 2
    reader: str
    session: int
    tries_left: int
    blocked: bool


@dataclass(frozen=True, slots=True)
class HcPinSet:
    """A new PIN was set (the holder just typed it: it counts as verified)."""

    VERSION: ClassVar[int] = 2
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class HcPinRemoved:
    VERSION: ClassVar[int] = 2
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class HcHpcAuthenticated:
    """The health card in use reached level 3: authenticated with the staff card (HPC at level 3)."""

    VERSION: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class VirtualHcVerified:
    """A virtual health card is the session's health card (level 2, type 2) until `expires_at`.

    `via` is `token` (`Verification/VirtualHc`) or `transfer` (`VirtualHc/Import`); `card_ref` is the
    pseudonym of its card number. The token itself never enters the log.
    """

    VERSION: ClassVar[int] = 2
    card_ref: str
    expires_at: str
    via: str


@dataclass(frozen=True, slots=True)
class VirtualHcRejected:
    VERSION: ClassVar[int] = 2
    code: int


@dataclass(frozen=True, slots=True)
class VirtualHcExported:
    """`VirtualHc/Export`: the virtual card left for another device (its transfer token is at the DC): HC -> 0."""

    VERSION: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class VirtualHcExpired:
    """The virtual card's token expired while in use: HC -> 0."""

    VERSION: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class CallRefused:
    """A request refused before anything ran: 403 (an origin or fetch metadata the allow-list refuses), 421 (a
    `Host` that is not this machine), 415 (a body that is not JSON). Its `caused_by` is the refused request's
    uuid (its `X-Request-Id`). `url` is the path asked for (cut to 256 characters), `caller` the `Origin` it
    carried (cut likewise) or `native`; `reason` is the console's own words, never the request's."""

    VERSION: ClassVar[int] = 1
    url: str
    caller: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class CardDataRead:
    """A call read a physical card's data block (`kind` "hc": the health card's basic data, for `hc/v1/Basic`,
    a signature or an update; "hpc": the staff card's, for `hpc/v1/Basic` or a signature). Reads change no
    level, but they are what an auditor asks about first ("which calls read this patient's card"), so each one
    is a fact in the log, linked to its call by `caused_by` and to the card by `reader` and `session`. Never the
    data itself."""

    VERSION: ClassVar[int] = 1
    kind: str
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class AgentEnrolled:
    """`nhi-console agents add`: the reader agent of this key may connect (`serve --agents`), its readers named
    `name/...`. `key_id` is SHA-256 of the agent's public key (contract/agent_link.py): the key is never logged.
    Enrolling a name again with `--replace` is this event with the new key: the old key's connections end."""

    VERSION: ClassVar[int] = 1
    name: str
    key_id: str


@dataclass(frozen=True, slots=True)
class AgentRemoved:
    """`nhi-console agents remove`: the agent's connections end and its readers leave."""

    VERSION: ClassVar[int] = 1
    name: str
    key_id: str


@dataclass(frozen=True, slots=True)
class AgentRefused:
    """A connection to the agent endpoint with a key not enrolled was refused in its handshake. Throttled
    (broker/runtime/agent_routes.py): `attempts` counts the refusals of this key since the last one logged."""

    VERSION: ClassVar[int] = 1
    key_id: str
    address: str
    attempts: int


@dataclass(frozen=True, slots=True)
class CardSessionResumed:
    """A card an agent's reader held when the console lost it is reported back with the same insertion session:
    the agent proves it never left (its worker saw no removal, and a restarted worker numbers a card anew), so
    the session goes on instead of a new insertion. What the console had authenticated on it starts again;
    a staff card's level 3 follows it back as after any removal."""

    VERSION: ClassVar[int] = 1
    reader: str
    session: int


@dataclass(frozen=True, slots=True)
class HcNotesUpdated:
    """`RealHc/Update` wrote the DC's notes onto the card, which is then logged out (HC -> 0)."""

    VERSION: ClassVar[int] = 2
    reader: str
    session: int


Event = (
    ReaderAttached
    | ReaderDetached
    | WorkerLost
    | CardInserted
    | CardRemoved
    | CallRecordCleared
    | DefaultReaderSet
    | DefaultReaderCleared
    | SimReaderPlugged
    | SimReaderUnplugged
    | SimCardPut
    | SimCardTaken
    | CloudSamImported
    | CloudSamRemoved
    | SessionInitialized
    | SessionFinalized
    | SamVerified
    | SamVerificationFailed
    | SamSessionExpired
    | SamLoggedOut
    | CardDetected
    | CardAuthenticated
    | CardAuthenticationFailed
    | CardLoggedOut
    | SimClockAdvanced
    | HpcPinVerified
    | HpcPinRejected
    | HpcPinChanged
    | HpcPinReset
    | HpcPukRejected
    | HpcAuthenticationExpired
    | HpcAuthenticationEnded
    | MobileHcaLoggedIn
    | MobileHcaRejected
    | HcPinStateRead
    | HcPinVerified
    | HcPinRejected
    | HcPinSet
    | HcPinRemoved
    | HcHpcAuthenticated
    | VirtualHcVerified
    | VirtualHcRejected
    | VirtualHcExported
    | VirtualHcExpired
    | HcNotesUpdated
    | PhysicalSamIdentified
    | CorsHostAllowed
    | CorsHostRemoved
    | CallRefused
    | CardDataRead
    | AgentEnrolled
    | AgentRemoved
    | AgentRefused
    | CardSessionResumed
)

EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in get_args(Event)}
"""Every event by its stored type name: the classes of `Event`, written once there."""


class UnknownEvent(ValueError):
    """A stored event this version of the console cannot read."""


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

CAUSE: Final = "caused_by"
"""The payload key of an event's causation (see the module's docstring)."""

BORN_WITH_CAUSE: Final = frozenset(
    {"CallRefused", "CardDataRead", "AgentEnrolled", "AgentRemoved", "AgentRefused", "CardSessionResumed"}
)
"""Types whose first version already had `caused_by`: no upcaster adds it."""


def _caused_by_nothing(data: dict[str, Any]) -> dict[str, Any]:
    """An event stored before causation was kept: no call is known to have caused it."""
    return {**data, CAUSE: None}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # CardInserted v1 -> v2: logs written before card pseudonyms did not know the card.
    ("CardInserted", 1): lambda data: {**data, "card_ref": None},
    # CardInserted v2 -> v3: logs written before card types were read did not know them.
    ("CardInserted", 2): lambda data: {**data, "card_type": None},
    # Every type, the version before its current one -> current: `caused_by` (issue 22).
    **{(name, cls.VERSION - 1): _caused_by_nothing for name, cls in EVENT_TYPES.items() if name not in BORN_WITH_CAUSE},
}
"""(type, stored version) -> the payload one version up. Old events are never rewritten in the log
(that would break its hash chain); they are upcast each time they are read."""


def encode(event: Event, caused_by: str | None = None) -> tuple[str, int, bytes]:
    """The (type, version, payload) triple the event store keeps; `caused_by` the call that made it, if any."""
    data = asdict(event)
    data[CAUSE] = caused_by
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return type(event).__name__, type(event).VERSION, payload.encode("utf-8")


def decode(type_name: str, version: int, payload: bytes) -> Event:
    """Rebuild an event from the store; raises UnknownEvent for types or versions we cannot read."""
    return decode_with_cause(type_name, version, payload)[0]


def decode_with_cause(type_name: str, version: int, payload: bytes) -> tuple[Event, str | None]:
    """The event and the call that caused it (None: none did, or it was stored before causation was kept)."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEvent(f"unknown event type {type_name!r}")
    if version > cls.VERSION or version < 1:
        raise UnknownEvent(f"{type_name} version {version} is not readable by this console")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnknownEvent(f"{type_name} payload is not JSON") from error
    if not isinstance(data, dict):
        raise UnknownEvent(f"{type_name} payload is not a JSON object")
    while version < cls.VERSION:
        upcast = UPCASTERS.get((type_name, version))
        if upcast is None:
            raise UnknownEvent(f"{type_name} version {version} has no upcaster")
        data, version = upcast(data), version + 1
    names = {field.name for field in fields(cls)} | {CAUSE}
    if set(data) != names:
        raise UnknownEvent(f"{type_name} payload has fields {sorted(data)}, expected {sorted(names)}")
    cause = data.pop(CAUSE)
    if cause is not None and not isinstance(cause, str):
        raise UnknownEvent(f"{type_name} payload's {CAUSE} is not a call's uuid")
    return cls(**data), cause
