"""Fuzzing the two wires the console reads: the ZeroMQ messages between its processes (`contract.protocol.parse`,
then `contract.commands.parse_command` for a request's arguments) and the NHI dedicated reader's serial line
(the frames, the STATUS answer's slot table, and the answers the worker's NHI reader back-end reads).

Why it matters: `parse` is the broker's and the workers' first line against a crashed or hostile peer on
the socket, and `parse_command` the broker's second line behind the API; each must turn anything malformed
into its own error (`ProtocolError`, `BadArguments`), which the caller drops or answers with 1704, since
any other exception ends the loop that called it. The serial reader is a device on a cable: a damaged,
counterfeit or simply buggy reader answers whatever it likes, and the worker that owns the port must stay
up and say 1202 (the reader failed) rather than die. Error messages must not quote the values they refuse
(a request carries PINs and tokens).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import string
from dataclasses import dataclass, field
from typing import Any

import msgpack
from hypothesis import event, example, given
from hypothesis import strategies as st

from contract import commands, protocol
from contract.commands import COMMAND_NAMES, BadArguments, parse_command, spec_of
from contract.protocol import (
    MAGIC,
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
from contract.status_codes import StatusCode
from contract.text import CONTROL_CHARACTERS
from tests.fuzzing import fuzz
from tests.mutations import leaked_pieces, mutated, own_words
from workers.nhi_reader import DEVICE_COMMANDS, NhiReader
from workers.seam import PresenceChanged, ReaderError
from workers.serial_protocol import (
    CMD_TRANSMIT,
    MAX_FRAME,
    MAX_PAYLOAD,
    STATUS_OK,
    AnswerMalformed,
    Frame,
    FrameReader,
    SlotStatus,
    encode,
    parse_slot_statuses,
)

MESSAGE_TYPES = (Request, Reply, WorkerStatus, Heartbeat, Disconnect)

# --- the ZeroMQ messages ----------------------------------------------------------------------------------

MSGPACK_INT = st.integers(-(2**63), 2**64 - 1)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    MSGPACK_INT,
    st.floats(allow_nan=False),
    st.text(max_size=24),
    st.binary(max_size=24),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.binary(max_size=4), children, max_size=4)
    ),
    max_leaves=16,
)
ARGS = st.dictionaries(st.text(max_size=12), VALUES, max_size=5)
TEXT = st.text(max_size=64)

MESSAGES = st.one_of(
    st.builds(
        Request,
        id=TEXT,
        command=TEXT,
        args=ARGS,
        call=st.none() | st.builds(CallMeta, url=st.text(max_size=120), uuid=TEXT),
        reader=st.none() | st.text(max_size=256),
    ),
    st.builds(Reply, id=TEXT, code=MSGPACK_INT, body=ARGS),
    st.builds(
        WorkerStatus,
        reader=st.text(max_size=256),
        backend=st.text(max_size=40),
        pid=MSGPACK_INT,
        card=st.none()
        | st.builds(
            CardPresence,
            atr=st.text(max_size=80),
            kind=st.text(max_size=16),
            session=MSGPACK_INT,
            card_number=st.none() | st.text(max_size=20),
            card_type=st.none() | MSGPACK_INT,
        ),
        fault=st.none() | MSGPACK_INT,
    ),
    st.just(Heartbeat()),
    st.builds(Disconnect, reason=st.text(max_size=100)),
)


def _texts_in(value: Any) -> list[str]:
    """The strings a body carries as values (not its keys, which are the protocol's own field names)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value).decode("latin-1")]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts_in(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _texts_in(item)]
    return []


def parse_outcome(frames: list[bytes]) -> object:
    """A message of one of the six types, or ProtocolError quoting no value of the body."""
    try:
        message = parse(frames)
    except ProtocolError as error:
        assert type(error) is ProtocolError
        try:
            body = msgpack.unpackb(frames[1], raw=False, strict_map_key=False) if len(frames) == 2 else None
        except Exception:  # not msgpack: nothing to compare with beyond the bytes themselves
            body = None
        assert leaked_pieces(str(error), *_texts_in(body), vocabulary=own_words(protocol)) == []
        return error
    assert type(message) in MESSAGE_TYPES
    return message


@fuzz(share=0.5)
@given(MESSAGES)
def test_fuzz_every_message_round_trips(message: Message) -> None:
    event(f"type: {type(message).__name__}")
    assert parse(build(message)) == message


@st.composite
def mutated_messages(draw: st.DrawFn) -> list[bytes]:
    """A valid message's two frames with the header or the body mutated, or frames lost or added."""
    header, body = build(draw(MESSAGES))
    how = draw(st.sampled_from(["body", "header", "both", "frames"]))
    if how in ("header", "both"):
        header = draw(mutated(header, most=2))
    if how in ("body", "both"):
        body = draw(mutated(body))
    frames = [header, body]
    if how == "frames":
        frames = draw(st.permutations(frames + draw(st.lists(st.binary(max_size=16), max_size=2))))
    return frames


@fuzz(share=0.5)
@given(mutated_messages())
def test_fuzz_mutated_messages_parse_or_raise_protocol_error(frames: list[bytes]) -> None:
    outcome = parse_outcome(frames)
    event(f"outcome: {type(outcome).__name__}")


@fuzz(share=0.5)
@given(
    st.sampled_from([MAGIC + bytes([kind]) for kind in range(1, 7)]),
    st.dictionaries(
        st.sampled_from(
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
                "fault",
                "reason",
                "type",
                "data",
            ]
        ),
        VALUES,
        max_size=7,
    )
    | VALUES,
)
@example(MAGIC + b"\x01", b"\x91" * 100_000 + b"\xc0")  # nested far deeper than any message
def test_fuzz_any_msgpack_body_under_a_valid_header(header: bytes, body: Any) -> None:
    frames = [header, body if isinstance(body, bytes) else msgpack.packb(body, use_bin_type=True)]
    parse_outcome(frames)


def _valid_bodies() -> dict[type, dict[str, Any]]:
    return {
        Request: {
            "id": "r-1",
            "command": "GetStatus",
            "args": {},
            "call": {"url": "/api/x", "uuid": "u-1"},
            "reader": "Reader 0",
        },
        Reply: {"id": "r-1", "code": 0, "body": {}},
        WorkerStatus: {
            "reader": "Reader 0",
            "backend": "pcsc",
            "pid": 42,
            "card": {"atr": "3B", "kind": "hc", "session": 1, "cardNumber": "900000000711"},
        },
        Disconnect: {"reason": "bye"},
    }


TEXT_LIMITS: tuple[tuple[type, tuple[str, ...], int], ...] = (
    (Request, ("id",), 64),
    (Request, ("command",), 64),
    (Request, ("reader",), 256),
    (Request, ("call", "url"), 4096),
    (Request, ("call", "uuid"), 64),
    (Reply, ("id",), 64),
    (WorkerStatus, ("reader",), 256),
    (WorkerStatus, ("backend",), 4096),
    (WorkerStatus, ("card", "atr"), 80),
    (WorkerStatus, ("card", "kind"), 16),
    (WorkerStatus, ("card", "cardNumber"), 20),
    (Disconnect, ("reason",), 4096),
)
"""Each text field's longest value (broker/protocol.py): longer is a ProtocolError, never a truncated field."""
TYPE_BYTES = {Request: 1, Reply: 2, WorkerStatus: 3, Heartbeat: 4, Disconnect: 5}


@fuzz(share=0.5)
@given(st.sampled_from(TEXT_LIMITS), st.integers(-3, 3), st.sampled_from("a\u00e9\u6e2c\U0001f600"))
def test_fuzz_text_fields_are_held_to_their_limits(
    limit: tuple[type, tuple[str, ...], int], offset: int, character: str
) -> None:
    """Around each limit, in characters of 1 to 4 UTF-8 bytes (a limit counts characters, not bytes)."""
    kind, path, longest = limit
    length = longest + offset
    body = _valid_bodies()[kind]
    field_holder = body
    for parent in path[:-1]:
        field_holder = field_holder[parent]
    field_holder[path[-1]] = character * length
    outcome = parse_outcome([MAGIC + bytes([TYPE_BYTES[kind]]), msgpack.packb(body, use_bin_type=True)])
    named = f"{kind.__name__}.{'.'.join(path)} of {length} characters"
    if length <= longest:
        assert type(outcome) is kind, f"{named} refused: {outcome}"
    else:
        assert isinstance(outcome, ProtocolError), f"{named} accepted"


COMMAND_ARGUMENT_NAMES = (
    "skip",
    "take",
    "statusCode",
    "readerName",
    "reader",
    "profile",
    "name",
    "serviceType",
    "allowHost",
    "id",
    "cloudSamContext",
    "samId",
    "hospitalId",
    "advanceSeconds",
    "pin",
    "newPin",
    "puk",
    "idNo",
    "birthday",
    "cName",
    "eName",
    "medId",
    "loginDateTime",
    "signatureCertificate",
    "signature",
    "token",
    "transferToken",
)
PLAUSIBLE_ARGUMENTS = st.one_of(
    VALUES,
    st.text("0123456789", max_size=10),
    st.text("0123456789", max_size=10).map(lambda digits: digits + "\ud800"),
    st.text(max_size=300),
    st.binary(max_size=600),
)


@fuzz()
@given(
    st.sampled_from(sorted(COMMAND_NAMES)) | st.text(max_size=20),
    st.dictionaries(st.sampled_from(COMMAND_ARGUMENT_NAMES) | st.text(max_size=8), PLAUSIBLE_ARGUMENTS, max_size=6),
)
def test_fuzz_command_arguments_parse_or_raise_bad_arguments(name: str, args: dict[str, Any]) -> None:
    """The broker's own check of what a request asks: a command object, or BadArguments naming the field."""
    event(f"command: {name if name in COMMAND_NAMES else '(unknown)'}")
    try:
        command = parse_command(name, args)
    except BadArguments as error:
        assert type(error) is BadArguments
        secrets = [
            str(args.get(key))
            for key in ("pin", "newPin", "puk", "token", "transferToken", "cloudSamContext")
            if key in args
        ]
        # The message may name the command (repr(name)): a name is not a secret, but it may share text with one.
        assert leaked_pieces(str(error), *secrets, vocabulary=(*own_words(commands), repr(name))) == []
        return
    assert spec_of(command).name == name


HOST_LIKE = st.text(string.ascii_letters + string.digits + ".-[]:_ \t\n\r\u00e9\u0131\u212a", max_size=80)
"""Host-name characters and their look-alikes: whitespace, brackets, a dotless i and a Kelvin sign (which
lower-case to ASCII letters, a classic way past a check done before `lower()`)."""


@fuzz()
@given(st.sampled_from([("AllowCorsHost", "allowHost"), ("RemoveCorsHost", "id")]), HOST_LIKE | st.text(max_size=80))
@example(("AllowCorsHost", "allowHost"), "evil\n.example")  # normalize_host alone takes it (`$` before a "\n")
def test_fuzz_a_cors_host_argument_is_a_host_name_or_bad_arguments(command: tuple[str, str], text: str) -> None:
    """What the CORS allow-list may hold: an IP address or letters, digits and hyphens in dot-separated labels."""
    name, argument = command
    try:
        parsed = parse_command(name, {argument: text})
    except BadArguments as error:
        assert type(error) is BadArguments
        return
    host = parsed.host
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    assert len(host) <= 253 and re.fullmatch(r"[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*", host), repr(host)


# --- the NHI reader's serial line ---------------------------------------------------------------------------


def encode_slot_statuses(slots: list[SlotStatus]) -> bytes:
    """docs/serial-protocol.md's STATUS answer after the status byte (the bench's reader writes the same)."""
    return b"".join(
        bytes([slot.slot, int(slot.present)]) + slot.insertions.to_bytes(4, "big") + bytes([len(slot.atr)]) + slot.atr
        for slot in slots
    )


SLOT_TABLES = st.lists(
    st.builds(
        lambda slot, atr, insertions: SlotStatus(slot, bool(atr), insertions, atr),
        st.integers(0, 255),
        st.binary(max_size=33),
        st.integers(0, 2**32 - 1),
    ),
    max_size=4,
    unique_by=lambda slot: slot.slot,
)


@fuzz()
@given(SLOT_TABLES)
def test_fuzz_slot_statuses_round_trip(slots: list[SlotStatus]) -> None:
    assert parse_slot_statuses(encode_slot_statuses(slots)) == {slot.slot: slot for slot in slots}


@fuzz()
@given(st.binary(max_size=120) | SLOT_TABLES.map(encode_slot_statuses).flatmap(mutated))
def test_fuzz_slot_statuses_of_any_answer(rest: bytes) -> None:
    """A table whose entries are each consistent, or AnswerMalformed (the worker then reports 1202)."""
    try:
        slots = parse_slot_statuses(rest)
    except AnswerMalformed as error:
        assert type(error) is AnswerMalformed
        return
    assert encode_slot_statuses(list(slots.values())) == rest, "every byte belongs to exactly one entry"
    for number, slot in slots.items():
        assert slot.slot == number and slot.present == bool(slot.atr) and 0 <= slot.insertions < 2**32


@fuzz()
@given(SLOT_TABLES.filter(bool))
def test_fuzz_every_cut_of_a_slot_table_is_refused(slots: list[SlotStatus]) -> None:
    """A STATUS answer cut anywhere (a reader reset mid-answer, a short frame): each cut inside an entry is
    AnswerMalformed; a cut between entries is the table of the entries before it."""
    raw = encode_slot_statuses(slots)
    boundaries = {len(encode_slot_statuses(slots[:count])): count for count in range(len(slots) + 1)}
    for cut in range(len(raw)):
        try:
            parsed = parse_slot_statuses(raw[:cut])
        except AnswerMalformed:
            assert cut not in boundaries, f"a whole entry refused at {cut}"
            continue
        assert cut in boundaries, f"an entry cut at {cut} accepted"
        assert list(parsed.values()) == slots[: boundaries[cut]]


FRAMES = st.builds(
    Frame,
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=80) | st.binary(min_size=MAX_PAYLOAD - 8, max_size=MAX_PAYLOAD),
)


@fuzz(share=0.25)
@given(st.lists(FRAMES, min_size=1, max_size=6), st.lists(st.integers(0, 5000), max_size=12))
def test_fuzz_frames_round_trip_whatever_the_chunks(frames: list[Frame], cuts: list[int]) -> None:
    """A clean line delivers its bytes in any pieces (empty ones included): every frame, in order, nothing
    dropped, and nothing held back once the last byte is in."""
    stream = b"".join(encode(frame) for frame in frames)
    positions = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    reader = FrameReader()
    got: list[Frame] = []
    for start, end in itertools.pairwise(positions):
        got += reader.feed(stream[start:end])
        assert reader.buffered <= MAX_FRAME
    got += reader.feed(b"")
    assert got == frames
    assert (reader.dropped, reader.buffered, reader.frames) == (0, 0, len(frames))


@dataclass
class ScriptedLink:
    """`SerialLink`'s interface with hypothesis as the reader: each call's (status, rest) comes from the script."""

    answers: list[tuple[int, bytes]]
    then: tuple[int, bytes]
    is_open: bool = False
    commands: list[int] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def call(self, cmd: int, payload: bytes = b"", **_: object) -> tuple[int, bytes]:
        self.commands.append(cmd)
        return self.answers.pop(0) if self.answers else self.then


DEVICE_STATUSES = st.just(STATUS_OK) | st.sampled_from(range(0x0A)) | st.integers(0, 255)
DEVICE_ANSWERS = st.tuples(
    DEVICE_STATUSES,
    st.one_of(
        st.binary(max_size=3),  # shorter than any status word or keypad answer
        st.binary(max_size=300),
        st.sampled_from(
            [
                b'{"samId": "901000000047", "hospitalId": "1", "hospitalName": "n", "hospitalShortName": "s"}',
                b"[" * (MAX_PAYLOAD - 1),
                b'{"samId": 5}',
                b"20250301120000",
            ]
        ),
        st.tuples(
            st.sampled_from(["hospitalId", "hospitalName", "hospitalShortName"]),
            st.text(max_size=6) | st.sampled_from(["\ud800", "x\n", "\x1b[2J", "\u0085"]),
        ).map(
            lambda field: json.dumps(
                {
                    "samId": "901000000047",
                    "hospitalId": "1",
                    "hospitalName": "n",
                    "hospitalShortName": "s",
                    field[0]: field[1],
                }
            ).encode("ascii")
        ),
        SLOT_TABLES.map(encode_slot_statuses),
    ),
)
LINKS = st.builds(ScriptedLink, st.lists(DEVICE_ANSWERS, max_size=5), DEVICE_ANSWERS)
PORT = "/dev/ttyNHI0"
DEVICE_ARGS: dict[str, dict[str, Any]] = {
    "SignWithReaderSam": {"data": b"to be signed"},
    "VerifyHcPinOnKeypad": {"seconds": 30},
    "SetHcPinOnKeypad": {"seconds": 30},
}


@fuzz()
@given(LINKS, st.binary(min_size=4, max_size=40))
@example(ScriptedLink([], (STATUS_OK, b"\x90")), b"\x00\xa4\x04\x00")  # one byte: no status word
def test_fuzz_nhi_reader_transmit_answers_a_response_apdu_or_a_reader_error(link: ScriptedLink, apdu: bytes) -> None:
    """The `CardReader` seam: data + SW1 SW2, or a ReaderError; the card modules parse nothing shorter."""
    reader = NhiReader(PORT, link=link)  # type: ignore[arg-type]  # a scripted stand-in SerialLink
    try:
        answer = reader.slot_readers()[PORT].transmit(apdu)
    except ReaderError:
        return
    assert link.commands[-1] == CMD_TRANSMIT
    assert isinstance(answer, bytes) and len(answer) >= 2


@fuzz()
@given(st.sampled_from(sorted(DEVICE_COMMANDS)), LINKS)
@example("ReadSamInfo", ScriptedLink([], (STATUS_OK, b"[" * (MAX_PAYLOAD - 1))))  # nested deeper than json takes
@example(
    "ReadSamInfo",
    ScriptedLink(
        [],
        (
            STATUS_OK,
            b'{"samId": "901000000047", "hospitalId": "1", "hospitalName": "\\ud800", "hospitalShortName": "s"}',
        ),
    ),
)
@example(
    "ReadSamInfo",
    ScriptedLink(
        [],
        (
            STATUS_OK,
            b'{"samId": "901000000047", "hospitalId": "1", "hospitalName": "a\\u001b[2J", "hospitalShortName": "s"}',
        ),
    ),
)
def test_fuzz_nhi_reader_device_command_answers_a_code_or_a_reader_error(command: str, link: ScriptedLink) -> None:
    """What the worker runs on the device: (code, body), or a ReaderError the worker answers with its code."""
    event(f"command: {command}")
    reader = NhiReader(PORT, link=link)  # type: ignore[arg-type]  # a scripted stand-in SerialLink
    try:
        code, body = reader.run_device_command(PORT, command, DEVICE_ARGS.get(command, {}))
    except ReaderError:
        return
    assert isinstance(code, int) and isinstance(body, dict)
    build(Reply(id="r", code=code, body=body))  # the worker sends it: it must encode
    if code == StatusCode.OK and command == "ReadSamInfo":
        assert len(body["samId"]) == 12 and body["samId"].isdigit()
        assert not any(CONTROL_CHARACTERS.search(value) for value in body.values()), "kept in the broker's state"


@fuzz(share=0.5)
@given(LINKS)
def test_fuzz_nhi_reader_presence_poll_never_raises(link: ScriptedLink) -> None:
    """The watcher thread polls STATUS; whatever the reader answers, a change, nothing, or a fault, no exception."""
    reader = NhiReader(PORT, link=link, monotonic=itertools.count().__next__)  # type: ignore[arg-type]  # a scripted stand-in SerialLink
    for _ in range(3):
        change = reader.wait_for_change(0)
        assert change is None or isinstance(change, PresenceChanged)
    assert reader.fault() in (None, StatusCode.NHI_READER_FAILED, StatusCode.COMPORT_OPEN_FAILED)
