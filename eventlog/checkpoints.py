"""Signed checkpoints: the two chain heads, stated and signed, to be kept where the console's machine cannot write.

Why: each row's hash commits to every row before it, but someone able to rewrite the log's file can rebuild a
consistent chain (and `chain_heads`) from the first row they change; only a head recorded elsewhere shows it. A
checkpoint is that record, signed with the installation's key (eventlog/checkpoint_key.py) so that a line
copied into a syslog, a file on another machine or a printed page can be checked as the console's own word.

The statement is one line of ASCII, for syslog, journald and files:

    nhi-console-checkpoint/1 key=<key id> time=<time> events=<seq>:<hash> calls=<seq>:<hash> sig=<signature>

- `key`: the key id, the first 16 hex digits (lowercase) of SHA-256 over the public key's DER
  SubjectPublicKeyInfo (RFC 6962's log id, cut to 64 bits: it picks a key, never authenticates one).
- `time`: when it was signed, `YYYY-MM-DDTHH:MM:SS+HH:MM` (seconds, the machine's offset; `-` west of UTC).
- `events`, `calls`: each chain's head, `<seq>:<hash>`: seq in decimal without leading zeros (0 for an empty
  chain, at most 2^63 - 1), the row's chain hash in 64 lowercase hex digits (GENESIS, 64 zeros, at seq 0).
- `sig`: the Ed25519 signature (RFC 8032), 64 bytes in standard base64 with padding (88 characters).

Fields are separated by one space, in exactly this order, with nothing else on the line. The signed bytes
("canonical bytes") are the ASCII bytes of the line before ` sig=`, i.e. from `nhi-console-checkpoint/1`
through the calls hash. The grammar admits one spelling of each statement, so those bytes are canonical; the
parser refuses any other spelling (and re-renders what it parsed to be sure). The version prefix is the first
thing signed, so it doubles as the domain tag; the key signs nothing else.

Shape: Certificate Transparency's signed tree head (RFC 9162, section 4.10: log id, timestamp, tree size,
root hash, signature), and where we differ, why:

- A hash chain, not a Merkle tree: a chain's seq plays tree_size and the row's hash root_hash. There is no
  consistency proof to ship: the proof that today's log extends a checkpoint is re-walking the chain
  (eventlog/verify.py) and finding the checkpoint's hash at its seq. An auditor with the log needs no more.
- Two chains (events, calls), each with its own position, in one statement signed once.
- A line of text rather than TLS-encoded binary: syslog and files carry it unchanged, people can read it, and
  `openssl pkeyutl -verify -rawin` checks the signature over the bytes as they appear (docs/audit.md).
- Time as ISO 8601 with an offset, to the second, rather than milliseconds since the epoch: the same instant,
  readable next to the log's own timestamps. No extensions: a change is a new version prefix, which a parser
  of this version refuses.

Nothing in a statement but seqs, hashes, the time, the key id and the signature: no row content, no name.

The comparison (`compare`) takes the log as a function (chain, seq) -> stored hash, so it is pure; reading
that from SQLite is deploy/checkpoint_cli.py's part.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

Chain = Literal["events", "calls"]
CHAINS: Final[tuple[Chain, Chain]] = ("events", "calls")

PREFIX: Final = "nhi-console-checkpoint/"
"""What starts every statement, whatever its version: how a statement is found in a log line."""
VERSION: Final = "1"
MAGIC: Final = PREFIX + VERSION

GENESIS_HASH: Final = bytes(32)
"""A chain's hash at seq 0 (eventlog/chain.py's GENESIS): what a checkpoint of an empty chain names."""

_MAX_SEQ: Final = 2**63 - 1
_KEY_ID_DIGITS: Final = 16
_FIELDS: Final = ("key", "time", "events", "calls", "sig")
_KEY_ID: Final = re.compile(r"[0-9a-f]{16}")
_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
_POSITION: Final = re.compile(r"(0|[1-9][0-9]{0,18}):([0-9a-f]{64})")
_SIGNATURE: Final = re.compile(r"[A-Za-z0-9+/]{86}==")
_PRINTABLE: Final = re.compile(r"[\x21-\x7e]+( [\x21-\x7e]+)*")
_MAX_LINE: Final = 400
"""A version-1 statement is about 330 characters: anything much longer is refused before it is split."""


class CheckpointError(ValueError):
    """A statement that cannot be trusted: the verifier's "cannot verify" (exit 2), never "tampered"."""


class MalformedCheckpoint(CheckpointError):
    """Not a version-1 statement in its one spelling: a missing, extra, misplaced or ill-formed field."""


class UnknownVersion(CheckpointError):
    """A statement of another version: refused, not guessed at."""


class BadSignature(CheckpointError):
    """The signature does not verify with the key given: the statement was altered, or signed by another key."""


class WrongKey(CheckpointError):
    """The statement names another key than the one it is checked with."""


@dataclass(frozen=True, slots=True)
class ChainPosition:
    """One chain's head: the seq of its last row and that row's chain hash (GENESIS_HASH at seq 0)."""

    seq: int
    hash: bytes

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or not 0 <= self.seq <= _MAX_SEQ:
            raise MalformedCheckpoint("a seq is an integer from 0 to 2^63 - 1")
        if not isinstance(self.hash, bytes) or len(self.hash) != 32:
            raise MalformedCheckpoint("a chain hash is 32 bytes")

    def render(self) -> str:
        return f"{self.seq}:{self.hash.hex()}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What is signed: which key, when, and both chains' heads."""

    key_id: str
    time: str
    events: ChainPosition
    calls: ChainPosition

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise MalformedCheckpoint("key: 16 lowercase hex digits expected")
        if not isinstance(self.time, str) or parse_time(self.time) is None:
            raise MalformedCheckpoint("time: YYYY-MM-DDTHH:MM:SS+HH:MM expected")

    def position(self, chain: Chain) -> ChainPosition:
        return self.events if chain == "events" else self.calls

    def render(self) -> str:
        """The statement without its signature: exactly the text whose ASCII bytes are signed."""
        return f"{MAGIC} key={self.key_id} time={self.time} events={self.events.render()} calls={self.calls.render()}"

    def canonical_bytes(self) -> bytes:
        return self.render().encode("ascii")


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    statement: Checkpoint
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise MalformedCheckpoint("sig: an Ed25519 signature is 64 bytes")

    def render(self) -> str:
        """The one line: the statement, ` sig=`, the signature in base64."""
        return f"{self.statement.render()} sig={base64.b64encode(self.signature).decode('ascii')}"


# -- keys and time -------------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, first 16 hex digits: `openssl pkey -pubin -outform DER | sha256sum`."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:_KEY_ID_DIGITS]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


_PEM_BLOCK: Final = re.compile(r"-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----")


def load_public_key(text: str) -> Ed25519PublicKey:
    """The Ed25519 public key in the one PEM block of `text` (what `log checkpoint --public-key` printed; comment
    lines around it are ignored, and so is any key id they state: the id is computed from the key)."""
    blocks = _PEM_BLOCK.findall(text)
    if len(blocks) != 1:
        raise CheckpointError("a public key file holds exactly one PEM block (-----BEGIN PUBLIC KEY-----)")
    try:
        key = serialization.load_pem_public_key(blocks[0].encode("ascii"))
    except ValueError as error:
        raise CheckpointError("the public key file's PEM block is not a public key") from error
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError("the public key is not an Ed25519 key")
    return key


def format_time(epoch_ns: int, tz: tzinfo | None = None) -> str:
    """`epoch_ns` to the second, in the machine's offset (or `tz`): `2026-05-01T10:00:00+08:00`."""
    moment = datetime.fromtimestamp(epoch_ns // 1_000_000_000, tz=UTC)
    return moment.astimezone(tz).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime | None:
    """The statement's time, or None if it is not `YYYY-MM-DDTHH:MM:SS±HH:MM` naming a real instant."""
    if not _TIME.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.isoformat(timespec="seconds") == text else None


# -- lines ---------------------------------------------------------------------------------------------------


def sign(statement: Checkpoint, private_key: Ed25519PrivateKey) -> SignedCheckpoint:
    """Sign with the installation's key, which must be the one the statement names."""
    if key_id(private_key.public_key()) != statement.key_id:
        raise WrongKey("the statement names another key than the one signing it")
    return SignedCheckpoint(statement, private_key.sign(statement.canonical_bytes()))


def make(
    private_key: Ed25519PrivateKey, epoch_ns: int, events: ChainPosition, calls: ChainPosition
) -> SignedCheckpoint:
    """A signed checkpoint of these heads at this time: what the broker and `log checkpoint` write."""
    statement = Checkpoint(key_id(private_key.public_key()), format_time(epoch_ns), events, calls)
    return sign(statement, private_key)


def parse(line: str) -> SignedCheckpoint:
    """One statement, exactly as `SignedCheckpoint.render` spells it; anything else is refused.

    UnknownVersion for another version (whatever follows it), MalformedCheckpoint for everything else wrong.
    The signature is not checked here (`verify_signature`)."""
    if not isinstance(line, str):
        raise MalformedCheckpoint("a statement is text")
    if not line.startswith(PREFIX):
        raise MalformedCheckpoint(f"a statement starts with {PREFIX}")
    version = line[len(PREFIX) :].split(" ", 1)[0]
    if version != VERSION:
        shown = version if re.fullmatch(r"[0-9A-Za-z._-]{1,20}", version) else "?"
        raise UnknownVersion(f"version {shown} is not known here (this verifier reads version {VERSION})")
    if len(line) > _MAX_LINE:
        raise MalformedCheckpoint("longer than a version-1 statement")
    if not _PRINTABLE.fullmatch(line):
        raise MalformedCheckpoint("printable ASCII separated by single spaces expected")
    tokens = line.split(" ")[1:]
    names = [token.split("=", 1)[0] if "=" in token else token for token in tokens]
    for wanted in _FIELDS:
        if names.count(wanted) == 0:
            raise MalformedCheckpoint(f"field {wanted} is missing")
        if names.count(wanted) > 1:
            raise MalformedCheckpoint(f"field {wanted} is repeated")
    extra = [name for name in names if name not in _FIELDS]
    if extra:
        shown = extra[0] if re.fullmatch(r"[a-z]{1,20}", extra[0]) else "?"
        raise MalformedCheckpoint(f"unknown field {shown}")
    if tuple(names) != _FIELDS:
        raise MalformedCheckpoint(f"fields out of order (expected {', '.join(_FIELDS)})")
    values = dict(token.split("=", 1) for token in tokens)
    statement = Checkpoint(
        key_id=_key_id_field(values["key"]),
        time=_time_field(values["time"]),
        events=_position_field("events", values["events"]),
        calls=_position_field("calls", values["calls"]),
    )
    signed = SignedCheckpoint(statement, _signature_field(values["sig"]))
    if signed.render() != line:  # the grammar above admits one spelling; this makes sure of it
        raise MalformedCheckpoint("not in canonical form")
    return signed


def _key_id_field(value: str) -> str:
    if not _KEY_ID.fullmatch(value):
        raise MalformedCheckpoint("key: 16 lowercase hex digits expected")
    return value


def _time_field(value: str) -> str:
    if parse_time(value) is None:
        raise MalformedCheckpoint("time: YYYY-MM-DDTHH:MM:SS+HH:MM expected")
    return value


def _position_field(name: str, value: str) -> ChainPosition:
    match = _POSITION.fullmatch(value)
    if match is None:
        raise MalformedCheckpoint(f"{name}: <seq>:<64 lowercase hex digits> expected")
    seq = int(match.group(1))
    if seq > _MAX_SEQ:
        raise MalformedCheckpoint(f"{name}: seq beyond 2^63 - 1")
    return ChainPosition(seq, bytes.fromhex(match.group(2)))


def _signature_field(value: str) -> bytes:
    if not _SIGNATURE.fullmatch(value):
        raise MalformedCheckpoint("sig: 88 characters of base64 expected")
    try:
        signature = base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise MalformedCheckpoint("sig: not base64") from error
    if base64.b64encode(signature).decode("ascii") != value:
        raise MalformedCheckpoint("sig: not in canonical base64")
    return signature


def verify_signature(signed: SignedCheckpoint, public_key: Ed25519PublicKey) -> None:
    """WrongKey if the statement names another key, BadSignature if the signature does not verify."""
    expected = key_id(public_key)
    if signed.statement.key_id != expected:
        raise WrongKey(f"signed by key {signed.statement.key_id}, checked with key {expected}")
    try:
        public_key.verify(signed.signature, signed.statement.canonical_bytes())
    except InvalidSignature:
        raise BadSignature(
            "the signature does not verify: the statement was altered or not signed by this key"
        ) from None


def find_statement(line: str) -> str | None:
    """The statement in a line of a log or a file (it runs from `nhi-console-checkpoint/` to the end of the line,
    so a syslog or journald prefix before it is ignored), or None if the line holds none."""
    start = line.find(PREFIX)
    if start < 0:
        return None
    return line[start:].rstrip("\r\n")


# -- today's log against the checkpoints ---------------------------------------------------------------------


class Standing(enum.Enum):
    HOLDS = "holds"
    """The log's hash at the checkpoint's seq is the checkpoint's: every row up to it is as it was."""
    DIFFERS = "differs"
    """Another hash there: some row at or before that seq is not what it was."""
    ABSENT = "absent"
    """The log reaches that seq but cannot show that row (deleted, or in a missing archive)."""
    BEYOND = "beyond"
    """The log ends before that seq: its rows from the log's end onwards are missing."""


@dataclass(frozen=True, slots=True)
class PositionCheck:
    index: int
    """Which checkpoint (its place in the list given to `compare`)."""
    chain: Chain
    seq: int
    standing: Standing


@dataclass(frozen=True, slots=True)
class ChainFinding:
    """One chain against every checkpoint: the first that fails, and the last that holds before it."""

    chain: Chain
    head: int
    """The log's last seq in this chain."""
    checks: tuple[PositionCheck, ...]
    """Ordered by seq, then by checkpoint."""

    @property
    def first_failing(self) -> PositionCheck | None:
        return next((check for check in self.checks if check.standing is not Standing.HOLDS), None)

    @property
    def ok(self) -> bool:
        return self.first_failing is None

    @property
    def holds_through(self) -> int:
        """The highest seq of a checkpoint that holds below the first that fails (all of them if none fails);
        0 if there is none: the first diverging seq is after this one."""
        failing = self.first_failing
        seqs = [
            check.seq
            for check in self.checks
            if check.standing is Standing.HOLDS and (failing is None or check.seq < failing.seq)
        ]
        return max(seqs, default=0)

    @property
    def signed_after(self) -> tuple[PositionCheck, ...]:
        """Checkpoints that hold at a seq beyond the first failing one: they were signed over the log as it is
        now, i.e. after it was changed (by the console, or by whoever holds its key)."""
        failing = self.first_failing
        if failing is None:
            return ()
        return tuple(c for c in self.checks if c.standing is Standing.HOLDS and c.seq > failing.seq)

    def describe(self) -> str:
        """One sentence: where this chain parts from the checkpoints, as exactly as they allow."""
        failing = self.first_failing
        if failing is None:
            return f"{self.chain}: the log extends every checkpoint (through seq {self.holds_through})"
        held = self.holds_through
        after = f"after seq {held} (the last one that holds)" if held else "after seq 0 (no earlier checkpoint holds)"
        if failing.standing is Standing.BEYOND:
            text = (
                f"{self.chain}: the log ends at seq {self.head}, before the checkpoint's seq {failing.seq}:"
                f" seq {self.head + 1} is the first missing"
            )
            if held < self.head:
                text += f" (rows {held + 1}..{self.head} are covered by no checkpoint that holds)"
            return text
        return (
            f"{self.chain}: the first diverging seq is at or before {failing.seq}"
            f" (the first checkpoint that fails), {after}"
        )


def standing(position: ChainPosition, head: int, hash_at: Callable[[int], bytes | None]) -> Standing:
    """One checkpoint's position against a chain whose last seq is `head` and whose stored hashes `hash_at`
    gives (None: the log cannot show that row)."""
    if position.seq > head:
        return Standing.BEYOND
    found = GENESIS_HASH if position.seq == 0 else hash_at(position.seq)
    if found is None:
        return Standing.ABSENT
    return Standing.HOLDS if found == position.hash else Standing.DIFFERS


def compare(
    checkpoints: Sequence[Checkpoint],
    heads: Mapping[Chain, int],
    hash_at: Callable[[Chain, int], bytes | None],
) -> dict[Chain, ChainFinding]:
    """Each chain of the log (its last seq in `heads`, its stored hashes from `hash_at`) against every checkpoint.

    Meaningful after the chain walk passed: then every stored hash is the hash of its row and all before it,
    so a checkpoint that holds vouches for every row up to its seq, and the first diverging seq lies after the
    last checkpoint that holds and at or before the first that fails. A chain rebuilt consistently cannot be
    pinned down closer than that: nothing else signed says what the rows in between were."""
    findings: dict[Chain, ChainFinding] = {}
    for chain in CHAINS:
        checks = [
            PositionCheck(
                index, chain, cp.position(chain).seq, standing(cp.position(chain), heads[chain], _at(hash_at, chain))
            )
            for index, cp in enumerate(checkpoints)
        ]
        checks.sort(key=lambda check: (check.seq, check.index))
        findings[chain] = ChainFinding(chain, heads[chain], tuple(checks))
    return findings


def _at(hash_at: Callable[[Chain, int], bytes | None], chain: Chain) -> Callable[[int], bytes | None]:
    def one(seq: int) -> bytes | None:
        return hash_at(chain, seq)

    return one
