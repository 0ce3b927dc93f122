"""Issue 19, "years unattended": work on outside input is bounded before it starts.

- A cloud SAM file's RSA key is measured from its DER structure before the library checks its primes (seconds
  for an 8192-bit key, tens of seconds for 16384): over 4096 bits is 1610 at once.
- The Record pages by sequence number: the same rows as the old OFFSET walk, in the same order, after a
  clear and after sealing, whatever `skip` is.
- A bench card's transcript keeps a bounded window.
- One console per data dir: the lock, and the doctor's reading of it.

Times are bounds, never fine measurements: "well under a second" where the old code took seconds.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from broker.credentials.cloud_sam_file import CloudSamFileInvalid, parse_cloud_sam_file
from broker.credentials.rsa_key_shape import KeyShapeRefused, KeyTooLarge, rsa_key_shape
from deploy.doctor import OK, WARN, check_lock
from deploy.single_instance import AlreadyServing, acquire, lock_holder, lock_path, port_holder
from eventlog.sqlite_store import SqliteEventStore
from sim.cards.base import Transcript
from sim.oversized_keys import oversized_rsa_key, oversized_sam_file

TS = "2024-05-23T15:38:00.2514272+08:00"
OLD_RECORD_QUERY = (
    "SELECT seq, url, uuid, timestamp, status_code, caller FROM calls WHERE seq > ? ORDER BY seq DESC LIMIT ? OFFSET ?"
)
"""The Record's query before issue 19 (with issue 22's caller): the reference the new paging must agree with."""


# --- the cloud SAM file's key -------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8192, 16384])
def test_a_huge_key_is_refused_from_its_structure_well_under_a_second(bits: int) -> None:
    raw = oversized_sam_file(bits)
    started = time.perf_counter()
    with pytest.raises(CloudSamFileInvalid, match="larger than 4096 bits") as caught:
        parse_cloud_sam_file(raw)
    assert time.perf_counter() - started < 0.5, "the key's primes were checked: OpenSSL takes seconds on them"
    assert caught.value.__cause__ is None


def test_a_4096_bit_key_is_refused_before_its_primes_are_checked() -> None:
    started = time.perf_counter()
    with pytest.raises(CloudSamFileInvalid, match="not an RSA-2048 key"):
        parse_cloud_sam_file(oversized_sam_file(4096))
    assert time.perf_counter() - started < 0.5


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _pem(label: str, der: bytes) -> bytes:
    return f"-----BEGIN {label}-----\n{base64.encodebytes(der).decode()}-----END {label}-----\n".encode()


def test_the_shape_of_an_ordinary_key_in_both_forms() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = key.public_key().public_numbers().n
    for form in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
        shape = rsa_key_shape(pem)
        assert (shape.bits, shape.modulus) == (2048, n)
        assert serialization.load_der_private_key(shape.der, None).private_numbers() == key.private_numbers()  # type: ignore[union-attr]
        assert repr(shape) == "RsaKeyShape(bits=2048)", "the DER is the private key: never in a repr"


def test_pem_text_without_an_end_is_refused_in_linear_time() -> None:
    """16 KiB of BEGIN lines and no END: a lazy regular expression tried each BEGIN (170 ms a call)."""
    worst = (b"-----BEGIN PRIVATE KEY-----" * 700)[: 16 * 1024]
    started = time.perf_counter()
    for _ in range(20):
        with pytest.raises(KeyShapeRefused):
            rsa_key_shape(worst)
    assert time.perf_counter() - started < 0.5


def test_a_2048_bit_modulus_with_a_huge_prime_is_refused_from_its_structure() -> None:
    """n of 2048 bits but p of 8192: the library would test the huge p for primality before seeing n != p*q."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    huge = oversized_rsa_key(16384).private_numbers().p
    numbers = [0, key.public_numbers.n, key.public_numbers.e, key.d, huge, key.q, key.dmp1, key.dmq1, key.iqmp]
    der = _der(0x30, b"".join(_der_integer(number) for number in numbers))
    with pytest.raises(KeyShapeRefused):
        rsa_key_shape(_pem("RSA PRIVATE KEY", der))


def test_the_shape_refuses_what_is_not_an_unencrypted_rsa_key() -> None:
    huge = oversized_rsa_key(8192).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyTooLarge):
        rsa_key_shape(huge)
    for pem in (
        b"",
        b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        _pem("PRIVATE KEY", b"\x30\x84\xff\xff\xff\xff"),  # a length past the bytes
        _pem("PRIVATE KEY", b"\x30\x80\x00\x00"),  # indefinite length: not DER
        _pem("RSA PRIVATE KEY", _der(0x30, b"".join(_der_integer(n) for n in [1, 3, 3, 3, 3, 3, 3, 3, 3]))),
    ):
        with pytest.raises(KeyShapeRefused):
            rsa_key_shape(pem)


# --- the Record's paging ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    opened = SqliteEventStore(tmp_path / "events.sqlite3", durability="normal")
    yield opened
    opened.close()


def _calls(store: SqliteEventStore, first: int, count: int) -> None:
    for n in range(first, first + count):
        store.append_call(f"/api/{n}", f"uuid-{n}", TS, 200 + n % 7)
    store.commit()


def _old_answer(store: SqliteEventStore, skip: int, take: int, after_seq: int) -> list[tuple[object, ...]]:
    if take == 0:
        return []
    with sqlite3.connect(f"file:{store.path}?mode=ro", uri=True) as reader:
        return reader.execute(OLD_RECORD_QUERY, (after_seq, take, skip)).fetchall()


def _agrees(store: SqliteEventStore, windows: list[tuple[int, int, int]]) -> None:
    for skip, take, after_seq in windows:
        new = [dataclasses.astuple(row) for row in store.calls_newest_first(skip, take, after_seq)]
        assert new == _old_answer(store, skip, take, after_seq), (skip, take, after_seq)


def _windows(last: int, rng: random.Random) -> list[tuple[int, int, int]]:
    edges = [0, 1, 2, last - 1, last, last + 1, 10**9]
    windows = [(skip, take, after) for skip in edges for take in (0, 1, 3, 100) for after in (0, 5, last // 2, last)]
    windows += [(rng.randrange(last + 5), rng.randrange(1, 40), rng.randrange(last + 5)) for _ in range(200)]
    return [(max(skip, 0), take, after) for skip, take, after in windows]


def test_record_pages_are_the_old_walks_rows_after_clears_and_seals(store: SqliteEventStore, tmp_path: Path) -> None:
    rng = random.Random(19)
    _agrees(store, [(0, 10, 0), (5, 10, 0)])  # empty
    _calls(store, 1, 120)
    _agrees(store, _windows(120, rng))  # after_seq plays the cleared record (CallRecordCleared's seq)
    store.seal(0, 50, tmp_path / "archive")
    _agrees(store, _windows(120, rng))
    _calls(store, 121, 30)
    store.seal(0, 149, tmp_path / "archive")  # all but the newest
    _agrees(store, _windows(150, rng))
    store.seal(0, 150, tmp_path / "archive")  # every call sealed: the live record is empty
    _agrees(store, _windows(150, rng))
    _calls(store, 151, 3)
    _agrees(store, _windows(153, rng))


def test_record_pages_with_a_gap_in_the_live_calls_fall_back_to_the_walk(tmp_path: Path) -> None:
    """No code here leaves a gap, but a file edited by hand could: the answer stays the old one."""
    path = tmp_path / "events.sqlite3"
    first = SqliteEventStore(path, durability="normal")
    _calls(first, 1, 40)
    first.close()
    with sqlite3.connect(path) as editor:
        editor.execute("DELETE FROM calls WHERE seq IN (17, 30)")
    gapped = SqliteEventStore(path, durability="normal")
    try:
        _agrees(gapped, _windows(40, random.Random(7)))
    finally:
        gapped.close()


def test_a_skip_past_any_integer_is_an_empty_page(store: SqliteEventStore) -> None:
    _calls(store, 1, 3)
    assert store.calls_newest_first(2**70, 5) == []
    assert [row.seq for row in store.calls_newest_first(0, 2**70)] == [3, 2, 1]


# --- the bench card's transcript ----------------------------------------------------------------------------


def test_a_transcript_keeps_a_bounded_window_of_the_newest_exchanges() -> None:
    transcript = Transcript(keeps=100)
    for n in range(5000):
        transcript.add(n.to_bytes(2, "big"), b"\x90\x00")
    assert transcript.total == 5000
    assert 100 <= len(transcript.entries) < 200
    assert transcript.entries[-1] == ((4999).to_bytes(2, "big"), b"\x90\x00")
    window = [int.from_bytes(command, "big") for command in transcript.commands()]
    assert window == list(range(5000 - len(window), 5000))


# --- one console per data dir -------------------------------------------------------------------------------


def _free_lock_port() -> int:
    return 40000 + os.getpid() % 20000


def test_a_second_holder_of_the_data_dir_or_the_port_is_refused_naming_the_first(tmp_path: Path) -> None:
    port = _free_lock_port()
    first = acquire(tmp_path / "data", port)
    try:
        assert lock_path(tmp_path / "data").read_text() == f"{os.getpid()}\n"
        assert lock_holder(lock_path(tmp_path / "data")) == os.getpid()
        assert port_holder(port) == os.getpid()
        with pytest.raises(AlreadyServing, match=f"pid {os.getpid()} is already serving the data dir"):
            acquire(tmp_path / "data", port + 1)
        with pytest.raises(AlreadyServing, match=f"pid {os.getpid()} is already serving port {port}"):
            acquire(tmp_path / "other", port)
        assert lock_path(tmp_path / "data").read_text() == f"{os.getpid()}\n", "the refused one wrote nothing"
        assert port_holder(port) == os.getpid(), "the refused one's look took nothing"
    finally:
        first.release()
    assert lock_holder(lock_path(tmp_path / "data")) is None
    assert port_holder(port) is None
    again = acquire(tmp_path / "other", port)
    again.release()


def test_the_doctor_reads_the_lock() -> None:
    assert check_lock(Path("/d"), None, None).verdict == OK
    held = check_lock(Path("/d"), 812, 812)
    assert held.verdict == OK and "pid 812" in held.detail
    assert check_lock(Path("/d"), 812, None).verdict == OK
    assert check_lock(Path("/d"), 812, 900).verdict == WARN
