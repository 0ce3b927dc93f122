"""The end-of-run secret check finds every form it claims to (text, hex, base64 at each alignment), in a file as
the run would leave it, and stays quiet on a file of ordinary log lines: a check that cannot fail, or that fails
on noise, is worth nothing."""

from __future__ import annotations

import base64
import datetime
import hashlib
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from tests.scan_secrets import main
from tests.secret_forms import base64_forms, base64_fragment
from tests.typed_secrets import (
    HC_PROFILE_PIN,
    LONG,
    MIN_BITS,
    PROFILE_PIN,
    SHORT,
    TYPED,
    WRONG_PIN,
    files_holding_secrets,
)
from workers.apdu import HC_PIN_P2, verify

SURROUNDINGS = random.Random(9).randbytes(64)


def planted(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "output.txt"
    path.write_bytes(b"2024-05-23 15:38:00 INFO something happened\n" + content + b"\nmore after it\n")
    return path


@given(data=st.binary(min_size=1, max_size=40), before=st.binary(max_size=7), after=st.binary(max_size=7))
def test_the_base64_fragment_is_in_every_encoding_holding_the_bytes_at_its_alignment(
    data: bytes, before: bytes, after: bytes
) -> None:
    encoded = base64.b64encode(before + data + after)
    assert base64_fragment(data, len(before) % 3) in encoded
    assert base64_fragment(data, len(before) % 3) in base64.b64encode(before + data)


def test_the_fragments_are_the_secrets_own_characters() -> None:
    assert base64.b64encode(b"12345678") == b"MTIzNDU2Nzg="
    assert base64_fragment(b"12345678", 0) == b"MTIzNDU2Nz"  # the 11th character, g, holds 2 bits of padding
    with pytest.raises(ValueError):
        base64_fragment(b"1234", 3)


@pytest.mark.parametrize("name", sorted(LONG))
@pytest.mark.parametrize(
    "render",
    [
        pytest.param(lambda s: s, id="text"),
        pytest.param(lambda s: s.hex().encode(), id="hex"),
        pytest.param(lambda s: s.hex().upper().encode(), id="HEX"),
        pytest.param(lambda s: s.hex(" ").encode(), id="spaced hex"),
        *(
            pytest.param(lambda s, k=k: base64.b64encode(SURROUNDINGS[:k] + s + SURROUNDINGS[k:20]), id=f"base64+{k}")
            for k in range(6)
        ),
        *(
            pytest.param(
                lambda s, k=k: base64.urlsafe_b64encode(SURROUNDINGS[:k] + s + SURROUNDINGS[k:20]),
                id=f"url-safe base64+{k}",
            )
            for k in range(3)
        ),
    ],
)
def test_a_long_secret_is_found_in_every_form(tmp_path: Path, name: str, render: Callable[[bytes], bytes]) -> None:
    path = planted(tmp_path, render(LONG[name].encode()))
    found = files_holding_secrets([path], remembered=[])
    assert found and all(line.startswith(f"{path}: {name} as ") for line in found), found


@pytest.mark.parametrize("context", ['{"pin": "%s"}', "pin=%s", "called with ('%s',)"])
@pytest.mark.parametrize("name", sorted(SHORT))
def test_a_short_pin_is_found_in_its_contexts_as_text_hex_and_base64(tmp_path: Path, name: str, context: str) -> None:
    leaked = (context % SHORT[name]).encode()
    contents = [leaked]
    if context != "pin=%s":  # `=1234` in hex or base64 says too little to search for (typed_secrets.MIN_BITS)
        contents += [leaked.hex().encode(), *(base64.b64encode(SURROUNDINGS[:k] + leaked) for k in range(3))]
    for content in contents:
        path = planted(tmp_path, content)
        found = files_holding_secrets([path], remembered=[])
        assert any(line.startswith(f"{path}: {name} ") for line in found), (content, found)


@pytest.mark.parametrize("name", sorted(SHORT))
def test_a_short_pin_in_a_dumped_verify_apdu_is_found(tmp_path: Path, name: str) -> None:
    apdu = verify(HC_PIN_P2, SHORT[name].encode())
    for content in (apdu.hex().upper().encode(), apdu.hex(" ").encode(), base64.b64encode(b"\x01" + apdu)):
        path = planted(tmp_path, content)
        found = files_holding_secrets([path], remembered=[])
        assert any(f"{name} in a health card VERIFY" in line for line in found), (content, found)


def test_a_token_of_the_run_is_found_through_the_handoff_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = base64.urlsafe_b64encode(random.Random(3).randbytes(90))
    handoff = tmp_path / "remembered"
    handoff.write_bytes(b"some.other.token\n" + token + b"\n")
    output = planted(tmp_path, base64.b64encode(b"xy" + token))
    assert main(["--remembered", str(handoff), str(output)]) == 1
    report = capsys.readouterr().err
    assert "token #2 of the run as base64 at offset 2" in report
    assert token.decode() not in report and token[10:20].decode() not in report


def test_findings_name_the_secret_never_show_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = planted(tmp_path, f"pin={HC_PROFILE_PIN} and {WRONG_PIN}".encode())
    assert main([str(output), str(tmp_path / "junit.xml")]) == 1
    captured = capsys.readouterr()
    assert "HC_PROFILE_PIN after =, as text" in captured.err and "WRONG_PIN as text" in captured.err
    assert HC_PROFILE_PIN not in captured.err + captured.out and WRONG_PIN not in captured.err + captured.out
    assert "junit.xml does not exist" in captured.err


def test_bare_short_pins_are_not_searched(tmp_path: Path) -> None:
    """The price of no false alarms: a short PIN as a bare digit run, or its hex or base64 alone, is not seen."""
    pin = HC_PROFILE_PIN.encode()
    path = planted(tmp_path, b" ".join([b"took " + pin + b" ms", pin.hex().encode(), base64.b64encode(pin)]))
    assert files_holding_secrets([path], remembered=[]) == []


def test_a_certificate_dated_at_midnight_holds_000000_in_base64_and_that_is_no_finding(tmp_path: Path) -> None:
    """Why short PINs are searched in context only: DER dates end in `000000Z`, so a PEM holds 000000's base64."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    midnight = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(midnight)
        .not_valid_after(midnight.replace(year=2034))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    path = tmp_path / "ca.pem"
    path.write_bytes(pem)
    assert any(form.pattern in pem.replace(b"\n", b"") for form in base64_forms(PROFILE_PIN.encode()))
    assert files_holding_secrets([path], remembered=[]) == []


def test_every_hex_and_base64_needle_says_enough() -> None:
    """No needle short enough to turn up by chance: hex at 4 bits a digit, base64 at 6 a character."""
    for needle in TYPED:
        if "hex" in needle.label:
            assert 4 * sum(chr(byte) != " " for byte in needle.pattern) >= MIN_BITS, needle.label
        elif "base64" in needle.label:
            assert 6 * len(needle.pattern) >= MIN_BITS, needle.label


EVENTS = (
    "ReaderAttached",
    "CardInserted",
    "CardRemoved",
    "CardDetected",
    "SamVerified",
    "CardAuthenticated",
    "HcPinVerified",
    "SessionInitialized",
    "DefaultReaderSet",
    "CloudSamImported",
)


def typical_log(lines: int) -> bytes:
    """Lines as the consoles, gunicorn, the DC simulator and pytest write them (see a console-*.log), with the
    values that vary: timestamps, pids, ports, session numbers, hash-chain digests, ATRs, base64 signatures and
    payloads, call UUIDs, record timestamps with 7 fractional digits, durations. Seeded: the same text every run."""
    rng = random.Random(20240523)
    start = 1_716_449_880.0
    out = []
    for index in range(lines):
        moment = start + index * 0.37
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))
        pid = rng.randrange(300, 99999)
        digest = hashlib.sha256(rng.randbytes(32)).hexdigest()
        out += [
            f"{stamp},{rng.randrange(1000):03d} broker INFO broker.core: event {rng.choice(EVENTS)}",
            f"{stamp},{rng.randrange(1000):03d} broker INFO broker.runtime.worker_pool:"
            f" started worker pid {pid} for reader 'NHI Sim Reader {index % 2}'",
            f"[{stamp} +0000] [{pid}] [INFO] Booting worker with pid: {pid + 1}",
            f"{stamp},{rng.randrange(1000):03d} sim.dc INFO POST /dc/v1/Cards/Verify 200",
            f"listening on https://127.0.0.1:{rng.randrange(1024, 65536)}",
            f"seal {index} chain {digest} session {1_716_449_880_000_000_000 + rng.randrange(10**15)}"
            f" atr 3B8800018180B1FE451F03",
            f'{{"url": "/api/hc/v1/Basic", "uuid": "{uuid.UUID(int=rng.getrandbits(128))}", "timestamp": '
            f'"{time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))}.{rng.randrange(10**7):07d}+08:00", '
            f'"statusCode": {rng.choice([0, 1101, 1102, 1500])}}}',
            f'{{"signature": "{base64.b64encode(rng.randbytes(256)).decode()}", '
            f'"clientRandom": "{base64.b64encode(rng.randbytes(8)).decode()}"}}',
            f"tests/integration/test_health_card_api.py::test_{index} PASSED [{index % 100:3d}%] "
            f"{rng.random() * 30:.2f}s",
        ]
    return "\n".join(out).encode()


def test_no_finding_in_ordinary_log_lines(tmp_path: Path) -> None:
    """Bare digit runs equal to the short PINs are there too (a pid, a duration, a longer number): not findings."""
    path = tmp_path / "console.log"
    bare = "\n".join(
        f"[2024-05-23T15:38:00] worker {pin} started, took {pin} ms, port={pin}0" for pin in SHORT.values()
    )
    path.write_bytes(typical_log(5_000) + b"\n" + bare.encode())
    assert files_holding_secrets([path], remembered=[]) == []


def test_an_assigned_short_pin_counts_only_when_no_digit_follows(tmp_path: Path) -> None:
    assert files_holding_secrets([planted(tmp_path, f"port={HC_PROFILE_PIN}5".encode())], remembered=[]) == []
    path = planted(tmp_path, f"pin={HC_PROFILE_PIN}5 pin={HC_PROFILE_PIN},".encode())
    assert files_holding_secrets([path], remembered=[]) == [f"{path}: HC_PROFILE_PIN after =, as text"]
