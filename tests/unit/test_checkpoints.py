"""Signed checkpoints (eventlog/checkpoints.py): the one-line format, its refusals, the key file, the comparison of a
log with checkpoints, and the broker's writing of them (broker/runtime/checkpointing.py)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.runtime.checkpointing import CHECKPOINT_LOGGER, Checkpoints
from broker.runtime.clock import ManualClock
from eventlog import checkpoints
from eventlog.checkpoint_key import KEY_BYTES, KeyUnreadable, load_or_create_signing_key, load_signing_key
from eventlog.checkpoints import (
    BadSignature,
    ChainPosition,
    Checkpoint,
    MalformedCheckpoint,
    SignedCheckpoint,
    Standing,
    UnknownVersion,
    WrongKey,
)
from eventlog.sealing import BackgroundSeal, SealRange
from eventlog.sqlite_store import SqliteEventStore

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
"""A fixed test key (RFC 8032 signatures are deterministic: the golden line below never changes)."""
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
TS = "2024-05-23T15:38:00.2514272+08:00"


def statement(
    events: tuple[int, bytes] = (7, b"\x11" * 32), calls: tuple[int, bytes] = (3, b"\x22" * 32)
) -> Checkpoint:
    return Checkpoint(
        key_id=checkpoints.key_id(KEY.public_key()),
        time="2026-05-01T10:00:00+08:00",
        events=ChainPosition(*events),
        calls=ChainPosition(*calls),
    )


def line() -> str:
    return checkpoints.sign(statement(), KEY).render()


# -- the format ------------------------------------------------------------------------------------------------


def test_the_line_is_the_documented_shape_and_signs_exactly_the_text_before_sig() -> None:
    signed = checkpoints.sign(statement(), KEY)
    text = signed.render()
    unsigned, _, signature = text.partition(" sig=")
    assert unsigned == (
        f"nhi-console-checkpoint/1 key={checkpoints.key_id(KEY.public_key())} time=2026-05-01T10:00:00+08:00"
        f" events=7:{'11' * 32} calls=3:{'22' * 32}"
    )
    assert signed.statement.canonical_bytes() == unsigned.encode("ascii")
    KEY.public_key().verify(base64.b64decode(signature), unsigned.encode("ascii"))  # what openssl checks
    assert len(signature) == 88 and "\n" not in text


GOLDEN = (
    "nhi-console-checkpoint/1 key=a050837d85070582 time=2026-05-01T10:00:00+08:00"
    " events=7:1111111111111111111111111111111111111111111111111111111111111111"
    " calls=3:2222222222222222222222222222222222222222222222222222222222222222"
    " sig=vyId2uE2iPQa5HwkxI/bQp885MVWPbltBDTxBtmRVarHODgFpyOsCAJBa+GT181Dt3OL+p2xfkgduBXN3ymgCw=="
)
"""Checked once with openssl (`pkeyutl -verify -rawin` over the text before ` sig=`), as docs/audit.md says."""


def test_the_golden_line_stays_what_auditors_were_told() -> None:
    assert checkpoints.sign(statement(), KEY).render() == GOLDEN
    checkpoints.verify_signature(checkpoints.parse(GOLDEN), KEY.public_key())


def test_the_key_id_is_sha256_of_the_subject_public_key_info() -> None:
    der = KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert checkpoints.key_id(KEY.public_key()) == hashlib.sha256(der).hexdigest()[:16]


def test_format_and_parse_round_trip_and_the_signature_verifies() -> None:
    signed = checkpoints.make(KEY, time.time_ns(), ChainPosition(0, bytes(32)), ChainPosition(2**63 - 1, b"\xff" * 32))
    parsed = checkpoints.parse(signed.render())
    assert parsed == signed
    checkpoints.verify_signature(parsed, KEY.public_key())
    assert checkpoints.parse_time(parsed.statement.time) is not None


def test_the_time_is_to_the_second_with_the_offset() -> None:
    moment = 1_777_600_800_123_456_789  # 2026-05-01T02:00:00.123Z
    assert checkpoints.format_time(moment, timezone(timedelta(hours=8))) == "2026-05-01T10:00:00+08:00"
    assert checkpoints.format_time(moment, UTC) == "2026-05-01T02:00:00+00:00"
    assert checkpoints.format_time(moment, timezone(-timedelta(hours=3, minutes=30))) == "2026-04-30T22:30:00-03:30"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("events=7:", "events=8:"),
        ("calls=3:", "calls=2:"),
        ("11" * 32, "11" * 31 + "12"),
        ("22" * 32, "21" + "22" * 31),
        ("10:00:00", "10:00:01"),
        ("+08:00", "+09:00"),
    ],
)
def test_an_altered_statement_does_not_verify(old: str, new: str) -> None:
    text = line()
    assert old in text
    altered = checkpoints.parse(text.replace(old, new, 1))  # still well formed
    with pytest.raises(BadSignature):
        checkpoints.verify_signature(altered, KEY.public_key())


def test_a_signature_by_another_key_is_refused() -> None:
    forged = SignedCheckpoint(statement(), OTHER.sign(statement().canonical_bytes()))  # names KEY, signed by OTHER
    with pytest.raises(BadSignature):
        checkpoints.verify_signature(checkpoints.parse(forged.render()), KEY.public_key())
    with pytest.raises(WrongKey):  # checked with a key the statement does not name
        checkpoints.verify_signature(checkpoints.parse(line()), OTHER.public_key())
    with pytest.raises(WrongKey):  # nor does a key sign a statement naming another
        checkpoints.sign(statement(), OTHER)


def test_a_changed_signature_is_refused() -> None:
    text = line()
    head, _, signature = text.partition(" sig=")
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 1
    with pytest.raises(BadSignature):
        checkpoints.verify_signature(
            checkpoints.parse(f"{head} sig={base64.b64encode(bytes(raw)).decode()}"), KEY.public_key()
        )


@pytest.mark.parametrize("version", ["2", "0", "10", "1.1", "x"])
def test_an_unknown_version_is_refused_whatever_follows(version: str) -> None:
    text = line().replace("checkpoint/1 ", f"checkpoint/{version} ", 1)
    with pytest.raises(UnknownVersion):
        checkpoints.parse(text)
    with pytest.raises(UnknownVersion):
        checkpoints.parse(f"nhi-console-checkpoint/{version} whatever=1")


def _sig_variant(text: str) -> str:
    """The same signature bytes spelled differently: unused low bits of the last base64 digit set."""
    head, _, signature = text.partition(" sig=")
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = signature[85]
    variant = digits[digits.index(last) ^ 1]
    return f"{head} sig={signature[:85]}{variant}=="


MALFORMED = [
    pytest.param(lambda t: t.replace(" calls=", " extra=1 calls=", 1), id="extra field"),
    pytest.param(lambda t: t + " note=x", id="trailing field"),
    pytest.param(lambda t: " ".join(p for p in t.split(" ") if not p.startswith("calls=")), id="missing field"),
    pytest.param(lambda t: t.split(" sig=")[0], id="missing signature"),
    pytest.param(lambda t: t.replace(" events=", " events=1:" + "00" * 32 + " events=", 1), id="repeated field"),
    pytest.param(
        lambda t: " ".join([t.split(" ")[0], t.split(" ")[2], t.split(" ")[1], *t.split(" ")[3:]]), id="out of order"
    ),
    pytest.param(lambda t: t.replace("11" * 32, "11" * 31 + "1A", 1), id="uppercase hex"),
    pytest.param(lambda t: t.replace("11" * 32, "11" * 31, 1), id="short hash"),
    pytest.param(lambda t: t.replace("11" * 32, "11" * 33, 1), id="long hash"),
    pytest.param(lambda t: t.replace("events=7:", "events=07:", 1), id="leading zero"),
    pytest.param(lambda t: t.replace("events=7:", "events=-7:", 1), id="negative seq"),
    pytest.param(lambda t: t.replace("events=7:", f"events={2**63}:", 1), id="seq beyond int64"),
    pytest.param(lambda t: t.replace("events=7:", "events=+7:", 1), id="signed seq"),
    pytest.param(lambda t: t.replace(" calls=", "  calls=", 1), id="two spaces"),
    pytest.param(lambda t: t.replace(" calls=", "\tcalls=", 1), id="tab"),
    pytest.param(lambda t: t + " ", id="trailing space"),
    pytest.param(lambda t: " " + t, id="leading space"),
    pytest.param(lambda t: t.replace("key=", "key=\u00e9", 1), id="non-ASCII"),
    pytest.param(lambda t: t.replace("key=", "KEY=", 1), id="field name case"),
    pytest.param(lambda t: t.replace("key=" + t.split("key=")[1][:16], "key=" + "g" * 16, 1), id="bad key id"),
    pytest.param(lambda t: t.replace("+08:00", "", 1), id="time without offset"),
    pytest.param(lambda t: t.replace("10:00:00+08:00", "02:00:00Z", 1), id="time in Z"),
    pytest.param(lambda t: t.replace("10:00:00+08:00", "10:00:00.5+08:00", 1), id="fractional seconds"),
    pytest.param(lambda t: t.replace("2026-05-01", "2026-02-30", 1), id="no such day"),
    pytest.param(lambda t: t.replace("==", "", 1), id="unpadded base64"),
    pytest.param(lambda t: t[:-4] + "====", id="bad base64"),
    pytest.param(_sig_variant, id="non-canonical base64"),
    pytest.param(lambda t: t.replace("sig=", "sig=AAAA", 1), id="long signature"),
    pytest.param(lambda t: t + "\n", id="newline"),
    pytest.param(lambda t: t.replace("nhi-console-checkpoint", "nhi-console-checkpoints", 1), id="prefix"),
    pytest.param(lambda t: "", id="empty"),
]


@pytest.mark.parametrize("mutate", MALFORMED)
def test_anything_but_the_one_spelling_is_refused(mutate: object) -> None:
    assert callable(mutate)
    text = line()
    mutated = mutate(text)
    assert mutated != text
    with pytest.raises((MalformedCheckpoint, UnknownVersion)):
        checkpoints.parse(mutated)


def test_the_dataclasses_refuse_what_the_format_cannot_say() -> None:
    with pytest.raises(MalformedCheckpoint):
        ChainPosition(-1, bytes(32))
    with pytest.raises(MalformedCheckpoint):
        ChainPosition(1, bytes(31))
    with pytest.raises(MalformedCheckpoint):
        ChainPosition(True, bytes(32))
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("x" * 16, "2026-05-01T10:00:00+08:00", ChainPosition(0, bytes(32)), ChainPosition(0, bytes(32)))
    with pytest.raises(MalformedCheckpoint):
        SignedCheckpoint(statement(), bytes(63))


def test_a_statement_is_found_after_a_log_prefix() -> None:
    text = line()
    journal = (
        f"May 01 10:00:00 host nhi-console[42]: 2026-05-01 10:00:00,001 broker INFO nhi_console.checkpoint: {text}\n"
    )
    assert checkpoints.find_statement(journal) == text
    assert checkpoints.find_statement("broker INFO something else\n") is None


def test_the_public_key_file_is_read_from_its_pem_block_only() -> None:
    pem = checkpoints.public_key_pem(KEY.public_key())
    key = checkpoints.load_public_key(f"# nhi-console checkpoint key 0000000000000000 (a wrong id, ignored)\n{pem}")
    assert checkpoints.key_id(key) == checkpoints.key_id(KEY.public_key())
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load_public_key(pem + pem)
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load_public_key("no key here")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(checkpoints.CheckpointError, match="not an Ed25519"):
        checkpoints.load_public_key(ec_pem)


# -- the comparison --------------------------------------------------------------------------------------------


HashAt = Callable[[checkpoints.Chain, int], bytes | None]


def _log(hashes: dict[str, dict[int, bytes]]) -> tuple[dict[checkpoints.Chain, int], HashAt]:
    """A log as `compare` sees it: its heads, and its stored hash by seq (None where it holds no row)."""
    heads: dict[checkpoints.Chain, int] = {
        "events": max(hashes["events"], default=0),
        "calls": max(hashes["calls"], default=0),
    }

    def hash_at(chain: checkpoints.Chain, seq: int) -> bytes | None:
        return hashes[chain].get(seq)

    return heads, hash_at


def _h(tag: str, seq: int) -> bytes:
    return hashlib.sha256(f"{tag}{seq}".encode()).digest()


def _at(original: dict[int, bytes], events: int, calls: int = 0) -> Checkpoint:
    return Checkpoint(
        checkpoints.key_id(KEY.public_key()),
        "2026-05-01T10:00:00+08:00",
        ChainPosition(events, original[events] if events else bytes(32)),
        ChainPosition(calls, bytes(32)),
    )


ORIGINAL = {seq: _h("a", seq) for seq in range(1, 101)}


def test_a_log_extending_every_checkpoint_holds() -> None:
    heads, hash_at = _log({"events": ORIGINAL, "calls": {}})
    found = checkpoints.compare([_at(ORIGINAL, 10), _at(ORIGINAL, 50), _at(ORIGINAL, 0)], heads, hash_at)
    assert found["events"].ok and found["calls"].ok
    assert found["events"].holds_through == 50
    assert "extends every checkpoint (through seq 50)" in found["events"].describe()


def test_a_rebuilt_tail_is_bounded_by_the_checkpoints_around_it() -> None:
    rebuilt = {seq: (ORIGINAL[seq] if seq <= 35 else _h("b", seq)) for seq in range(1, 121)}  # diverges at 36
    heads, hash_at = _log({"events": rebuilt, "calls": {}})
    cps = [_at(ORIGINAL, seq) for seq in (10, 30, 40, 90)]
    finding = checkpoints.compare(cps, heads, hash_at)["events"]
    assert not finding.ok
    failing = finding.first_failing
    assert failing is not None and (failing.seq, failing.standing) == (40, Standing.DIFFERS)
    assert finding.holds_through == 30
    assert finding.describe() == (
        "events: the first diverging seq is at or before 40 (the first checkpoint that fails),"
        " after seq 30 (the last one that holds)"
    )


def test_without_an_earlier_checkpoint_the_bound_starts_at_the_beginning() -> None:
    rebuilt = {seq: _h("b", seq) for seq in range(1, 101)}
    heads, hash_at = _log({"events": rebuilt, "calls": {}})
    finding = checkpoints.compare([_at(ORIGINAL, 60)], heads, hash_at)["events"]
    assert finding.holds_through == 0
    assert "at or before 60" in finding.describe() and "after seq 0 (no earlier checkpoint holds)" in finding.describe()


def test_a_shorter_log_names_its_first_missing_seq() -> None:
    short = {seq: ORIGINAL[seq] for seq in range(1, 43)}
    heads, hash_at = _log({"events": short, "calls": {}})
    finding = checkpoints.compare([_at(ORIGINAL, 20), _at(ORIGINAL, 80)], heads, hash_at)["events"]
    failing = finding.first_failing
    assert failing is not None and failing.standing is Standing.BEYOND
    assert finding.describe() == (
        "events: the log ends at seq 42, before the checkpoint's seq 80: seq 43 is the first missing"
        " (rows 21..42 are covered by no checkpoint that holds)"
    )


def test_a_row_the_log_cannot_show_fails_its_checkpoint() -> None:
    holed = dict(ORIGINAL)
    del holed[50]
    heads, hash_at = _log({"events": holed, "calls": {}})
    finding = checkpoints.compare([_at(ORIGINAL, 50)], heads, hash_at)["events"]
    assert finding.first_failing is not None and finding.first_failing.standing is Standing.ABSENT


def test_checkpoints_signed_over_the_rewritten_log_are_named() -> None:
    rebuilt = {seq: (ORIGINAL[seq] if seq <= 35 else _h("b", seq)) for seq in range(1, 121)}
    later = Checkpoint(
        checkpoints.key_id(KEY.public_key()),
        "2026-05-02T10:00:00+08:00",
        ChainPosition(110, rebuilt[110]),
        ChainPosition(0, bytes(32)),
    )
    heads, hash_at = _log({"events": rebuilt, "calls": {}})
    finding = checkpoints.compare([_at(ORIGINAL, 30), _at(ORIGINAL, 40), later], heads, hash_at)["events"]
    assert finding.holds_through == 30  # the later one holds, but not below the first that fails
    assert [check.index for check in finding.signed_after] == [2]


# -- the key file ----------------------------------------------------------------------------------------------


def test_the_key_is_made_once_0600_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "checkpoint.key"
    first = load_or_create_signing_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert path.stat().st_size == KEY_BYTES
    again = load_or_create_signing_key(path)
    assert checkpoints.key_id(first.public_key()) == checkpoints.key_id(again.public_key())
    assert checkpoints.key_id(load_signing_key(path).public_key()) == checkpoints.key_id(first.public_key())
    assert list(path.parent.iterdir()) == [path]  # no temporary left


def test_a_verifier_never_makes_a_key_and_a_bad_file_is_refused_without_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    with pytest.raises(FileNotFoundError):
        load_signing_key(path)
    assert not path.exists()
    path.write_bytes(b"secret-ish bytes!")
    with pytest.raises(KeyUnreadable) as refused:
        load_or_create_signing_key(path)
    assert "secret" not in str(refused.value)
    assert path.read_bytes() == b"secret-ish bytes!"  # never replaced


# -- the broker's writing of them -------------------------------------------------------------------------------


def _store_with_rows(path: Path, events: int, calls: int) -> SqliteEventStore:
    store = SqliteEventStore(path, durability="normal")
    for n in range(events):
        store.append_event("t", 1, b'{"n": %d}' % n, TS)
    for n in range(calls):
        store.append_call(f"/api/x/{n}", f"u{n}", TS, 200)
    store.commit()
    return store


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == CHECKPOINT_LOGGER]


def test_the_broker_writes_one_at_its_first_turn_then_hourly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CHECKPOINT_LOGGER)
    store = _store_with_rows(tmp_path / "console.db", 5, 2)
    clock = ManualClock()
    writer = Checkpoints(tmp_path / "console.db", tmp_path / "secrets" / "checkpoint.key", clock)
    try:
        writer.tick(clock.monotonic(), None)
        clock.advance(3599)
        writer.tick(clock.monotonic(), None)
        assert len(_lines(caplog)) == 1
        store.append_event("t", 1, b"{}", TS)
        store.commit()
        clock.advance(1)
        writer.tick(clock.monotonic(), None)
    finally:
        writer.close()
        store.close()
    first, second = (checkpoints.parse(text) for text in _lines(caplog))
    public = load_signing_key(tmp_path / "secrets" / "checkpoint.key").public_key()
    for signed in (first, second):
        checkpoints.verify_signature(signed, public)
    assert (first.statement.events.seq, first.statement.calls.seq, second.statement.events.seq) == (5, 2, 6)


def test_the_broker_writes_one_after_a_seal_finishes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CHECKPOINT_LOGGER)
    database = tmp_path / "console.db"
    store = _store_with_rows(database, 40, 30)
    clock = ManualClock()
    writer = Checkpoints(database, tmp_path / "secrets" / "checkpoint.key", clock)
    try:
        writer.tick(clock.monotonic(), None)  # the start's
        seal = BackgroundSeal(database, "normal", SealRange(20, 15, tmp_path / "archive"))
        seal.start()
        writer.tick(clock.monotonic(), seal)  # running, or just done: at most the seal's own
        deadline = time.monotonic() + 10
        while seal.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seal.sealed is not None
        for _ in range(3):  # once per seal, however many turns see it finished
            writer.tick(clock.monotonic(), seal)
    finally:
        writer.close()
        store.close()
    assert len(_lines(caplog)) == 2
    after = checkpoints.parse(_lines(caplog)[-1]).statement
    assert (after.events.seq, after.calls.seq) == (40, 30)
    assert list((tmp_path / "archive").glob("segment-*.db"))


def test_a_broker_without_a_usable_key_goes_on_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = _store_with_rows(tmp_path / "console.db", 1, 0)
    key = tmp_path / "checkpoint.key"
    key.write_bytes(b"short")
    clock = ManualClock()
    writer = Checkpoints(tmp_path / "console.db", key, clock)
    try:
        for _ in range(3):
            writer.tick(clock.monotonic(), None)
            clock.advance(3600)
    finally:
        writer.close()
        store.close()
    assert _lines(caplog) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # said at the start (no usable key), not at every try
    assert all("short" not in text for text in warnings)
