"""The ZeroMQ wire protocol between the API, the broker and the reader workers.

Every message is a list of frames; after whatever routing envelope ZeroMQ adds
(a ROUTER socket's identity frame) it is exactly two frames:

    [MAGIC + message-type byte, msgpack body]

`build()` turns a message object into those two frames and `parse()` turns two
frames back into a message object.  `parse()` trusts nothing: a frame from a
crashed or hostile peer raises `ProtocolError` (callers drop it and log), never
an `AssertionError` and never a half-built message.

Who sends what:

    API    -> broker : Request          broker -> API    : Reply
    worker -> broker : WorkerStatus, Reply; Heartbeat (from the worker's heartbeat socket)
    broker -> worker : Request, Heartbeat, Disconnect

A worker's heartbeat is a `WorkerStatus`: who it is and what is in its reader,
sent at once on every change and again every heartbeat interval.  So a broker
that restarts learns the whole truth from the workers within one interval and
adopts them (their card sessions survive a broker crash), and a lost message
heals itself.  Any message counts as a sign of life (as in the ZeroMQ guide's
Paranoid Pirate), so a busy peer need not send heartbeats on top of its traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from contract.text import MAX_KEPT_TEXT

MAGIC: Final = b"NHI1"
MAX_BODY_BYTES: Final = 256 * 1024
"""Larger than any legal message (API bodies are capped at 64 KiB), small enough to refuse floods."""


class ProtocolError(ValueError):
    """A frame that is not a well-formed message of this protocol."""


HEARTBEAT_SUFFIX: Final = b"/heartbeat"
"""A worker's heartbeat socket's identity is its main socket's identity and this: a thread of the worker sends
`Heartbeat`s on it while the main loop runs a slow command, and the broker counts them for the worker whose
identity it extends (broker/runtime/liveness.py, workers/heartbeat.py)."""


@dataclass(frozen=True, slots=True)
class CallMeta:
    """What the broker needs to add a call to the call record; absent for unrecorded calls.

    `caller`: the page's allowed `Origin`, or `native` (see eventlog.store.CallRecord); None from an API that
    does not send it."""

    url: str
    uuid: str
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """A command: API -> broker, or broker -> worker."""

    id: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    call: CallMeta | None = None
    reader: str | None = None
    """Broker -> worker: the reader meant, for a worker that serves several (the NHI reader's two slots)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The one answer to a Request with the same id; `code` is the spec's statusCode."""

    id: str
    code: int
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CardPresence:
    """The card a worker sees: `session` counts insertions, so a swap between two looks is never missed."""

    atr: str
    kind: str
    session: int
    card_number: str | None = None
    """Read from the card so the broker can pseudonymize it; never stored or logged as is."""
    card_type: int | None = None
    """The card's own type where it has one (the staff card: 1 doctor, 2 other staff), read at insertion."""


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker's heartbeat: the reader it owns and the card in it (None: empty)."""

    reader: str
    backend: str
    pid: int
    card: CardPresence | None = None
    fault: int | None = None
    """The console code for why the reader cannot be used now (1201 port not open, 1202 not answering)."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The broker telling a worker to stop (its reader is no longer wanted)."""

    reason: str


Message = Request | Reply | WorkerStatus | Heartbeat | Disconnect

_TYPE_BYTES: Final[dict[type, bytes]] = {
    Request: b"\x01",
    Reply: b"\x02",
    WorkerStatus: b"\x03",
    Heartbeat: b"\x04",
    Disconnect: b"\x05",
}
_TYPES_BY_BYTE: Final = {value: key for key, value in _TYPE_BYTES.items()}


def build(message: Message) -> list[bytes]:
    """Encode a message as its two frames."""
    header = MAGIC + _TYPE_BYTES[type(message)]
    return [header, msgpack.packb(_body_of(message), use_bin_type=True)]


def parse(frames: list[bytes]) -> Message:
    """Decode two frames into a message, or raise ProtocolError saying why not."""
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames, got {len(frames)}")
    header, body_bytes = frames
    if len(header) != len(MAGIC) + 1 or not header.startswith(MAGIC):
        raise ProtocolError("bad header frame")
    kind = _TYPES_BY_BYTE.get(header[-1:])
    if kind is None:
        raise ProtocolError(f"unknown message type {header[-1]}")
    if len(body_bytes) > MAX_BODY_BYTES:
        raise ProtocolError("body too large")
    try:
        body = msgpack.unpackb(body_bytes, raw=False, strict_map_key=True, use_list=True)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"body is not msgpack: {type(error).__name__}") from error
    if not isinstance(body, dict):
        raise ProtocolError("body is not a map")
    return _PARSERS[kind](_Fields(body))


def _body_of(message: Message) -> dict[str, Any]:
    if isinstance(message, Request):
        call: dict[str, str] | None = None
        if message.call is not None:
            call = {"url": message.call.url, "uuid": message.call.uuid}
            if message.call.caller is not None:
                call["caller"] = message.call.caller
        body = {"id": message.id, "command": message.command, "args": message.args, "call": call}
        if message.reader is not None:
            body["reader"] = message.reader
        return body
    if isinstance(message, Reply):
        return {"id": message.id, "code": message.code, "body": message.body}
    if isinstance(message, WorkerStatus):
        card = message.card
        return {
            "reader": message.reader,
            "backend": message.backend,
            "pid": message.pid,
            "card": None
            if card is None
            else {
                "atr": card.atr,
                "kind": card.kind,
                "session": card.session,
                "cardNumber": card.card_number,
                "cardType": card.card_type,
            },
            "fault": message.fault,
        }
    if isinstance(message, Heartbeat):
        return {}
    if isinstance(message, Disconnect):
        return {"reason": message.reason}
    raise TypeError(f"not a protocol message: {message!r}")


class _Fields:
    """Typed access to a decoded body, turning every mismatch into a ProtocolError."""

    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def _get(self, name: str, kinds: type | tuple[type, ...], *, optional: bool = False) -> Any:
        if name not in self._body:
            if optional:
                return None
            raise ProtocolError(f"missing field {name!r}")
        value = self._body[name]
        if value is None and optional:
            return None
        # bool is an int subclass: a boolean where a number belongs is malformed.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
            raise ProtocolError(f"field {name!r} has the wrong type")
        return value

    def text(self, name: str, *, max_length: int = 4096) -> str:
        value: str = self._get(name, str)
        if len(value) > max_length:
            raise ProtocolError(f"field {name!r} too long")
        return value

    def optional_text(self, name: str, *, max_length: int = 4096) -> str | None:
        value: str | None = self._get(name, str, optional=True)
        if value is not None and len(value) > max_length:
            raise ProtocolError(f"field {name!r} too long")
        return value

    def integer(self, name: str) -> int:
        return self._get(name, int)

    def optional_integer(self, name: str) -> int | None:
        return self._get(name, int, optional=True)

    def mapping(self, name: str) -> dict[str, Any]:
        return self._get(name, dict)

    def optional_mapping(self, name: str) -> dict[str, Any] | None:
        return self._get(name, dict, optional=True)


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _parse_request(fields: _Fields) -> Request:
    call = fields.optional_mapping("call")
    meta = None
    if call is not None:
        call_fields = _Fields(call)
        meta = CallMeta(
            url=call_fields.text("url"),
            uuid=call_fields.text("uuid", max_length=64),
            caller=call_fields.optional_text("caller", max_length=MAX_KEPT_TEXT),
        )
    return Request(
        id=fields.text("id", max_length=64),
        command=fields.text("command", max_length=64),
        args=fields.mapping("args"),
        call=meta,
        reader=fields.optional_text("reader", max_length=256),
    )


def _parse_reply(fields: _Fields) -> Reply:
    return Reply(id=fields.text("id", max_length=64), code=fields.integer("code"), body=fields.mapping("body"))


def _parse_worker_status(fields: _Fields) -> WorkerStatus:
    card = fields.optional_mapping("card")
    presence = None
    if card is not None:
        card_fields = _Fields(card)
        presence = CardPresence(
            atr=card_fields.text("atr", max_length=80),
            kind=card_fields.text("kind", max_length=16),
            session=card_fields.integer("session"),
            card_number=card_fields.optional_text("cardNumber", max_length=20),
            card_type=card_fields.optional_integer("cardType"),
        )
    return WorkerStatus(
        reader=fields.text("reader", max_length=256),
        backend=fields.text("backend"),
        pid=fields.integer("pid"),
        card=presence,
        fault=fields.optional_integer("fault"),
    )


_PARSERS: Final[dict[type, Callable[[_Fields], Message]]] = {
    Request: _parse_request,
    Reply: _parse_reply,
    WorkerStatus: _parse_worker_status,
    Heartbeat: lambda fields: Heartbeat(),
    Disconnect: lambda fields: Disconnect(reason=fields.text("reason")),
}
