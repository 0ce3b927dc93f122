"""The ZeroMQ wire protocol: every message survives build/parse, and parse trusts nothing.

`parse()` is the broker's first line against a crashed or hostile peer: anything
that is not a well-formed message must come out as `ProtocolError` (never a
KeyError, TypeError, AssertionError or a half-built message).
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.protocol import (
    MAGIC,
    MAX_BODY_BYTES,
    CallMeta,
    CardPresence,
    Disconnect,
    Heartbeat,
    Message,
    ProtocolError,
    Reply,
    Request,
    WorkerStatus,
    build,
    parse,
)

MESSAGE_CLASSES = (Request, Reply, WorkerStatus, Heartbeat, Disconnect)

REQUEST = MAGIC + b"\x01"
REPLY = MAGIC + b"\x02"
WORKER_STATUS = MAGIC + b"\x03"
HEARTBEAT = MAGIC + b"\x04"
DISCONNECT = MAGIC + b"\x05"
VALID_HEADERS = (REQUEST, REPLY, WORKER_STATUS, HEARTBEAT, DISCONNECT)

# --- strategies ----------------------------------------------------------------

MSGPACK_INT = st.integers(min_value=-(2**63), max_value=2**64 - 1)
LEAVES = (
    st.none() | st.booleans() | MSGPACK_INT | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20)
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
ARGS = st.dictionaries(st.text(max_size=12), VALUES, max_size=5)
IDS = st.text(max_size=64)

CALL_META = st.builds(CallMeta, url=st.text(max_size=200), uuid=st.text(max_size=64))
CARD = st.builds(CardPresence, atr=st.text(max_size=80), kind=st.text(max_size=16), session=MSGPACK_INT)

REQUESTS = st.builds(Request, id=IDS, command=st.text(max_size=64), args=ARGS, call=st.none() | CALL_META)
REPLIES = st.builds(Reply, id=IDS, code=MSGPACK_INT, body=ARGS)
WORKER_STATUSES = st.builds(
    WorkerStatus,
    reader=st.text(max_size=256),
    backend=st.text(max_size=40),
    pid=MSGPACK_INT,
    card=st.none() | CARD,
)
HEARTBEATS = st.just(Heartbeat())
DISCONNECTS = st.builds(Disconnect, reason=st.text(max_size=100))

STRATEGIES_BY_TYPE: dict[type, st.SearchStrategy[Message]] = {
    Request: REQUESTS,
    Reply: REPLIES,
    WorkerStatus: WORKER_STATUSES,
    Heartbeat: HEARTBEATS,
    Disconnect: DISCONNECTS,
}


def frames(header: bytes, body: Any) -> list[bytes]:
    return [header, msgpack.packb(body, use_bin_type=True)]


def valid_request_body() -> dict[str, Any]:
    return {"id": "r-1", "command": "GetStatus", "args": {}, "call": {"url": "/api/x", "uuid": "u-1"}}


def valid_status_body() -> dict[str, Any]:
    return {"reader": "Reader 0", "backend": "pcsc", "pid": 42, "card": {"atr": "3B", "kind": "hc", "session": 1}}


# --- round trip ------------------------------------------------------------------


@pytest.mark.parametrize("kind", MESSAGE_CLASSES, ids=lambda kind: kind.__name__)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_round_trip_every_message_type(kind: type, data: st.DataObject) -> None:
    """parse(build(m)) == m for every message type, including optional CallMeta / CardPresence."""
    message = data.draw(STRATEGIES_BY_TYPE[kind])
    built = build(message)
    assert len(built) == 2
    assert built[0] == MAGIC + built[0][-1:] and len(built[0]) == len(MAGIC) + 1
    parsed = parse(built)
    assert type(parsed) is kind
    assert parsed == message


def test_round_trip_keeps_optional_parts() -> None:
    """Present and absent CallMeta / CardPresence both come back as they went in (not dropped, not invented)."""
    with_call = Request(id="1", command="GetStatus", args={"a": [1, {"b": b"\x00"}]}, call=CallMeta("/api/x", "u"))
    without_call = Request(id="2", command="GetStatus")
    with_card = WorkerStatus(reader="R", backend="pcsc", pid=7, card=CardPresence("3B 7F", "hc", 3))
    without_card = WorkerStatus(reader="R", backend="pcsc", pid=7)
    for message in (with_call, without_call, with_card, without_card):
        assert parse(build(message)) == message


def test_each_type_has_its_own_type_byte() -> None:
    """Two message types sharing a type byte would make parse() return the wrong class."""
    samples: list[Message] = [
        Request(id="1", command="c"),
        Reply(id="1", code=0),
        WorkerStatus(reader="r", backend="b", pid=1),
        Heartbeat(),
        Disconnect(reason="x"),
    ]
    headers = {build(sample)[0] for sample in samples}
    assert len(headers) == len(samples)


# --- rejects ---------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 3])
def test_rejects_wrong_number_of_frames(count: int) -> None:
    """Exactly two frames; a stray routing frame or a truncated message is refused."""
    good = frames(REQUEST, valid_request_body())
    candidate = (good + [b""])[:count]
    with pytest.raises(ProtocolError):
        parse(candidate)


@pytest.mark.parametrize("header", [b"NHI2\x01", b"nhi1\x01", b"XXXX\x01", b"\x00NHI1"])
def test_rejects_bad_magic(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(frames(header, valid_request_body()))


@pytest.mark.parametrize("header", [b"", MAGIC, MAGIC + b"\x01\x01", REQUEST + b"\x00" * 10])
def test_rejects_header_of_wrong_length(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(frames(header, valid_request_body()))


@pytest.mark.parametrize("type_byte", [b"\x00", b"\x07", b"\x7f", b"\xff"])
def test_rejects_unknown_type_byte(type_byte: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(frames(MAGIC + type_byte, valid_request_body()))


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",  # a byte msgpack never uses
        b"\x92\x01",  # an array of 2 holding only 1 element
        b"\x85",  # a map of 5 with no entries
        b"\xa5ab",  # a str of 5 holding 2 bytes
        b"\xa2\xff\xfe",  # a str that is not UTF-8
        msgpack.packb({"id": "x"}) + b"\x00",  # trailing garbage
        b"",
    ],
)
def test_rejects_body_that_is_not_msgpack(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse([REQUEST, body])


@pytest.mark.parametrize("body", [[1, 2], ["id", "command"], "text", 5, None, b"bytes"])
@pytest.mark.parametrize("header", [REQUEST, HEARTBEAT])
def test_rejects_body_that_is_not_a_map(header: bytes, body: Any) -> None:
    """Even a Heartbeat, which has no fields, must have a map as its body."""
    with pytest.raises(ProtocolError):
        parse(frames(header, body))


def test_rejects_map_with_non_string_keys() -> None:
    with pytest.raises(ProtocolError):
        parse([REQUEST, msgpack.packb({1: "x", "id": "r"})])


REQUIRED_FIELDS: list[tuple[bytes, dict[str, Any], str]] = [
    (REQUEST, valid_request_body(), "id"),
    (REQUEST, valid_request_body(), "command"),
    (REQUEST, valid_request_body(), "args"),
    (REPLY, {"id": "r", "code": 0, "body": {}}, "id"),
    (REPLY, {"id": "r", "code": 0, "body": {}}, "code"),
    (REPLY, {"id": "r", "code": 0, "body": {}}, "body"),
    (WORKER_STATUS, valid_status_body(), "reader"),
    (WORKER_STATUS, valid_status_body(), "backend"),
    (WORKER_STATUS, valid_status_body(), "pid"),
    (DISCONNECT, {"reason": "bye"}, "reason"),
]


@pytest.mark.parametrize(
    ("header", "body", "missing"), REQUIRED_FIELDS, ids=lambda v: v if isinstance(v, str) else None
)
def test_rejects_missing_required_field(header: bytes, body: dict[str, Any], missing: str) -> None:
    """The complete body parses; the same body without one required field does not."""
    parse(frames(header, body))  # control: the body is valid as given
    del body[missing]
    with pytest.raises(ProtocolError):
        parse(frames(header, body))


WRONG_TYPES: list[tuple[bytes, dict[str, Any], str, Any]] = [
    (REPLY, {"id": "r", "code": 0, "body": {}}, "code", "0"),  # string where int
    (REPLY, {"id": "r", "code": 0, "body": {}}, "code", True),  # bool where int
    (REPLY, {"id": "r", "code": 0, "body": {}}, "code", False),
    (REPLY, {"id": "r", "code": 0, "body": {}}, "code", 1.0),  # float where int
    (REPLY, {"id": "r", "code": 0, "body": {}}, "code", None),
    (REPLY, {"id": "r", "code": 0, "body": {}}, "id", 5),  # int where string
    (REPLY, {"id": "r", "code": 0, "body": {}}, "body", [1]),  # list where map
    (REQUEST, valid_request_body(), "id", 5),
    (REQUEST, valid_request_body(), "id", b"r-1"),  # bytes where string
    (REQUEST, valid_request_body(), "id", None),
    (REQUEST, valid_request_body(), "command", True),
    (REQUEST, valid_request_body(), "args", []),
    (REQUEST, valid_request_body(), "args", "skip=0"),
    (REQUEST, valid_request_body(), "args", None),
    (WORKER_STATUS, valid_status_body(), "pid", True),
    (WORKER_STATUS, valid_status_body(), "pid", "42"),
    (WORKER_STATUS, valid_status_body(), "reader", 0),
    (WORKER_STATUS, valid_status_body(), "backend", ["pcsc"]),
    (DISCONNECT, {"reason": "bye"}, "reason", 1),
]


@pytest.mark.parametrize(("header", "body", "name", "value"), WRONG_TYPES)
def test_rejects_wrong_field_type(header: bytes, body: dict[str, Any], name: str, value: Any) -> None:
    """bool is an int in Python: `code=True` must still be refused, as must any other mistyped field."""
    parse(frames(header, body))  # control
    body[name] = value
    with pytest.raises(ProtocolError):
        parse(frames(header, body))


TOO_LONG: list[tuple[bytes, dict[str, Any], str, int]] = [
    (REQUEST, valid_request_body(), "id", 64),
    (REQUEST, valid_request_body(), "command", 64),
    (REPLY, {"id": "r", "code": 0, "body": {}}, "id", 64),
    (WORKER_STATUS, valid_status_body(), "reader", 256),
]


@pytest.mark.parametrize(("header", "body", "name", "limit"), TOO_LONG)
def test_rejects_over_long_text(header: bytes, body: dict[str, Any], name: str, limit: int) -> None:
    """A text at its limit is accepted; one character more is refused."""
    body[name] = "x" * limit
    assert getattr(parse(frames(header, body)), name) == "x" * limit
    body[name] = "x" * (limit + 1)
    with pytest.raises(ProtocolError):
        parse(frames(header, body))


def _request_body_of_size(size: int) -> bytes:
    """A valid Request body of exactly `size` bytes (the padding string is long enough for str32)."""
    padding_length = 100_000
    base = len(msgpack.packb({**valid_request_body(), "args": {"x": "a" * padding_length}}))
    body = msgpack.packb({**valid_request_body(), "args": {"x": "a" * (padding_length + size - base)}})
    assert len(body) == size
    return body


def test_accepts_body_of_exactly_max_body_bytes() -> None:
    message = parse([REQUEST, _request_body_of_size(MAX_BODY_BYTES)])
    assert isinstance(message, Request)


def test_rejects_body_over_max_body_bytes() -> None:
    """A well-formed message one byte over the cap is still refused: floods are cut before decoding."""
    with pytest.raises(ProtocolError, match="too large"):
        parse([REQUEST, _request_body_of_size(MAX_BODY_BYTES + 1)])


@pytest.mark.parametrize(
    "call",
    [
        "/api/x",
        ["/api/x", "u-1"],
        5,
        True,
        {"url": "/api/x"},  # uuid missing
        {"uuid": "u-1"},  # url missing
        {"url": 5, "uuid": "u-1"},
        {"url": "/api/x", "uuid": 7},
        {"url": "/api/x", "uuid": None},
        {"url": "/api/x", "uuid": "u" * 65},
    ],
)
def test_rejects_request_with_malformed_call(call: Any) -> None:
    body = valid_request_body()
    body["call"] = call
    with pytest.raises(ProtocolError):
        parse(frames(REQUEST, body))


def test_request_call_absent_or_null_means_no_call() -> None:
    body = valid_request_body()
    body["call"] = None
    assert parse(frames(REQUEST, body)) == Request(id="r-1", command="GetStatus", args={}, call=None)
    del body["call"]
    assert parse(frames(REQUEST, body)) == Request(id="r-1", command="GetStatus", args={}, call=None)


@pytest.mark.parametrize(
    "card",
    [
        {"kind": "hc", "session": 1},
        {"atr": "3B", "session": 1},
        {"atr": "3B", "kind": "hc"},
        {},
        {"atr": "3B", "kind": "hc", "session": True},
        {"atr": "3B", "kind": "hc", "session": "1"},
        {"atr": 59, "kind": "hc", "session": 1},
        {"atr": "3B", "kind": "x" * 17, "session": 1},
        {"atr": "3" * 81, "kind": "hc", "session": 1},
        "3B",
        [1],
    ],
)
def test_rejects_worker_status_with_malformed_card(card: Any) -> None:
    body = valid_status_body()
    body["card"] = card
    with pytest.raises(ProtocolError):
        parse(frames(WORKER_STATUS, body))


def test_protocol_error_is_a_value_error() -> None:
    """Callers catch ValueError around decoding too; ProtocolError must stay one."""
    assert issubclass(ProtocolError, ValueError)


# --- fuzz --------------------------------------------------------------------------


def _parse_or_protocol_error(candidate: list[bytes]) -> None:
    try:
        message = parse(candidate)
    except ProtocolError:
        return
    assert isinstance(message, MESSAGE_CLASSES)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=4))
def test_fuzz_arbitrary_frames(candidate: list[bytes]) -> None:
    """Any list of frames: a message or ProtocolError, never another exception."""
    _parse_or_protocol_error(candidate)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(VALID_HEADERS), st.binary(max_size=200))
def test_fuzz_valid_header_arbitrary_body(header: bytes, body: bytes) -> None:
    _parse_or_protocol_error([header, body])


FIELD_NAMES = st.sampled_from(
    [
        "id",
        "command",
        "args",
        "call",
        "code",
        "body",
        "reader",
        "backend",
        "pid",
        "card",
        "reason",
        "type",
        "data",
        "url",
        "uuid",
        "atr",
        "kind",
        "session",
    ]
)


@settings(max_examples=70, deadline=None)
@given(
    st.sampled_from(VALID_HEADERS),
    st.dictionaries(
        FIELD_NAMES,
        st.recursive(
            LEAVES,
            lambda children: st.lists(children, max_size=3) | st.dictionaries(FIELD_NAMES, children, max_size=4),
            max_leaves=10,
        ),
        max_size=6,
    ),
)
def test_fuzz_valid_header_arbitrary_map_body(header: bytes, body: dict[str, Any]) -> None:
    """Maps that use the real field names with arbitrary values reach the field checks, not just the decoder."""
    _parse_or_protocol_error(frames(header, body))
