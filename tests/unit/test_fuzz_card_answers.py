"""Fuzzing what the cards answer: response APDUs, the health card's and the staff card's data blocks, and every
card command of the worker run against a card that answers anything.

Why it matters: a card is outside input. A damaged chip, a foreign card that happens to answer the
console's AIDs, a reader's driver returning junk, or a card built to attack the console answers whatever it
likes, and the worker parses it inside the one process that holds the reader. Each parser must come back
with a well-typed value or its own documented error, which the worker turns into a status code; any other
exception escapes `workers.execute.execute` (it catches only `ReaderError`), ends the worker, and the request
that was running gets no reply. The PINs sent along must not come back in an error's message.

The card is a script (`ScriptedCard`): hypothesis chooses every answer, including the status words the
code looks for (9000, 63Cx, 6982, 6983, 6A88, 6282) so the interesting branches are reached, not only the
"wrong status" one. Answers of fewer than two bytes are ruled out by the `CardReader` seam (a back-end
raises `ReaderError` instead, see test_fuzz_wire_protocol.py for the NHI reader's) and are fuzzed here only
against `parse_response`, whose error for them is `ResponseTooShort`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import assume, event, example, given
from hypothesis import strategies as st

from contract.protocol import Reply, build
from sim.cards.health_card import public_data_block
from sim.cards.staff_card import staff_data_block
from sim.profiles import PROFILES, HealthCardData, StaffCardData
from tests.fuzzing import fuzz
from tests.mutations import leaked_pieces, mutated, own_words
from workers import card_auth, health_card, health_card_pin, staff_card
from workers.apdu import ResponseApdu, ResponseTooShort, parse_response
from workers.card_kind import HEALTH_CARD, STAFF_CARD, UNKNOWN_CARD, identify, read_card_identity, read_card_number
from workers.health_card import BLOCK_LENGTH, DataBlockError, HealthCardPublicData, parse_public_data
from workers.session_commands import SESSION_COMMANDS, run_session_command

Transmit = Callable[[bytes], bytes]

HC_PIN = b"864209"
STAFF_PIN = b"86420975"
STAFF_PUK = b"13579246"
SECRETS = (HC_PIN, STAFF_PIN, STAFF_PUK)
"""Distinct from every hex status word a message may quote (4 hex digits), so a match is a real echo."""


# --- strategies -------------------------------------------------------------------------------------------

STATUS_WORDS = st.sampled_from(
    [0x9000, 0x6282, 0x6982, 0x6983, 0x6A88, 0x6A82, 0x6700, 0x6D00, 0x6F00, 0x63C0, 0x63C1, 0x63C3, 0x63CF]
) | st.integers(0, 0xFFFF)
"""The words the console branches on, and any other."""

ASCII_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _big5_characters() -> str:
    """Every character of Big5's two-byte plane that decodes and encodes back to the same bytes (once, at import:
    drawing from Python's codec and filtering would cost most of each example)."""
    found = []
    for lead in range(0xA1, 0xFA):
        for trail in (*range(0x40, 0x7F), *range(0xA1, 0xFF)):
            raw = bytes([lead, trail])
            try:
                character = raw.decode("big5")
            except UnicodeDecodeError:
                continue
            if len(character) == 1 and character.encode("big5") == raw:
                found.append(character)
    return "".join(found)


NAME_CHARACTERS = _big5_characters() + ASCII_ALNUM + "-. '"


def _big5_name(max_bytes: int) -> st.SearchStrategy[str]:
    """Names a card can hold: Big5, no NUL (the padding), no trailing space (stripped), ≤ `max_bytes` bytes."""
    return st.text(NAME_CHARACTERS, min_size=1, max_size=max_bytes // 2).filter(lambda name: not name.endswith(" "))


HEALTH_CARDS = st.builds(
    HealthCardData,
    card_id=st.text("0123456789", min_size=12, max_size=12),
    name=_big5_name(20),
    id_no=st.text(ASCII_ALNUM, min_size=10, max_size=10),
    birthday=st.text("0123456789", min_size=7, max_size=7),
    sex=st.sampled_from(["M", "F"]),
    date_issue=st.text("0123456789", min_size=7, max_size=7),
    identity_status=st.sampled_from(["1", "2", "3", "4", "8"]),
)

STAFF_CARDS = st.builds(
    StaffCardData,
    card_id=st.text("0123456789", min_size=12, max_size=12),
    id_no=st.text(ASCII_ALNUM, min_size=10, max_size=10),
    c_name=_big5_name(20),
    e_name=st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=20),
    birthday=st.tuples(st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99)).map(
        lambda d: f"{d[0]:04d}-{d[1]:02d}-{d[2]:02d}"
    ),
    card_type=st.sampled_from([1, 2]),
    pin=st.just(STAFF_PIN.decode()),
    puk=st.just(STAFF_PUK.decode()),
)

HC_BLOCKS = HEALTH_CARDS.map(public_data_block)

HC_FIELDS = ((0, 12), (12, 32), (32, 42), (42, 49), (49, 50), (50, 57))
"""Card number, name, ID number, birthday, sex, issue date (workers/health_card.py)."""
STAFF_FIELDS = ((0, 12), (12, 22), (22, 42), (42, 62), (62, 70), (70, 71))
"""Card number, ID number, Chinese name, English name, birthday, card type (docs/virtual-cards.md)."""
PRINTABLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F))


@st.composite
def field_corrupted(draw: st.DrawFn, block: bytes, fields: tuple[tuple[int, int], ...]) -> bytes:
    """`block` with one field's bytes replaced by others of the same length: each field check is met head on,
    with everything else in place (a byte-level mutation reaches one field's check alone only by chance)."""
    start, end = draw(st.sampled_from(fields))
    value = draw(
        st.binary(min_size=end - start, max_size=end - start)
        | st.text(PRINTABLE_ASCII, min_size=end - start, max_size=end - start).map(str.encode)
    )
    return block[:start] + value + block[end:]


def corruptions(blocks: st.SearchStrategy[bytes], fields: tuple[tuple[int, int], ...]) -> st.SearchStrategy[bytes]:
    return blocks.flatmap(lambda block: mutated(block) | field_corrupted(block, fields))


BENCH_BLOCKS = tuple(
    public_data_block(profile.data) if isinstance(profile.data, HealthCardData) else staff_data_block(profile.data)
    for profile in PROFILES.values()
)
"""The bench profiles' blocks: drawn as they are and mutated, they cost far less than a generated card."""

ANSWER_DATA = st.one_of(
    st.binary(max_size=80),
    st.sampled_from(BENCH_BLOCKS),
    st.sampled_from(BENCH_BLOCKS).flatmap(mutated),
    st.binary(min_size=256, max_size=256),  # a full READ BINARY chunk, a signature
    st.binary(min_size=8, max_size=8) | st.binary(min_size=32, max_size=32),  # a challenge, a cryptogram
    st.sampled_from([b"1", b"2", b"3", b"4", b"8", b"9", b"\xff"]),  # an identity status
    st.text("0123456789", max_size=14).map(str.encode),  # a card number, or nearly one
    st.binary(max_size=300),
)

ANSWERS = st.builds(lambda data, sw: data + sw.to_bytes(2, "big"), ANSWER_DATA, STATUS_WORDS)
"""What a reader back-end returns: data and a status word (the seam guarantees the two bytes)."""
OK_ANSWERS = ANSWER_DATA.map(lambda data: data + b"\x90\x00")


@dataclass
class ScriptedCard:
    """A card that answers the script in order, then `then` to everything: hypothesis is the card."""

    script: list[bytes]
    then: bytes
    sent: list[bytes] = field(default_factory=list)

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.script.pop(0) if self.script else self.then


@st.composite
def scripted_cards(draw: st.DrawFn) -> ScriptedCard:
    """A card that says 9000 to the first `k` commands (k from 0 to 6), then anything: each step of a command
    is where the card goes wrong about equally often, rather than nearly always at the SELECT."""
    script = [draw(OK_ANSWERS) for _ in range(draw(st.integers(0, 6)))]
    script += draw(st.lists(ANSWERS | OK_ANSWERS, min_size=1, max_size=3))
    return ScriptedCard(script, draw(OK_ANSWERS | ANSWERS))


CARDS = scripted_cards()


# --- the documented outcome of each card function ---------------------------------------------------------


def _card_kind(value: object) -> bool:
    return value in (HEALTH_CARD, STAFF_CARD, UNKNOWN_CARD)


def _identity(value: object) -> bool:
    if not isinstance(value, tuple) or len(value) != 2:
        return False
    number, card_type = value
    return (
        number is None or (isinstance(number, str) and re.fullmatch(r"[0-9]{12}", number) is not None)
    ) and card_type in (None, 1, 2)


def _card_number(value: object) -> bool:
    return value is None or (isinstance(value, str) and re.fullmatch(r"[0-9]{12}", value) is not None)


def _start(value: object) -> bool:
    return (
        isinstance(value, card_auth.AuthenticationStart)
        and _card_number(value.card_number)
        and value.card_number is not None
        and len(value.card_challenge) == 8
    )


def _pin_state(value: object) -> bool:
    return isinstance(value, health_card_pin.PinState) and (value.tries_left is None or 0 <= value.tries_left <= 15)


def _hc_verify(value: object) -> bool:
    if not isinstance(value, tuple) or len(value) != 2:
        return False
    outcome, state = value
    return outcome in ("accepted", "wrong", "noPin", "alreadyVerified", "blocked") and _pin_state(state)


def _secret_outcome(value: object) -> bool:
    return (
        isinstance(value, staff_card.SecretOutcome)
        and isinstance(value.outcome, staff_card.Outcome)
        and (value.tries_left is None or 0 <= value.tries_left <= 15)
    )


def _staff_data(value: object) -> bool:
    return (
        isinstance(value, staff_card.StaffData)
        and re.fullmatch(r"[0-9]{12}", value.card_id) is not None
        and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.birthday) is not None
        and value.card_type in (1, 2)
    )


@dataclass(frozen=True)
class CardFunction:
    """One thing the worker asks a card, what it returns when it succeeds, and the errors it documents."""

    run: Callable[[Transmit], object]
    well_typed: Callable[[object], bool]
    errors: tuple[type[Exception], ...]


CARD_FUNCTIONS: dict[str, CardFunction] = {
    "card_kind.identify": CardFunction(identify, _card_kind, ()),
    "card_kind.read_card_identity(hc)": CardFunction(lambda t: read_card_identity(t, HEALTH_CARD), _identity, ()),
    "card_kind.read_card_identity(hpc)": CardFunction(lambda t: read_card_identity(t, STAFF_CARD), _identity, ()),
    "card_kind.read_card_number(hpc)": CardFunction(lambda t: read_card_number(t, STAFF_CARD), _card_number, ()),
    "card_auth.begin(hc)": CardFunction(lambda t: card_auth.begin(t, "hc"), _start, (card_auth.CardRefused,)),
    "card_auth.begin(hpc)": CardFunction(lambda t: card_auth.begin(t, "hpc"), _start, (card_auth.CardRefused,)),
    "card_auth.finish": CardFunction(
        lambda t: card_auth.finish(t, bytes(range(32)), bytes(range(8))),
        lambda v: isinstance(v, bytes) and len(v) == 32,
        (card_auth.CardRefused,),
    ),
    "health_card_pin.pin_state": CardFunction(
        health_card_pin.pin_state, _pin_state, (health_card_pin.HealthCardError,)
    ),
    "health_card_pin.verify_pin": CardFunction(
        lambda t: health_card_pin.verify_pin(t, HC_PIN), _hc_verify, (health_card_pin.HealthCardError,)
    ),
    "health_card_pin.set_pin": CardFunction(
        lambda t: health_card_pin.set_pin(t, HC_PIN),
        lambda v: v in ("accepted", "notVerified", "blocked", "refused"),
        (health_card_pin.HealthCardError,),
    ),
    "health_card_pin.remove_pin": CardFunction(
        health_card_pin.remove_pin,
        lambda v: v in ("accepted", "notVerified", "noPin", "blocked", "refused"),
        (health_card_pin.HealthCardError,),
    ),
    "health_card_pin.write_notes": CardFunction(
        lambda t: health_card_pin.write_notes(t, b"notes"), lambda v: v is None, (health_card_pin.HealthCardError,)
    ),
    "staff_card.verify_pin": CardFunction(
        lambda t: staff_card.verify_pin(t, STAFF_PIN), _secret_outcome, (staff_card.StaffCardError,)
    ),
    "staff_card.change_pin": CardFunction(
        lambda t: staff_card.change_pin(t, STAFF_PIN), _secret_outcome, (staff_card.StaffCardError,)
    ),
    "staff_card.reset_pin": CardFunction(
        lambda t: staff_card.reset_pin(t, STAFF_PUK, STAFF_PIN), _secret_outcome, (staff_card.StaffCardError,)
    ),
    "staff_card.read_staff_data": CardFunction(staff_card.read_staff_data, _staff_data, (staff_card.StaffCardError,)),
    "staff_card.read_certificate": CardFunction(
        staff_card.read_certificate, lambda v: isinstance(v, bytes), (staff_card.StaffCardError,)
    ),
    "staff_card.sign_digest": CardFunction(
        lambda t: staff_card.sign_digest(t, bytes(32)),
        lambda v: v is None or (isinstance(v, bytes) and len(v) == 256),
        (staff_card.StaffCardError,),
    ),
}


def _no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret.decode() not in text, "a PIN or PUK came back in a message"


# --- parse_response ---------------------------------------------------------------------------------------


@fuzz()
@given(st.binary(max_size=600))
@example(b"")
@example(b"\x90")
def test_fuzz_parse_response_of_any_bytes(raw: bytes) -> None:
    """Two bytes or more: data and the status word, exactly; fewer: ResponseTooShort and nothing else."""
    try:
        answer = parse_response(raw)
    except ResponseTooShort as error:
        assert len(raw) < 2
        assert str(len(raw)) in str(error)
        return
    assert len(raw) >= 2
    assert answer.data + answer.sw.to_bytes(2, "big") == raw
    assert isinstance(answer.data, bytes) and 0 <= answer.sw <= 0xFFFF
    assert answer.ok == (raw[-2:] == b"\x90\x00")


@fuzz()
@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_fuzz_parse_response_round_trip(data: bytes, sw: int) -> None:
    assert parse_response(data + sw.to_bytes(2, "big")) == ResponseApdu(data, sw)


# --- the health card's public data block ------------------------------------------------------------------


def _public_data_outcome(answer: ResponseApdu) -> HealthCardPublicData | DataBlockError:
    try:
        data = parse_public_data(answer)
    except DataBlockError as error:
        return error
    assert len(answer.data) == BLOCK_LENGTH and answer.ok
    assert re.fullmatch(r"[0-9]{12}", data.card_id) and data.sex in ("M", "F")
    assert re.fullmatch(r"[0-9]{7}", data.birthday) and re.fullmatch(r"[0-9]{7}", data.date_issue)
    assert len(data.id_no) == 10 and data.id_no.isascii() and data.name
    return data


@fuzz()
@given(HEALTH_CARDS)
def test_fuzz_public_data_round_trip(card: HealthCardData) -> None:
    """The bench's encoder and the console's parser agree on every card a profile could describe."""
    parsed = parse_public_data(ResponseApdu(public_data_block(card), 0x9000))
    assert parsed == HealthCardPublicData(card.card_id, card.name, card.id_no, card.birthday, card.sex, card.date_issue)


@fuzz()
@given(st.binary(max_size=120) | corruptions(HC_BLOCKS, HC_FIELDS), STATUS_WORDS)
def test_fuzz_public_data_of_any_answer(data: bytes, sw: int) -> None:
    """Any data and status word: the card's fields, checked, or DataBlockError, whose message quotes no field."""
    outcome = _public_data_outcome(ResponseApdu(data, sw))
    if isinstance(outcome, DataBlockError):
        assert leaked_pieces(str(outcome), data, vocabulary=own_words(health_card)) == []


@fuzz()
@given(HC_BLOCKS.flatmap(lambda valid: st.tuples(st.just(valid), mutated(valid) | field_corrupted(valid, HC_FIELDS))))
def test_fuzz_a_mutated_public_data_block_is_refused_or_still_well_formed(blocks: tuple[bytes, bytes]) -> None:
    """A corrupted block fails a check, or decodes to fields that are each still of their format: the block
    has no checksum, so a digit flipped into another digit cannot be told, only a malformed field can."""
    valid, corrupted = blocks
    assume(corrupted != valid)
    outcome = _public_data_outcome(ResponseApdu(corrupted, 0x9000))
    if isinstance(outcome, DataBlockError):
        assert leaked_pieces(str(outcome), corrupted, vocabulary=own_words(health_card)) == []


# --- the staff card's data block --------------------------------------------------------------------------


@fuzz()
@given(STAFF_CARDS)
def test_fuzz_staff_data_round_trip(card: StaffCardData) -> None:
    parsed = staff_card.read_staff_data(
        ScriptedCard([b"\x90\x00", staff_data_block(card) + b"\x90\x00"], b"\x6f\x00").transmit
    )
    assert parsed == staff_card.StaffData(
        card.card_id, card.id_no, card.c_name, card.e_name, card.birthday, card.card_type
    )


@fuzz()
@given(
    st.binary(max_size=100) | corruptions(STAFF_CARDS.map(staff_data_block), STAFF_FIELDS),
    STATUS_WORDS | st.just(0x9000),
)
def test_fuzz_staff_data_of_any_answer(data: bytes, sw: int) -> None:
    """After a SELECT that succeeds: the block's fields, each in its format, or StaffCardError quoting none."""
    card = ScriptedCard([b"\x90\x00", data + sw.to_bytes(2, "big")], b"\x6f\x00")
    try:
        parsed = staff_card.read_staff_data(card.transmit)
    except staff_card.StaffCardError as error:
        assert leaked_pieces(str(error), data, vocabulary=own_words(staff_card)) == []
        return
    assert _staff_data(parsed) and sw == 0x9000 and len(data) == 71


# --- every card function against a card that answers anything -------------------------------------------


def _run(function: CardFunction, card: ScriptedCard) -> None:
    try:
        result = function.run(card.transmit)
    except function.errors as error:  # the documented refusals: the worker answers them with a code
        _no_secret_in(str(error))
        return
    assert function.well_typed(result), f"not a documented result: {result!r}"
    _no_secret_in(repr(result))


@fuzz(share=1.5)
@given(name=st.sampled_from(sorted(CARD_FUNCTIONS)), card=CARDS)
def test_fuzz_card_function_against_any_answers(name: str, card: ScriptedCard) -> None:
    """Each function a well-typed result or its documented error, whatever the card answers."""
    event(f"target: {name}")
    _run(CARD_FUNCTIONS[name], card)


SESSION_ARGS: dict[str, dict[str, Any]] = {
    "BeginCardAuthentication": {"kind": "hc"},
    "FinishCardAuthentication": {"cryptogram": bytes(32), "hostChallenge": bytes(8)},
    "VerifyPin": {"pin": STAFF_PIN.decode()},
    "ChangePin": {"newPin": STAFF_PIN.decode()},
    "ResetPin": {"puk": STAFF_PUK.decode(), "newPin": STAFF_PIN.decode()},
    "SignDigest": {"digest": bytes(32)},
    "VerifyHcPin": {"pin": HC_PIN.decode()},
    "SetHcPin": {"newPin": HC_PIN.decode()},
    "UpdateHcNotes": {"notes": b"notes"},
}


@fuzz()
@given(command=st.sampled_from(sorted(SESSION_COMMANDS)), card=CARDS)
def test_fuzz_worker_session_command_against_any_answers(command: str, card: ScriptedCard) -> None:
    """What the worker runs for the broker: always (code, body), never an exception (the worker's loop does
    not catch one), never a PIN in the body."""
    event(f"target: {command}")
    code, body = run_session_command(command, SESSION_ARGS.get(command, {}), card.transmit)
    assert isinstance(code, int) and isinstance(body, dict)
    build(Reply(id="r", code=code, body=body))  # the worker sends it: it must encode
    _no_secret_in(repr(body))
