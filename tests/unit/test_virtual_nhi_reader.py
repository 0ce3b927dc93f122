"""The bench's virtual NHI reader's device logic (sim/nhi_reader.py), without a pseudo-terminal."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.credentials.cloud_sam_file import parse_cloud_sam_file, verify_signature
from sim.dc.sam_files import SamCa, build_sam_file
from sim.nhi_reader import VirtualNhiReader
from sim.profiles import make_card
from workers.apdu import HC_AID, READ_HC_IDENTITY_STATUS, select_aid
from workers.serial_protocol import (
    CMD_CLOCK,
    CMD_INFO,
    CMD_KEYPAD_CHANGE,
    CMD_KEYPAD_VERIFY,
    CMD_SAM_AUTH_CARD,
    CMD_SAM_INFO,
    CMD_SAM_SIGN,
    CMD_STATUS,
    CMD_TRANSMIT,
    SLOT_HC,
    SLOT_HPC,
    STATUS_BAD_PARAMETER,
    STATUS_BUSY,
    STATUS_KEYPAD_CANCELLED,
    STATUS_KEYPAD_TIMEOUT,
    STATUS_NO_CARD,
    STATUS_OK,
    STATUS_PENDING,
    STATUS_SAM_ERROR,
    STATUS_UNKNOWN_COMMAND,
    Frame,
)


def bench_sam_file() -> bytes:
    """A SAM file as the DC simulator issues it (certificate from an EC SAM CA), with a throwaway CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test SAM CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return build_sam_file(SamCa(certificate, key), "901000000047", "777777777", "測試機構").file_bytes


@pytest.fixture(scope="module")
def sam_file() -> bytes:
    return bench_sam_file()


class Host:
    """Numbers commands like the host does and checks that each gets exactly one final answer."""

    def __init__(self, device: VirtualNhiReader) -> None:
        self.device = device
        self.seq = 0

    def call(self, cmd: int, payload: bytes = b"") -> tuple[int, bytes]:
        self.seq = (self.seq + 1) & 0xFF
        frames = self.device.handle(Frame(self.seq, cmd, payload))
        assert frames and all(f.seq == self.seq and f.cmd == cmd | 0x80 for f in frames)
        assert all(f.status == STATUS_PENDING for f in frames[:-1])
        return frames[-1].payload[0], frames[-1].payload[1:]

    def transmit(self, slot: int, apdu: bytes) -> bytes:
        status, rest = self.call(CMD_TRANSMIT, bytes([slot]) + apdu)
        assert status == STATUS_OK
        return rest


@pytest.fixture
def device(sam_file: bytes) -> Iterator[VirtualNhiReader]:
    reader = VirtualNhiReader(sam_file, pending_interval=0.2)
    yield reader
    reader.shutdown()


def test_info(device: VirtualNhiReader) -> None:
    status, rest = Host(device).call(CMD_INFO)
    assert status == STATUS_OK
    info = json.loads(rest)
    assert info["slots"] == ["hc", "hpc"] and info["sam"] is True and info["model"] and info["firmware"]
    assert json.loads(Host(VirtualNhiReader()).call(CMD_INFO)[1])["sam"] is False


def test_status_without_and_with_a_card(device: VirtualNhiReader) -> None:
    host = Host(device)
    assert host.call(CMD_STATUS) == (STATUS_OK, bytes([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]))
    card = make_card("hc-basic")
    device.insert(SLOT_HC, card)
    status, rest = host.call(CMD_STATUS)
    assert status == STATUS_OK
    assert rest[:7] == bytes([0, 1, 0, 0, 0, 1, len(card.atr)])
    assert rest[7 : 7 + len(card.atr)] == card.atr
    assert rest[7 + len(card.atr) :] == bytes([1, 0, 0, 0, 0, 0, 0])
    device.remove(SLOT_HC)
    device.insert(SLOT_HC, card)
    assert host.call(CMD_STATUS)[1][2:6] == (2).to_bytes(4, "big")


def test_transmit_select_to_a_health_card(device: VirtualNhiReader) -> None:
    host = Host(device)
    assert host.call(CMD_TRANSMIT, bytes([SLOT_HC]) + select_aid(HC_AID)) == (STATUS_NO_CARD, b"")
    device.insert(SLOT_HC, make_card("hc-basic"))
    assert host.transmit(SLOT_HC, select_aid(HC_AID))[-2:] == b"\x90\x00"
    assert host.call(CMD_TRANSMIT, bytes([7]) + select_aid(HC_AID))[0] == STATUS_BAD_PARAMETER
    assert host.call(CMD_TRANSMIT, bytes([SLOT_HC, 0]))[0] == STATUS_BAD_PARAMETER


def test_sam_info_and_sign(device: VirtualNhiReader, sam_file: bytes) -> None:
    host = Host(device)
    status, rest = host.call(CMD_SAM_INFO)
    assert status == STATUS_OK
    info = json.loads(rest.decode("utf-8"))
    expected = parse_cloud_sam_file(sam_file)
    assert (info["samId"], info["hospitalId"], info["hospitalName"]) == ("901000000047", "777777777", "測試機構")
    assert info["hospitalShortName"] == expected.hospital_short_name
    certificate = x509.load_pem_x509_certificate(info["certificate"].encode("ascii"))
    status, signature = host.call(CMD_SAM_SIGN, b"data to sign")
    assert status == STATUS_OK and len(signature) == 256
    assert verify_signature(certificate, signature, b"data to sign")
    assert host.call(CMD_SAM_SIGN, b"")[0] == STATUS_BAD_PARAMETER
    assert host.call(CMD_SAM_SIGN, bytes(513))[0] == STATUS_BAD_PARAMETER
    no_sam = Host(VirtualNhiReader())
    assert no_sam.call(CMD_SAM_INFO)[0] == STATUS_SAM_ERROR
    assert no_sam.call(CMD_SAM_SIGN, b"x")[0] == STATUS_SAM_ERROR


def test_sam_auth_card_opens_the_identity_data(device: VirtualNhiReader) -> None:
    host = Host(device)
    assert host.call(CMD_SAM_AUTH_CARD, bytes([SLOT_HC]))[0] == STATUS_NO_CARD
    device.insert(SLOT_HC, make_card("hc-basic"))
    host.transmit(SLOT_HC, select_aid(HC_AID))
    assert host.transmit(SLOT_HC, READ_HC_IDENTITY_STATUS)[-2:] == b"\x69\x82"  # not yet authenticated
    assert host.call(CMD_SAM_AUTH_CARD, bytes([SLOT_HC])) == (STATUS_OK, b"")
    assert host.transmit(SLOT_HC, READ_HC_IDENTITY_STATUS) == b"3\x90\x00"


def _verify_with_keys(device: VirtualNhiReader, keys: str | None) -> tuple[int, bytes]:
    device.insert(SLOT_HC, make_card("hc-pin"))
    host = Host(device)
    host.transmit(SLOT_HC, select_aid(HC_AID))
    if keys is not None:
        device.press(keys)
    return host.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 5]))


def test_keypad_verify_right_and_wrong_pin(device: VirtualNhiReader) -> None:
    assert _verify_with_keys(device, "1234") == (STATUS_OK, b"\x90\x00")
    assert _verify_with_keys(device, "9999") == (STATUS_OK, b"\x63\xc2")


def test_keypad_pin_never_leaves_the_reader(device: VirtualNhiReader) -> None:
    device.insert(SLOT_HC, make_card("hc-pin"))
    device.press("1234")
    frames = device.handle(Frame(1, CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 5])))
    assert all(b"1234" not in f.payload and b"1234" not in repr(f).encode() for f in frames)


def test_keypad_cancel_and_timeout(device: VirtualNhiReader) -> None:
    device.cancel()
    assert _verify_with_keys(device, None) == (STATUS_KEYPAD_CANCELLED, b"")
    device.insert(SLOT_HC, make_card("hc-pin"))
    frames = device.handle(Frame(9, CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 1])))
    assert frames[-1].status == STATUS_KEYPAD_TIMEOUT
    # It waited a second, with a pending every 0.2 s (the test's interval; the doc's is 1 s).
    assert 2 <= sum(f.status == STATUS_PENDING for f in frames) <= 6


def test_keypad_keys_pressed_while_waiting_with_pendings(device: VirtualNhiReader) -> None:
    device.insert(SLOT_HC, make_card("hc-pin"))
    Host(device).transmit(SLOT_HC, select_aid(HC_AID))
    timer = threading.Timer(0.5, device.press, args=("1234",))
    timer.start()
    try:
        frames = device.handle(Frame(42, CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 10])))
    finally:
        timer.cancel()
    assert frames[-1].payload == b"\x00\x90\x00"
    assert any(f.status == STATUS_PENDING for f in frames[:-1])


def test_keypad_parameters_and_busy(device: VirtualNhiReader) -> None:
    host = Host(device)
    assert host.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 5]))[0] == STATUS_NO_CARD
    device.insert(SLOT_HC, make_card("hc-pin"))
    assert host.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 0]))[0] == STATUS_BAD_PARAMETER
    assert host.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 121]))[0] == STATUS_BAD_PARAMETER
    assert host.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01]))[0] == STATUS_BAD_PARAMETER
    # While one keypad command waits, another command is refused as busy; a repeat of it gets a pending.
    running = Frame(50, CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 5]))
    assert device.submit(running) == []
    assert [f.status for f in device.submit(Frame(51, CMD_INFO))] == [STATUS_BUSY]
    assert [f.status for f in device.submit(running)] == [STATUS_PENDING]
    device.cancel()
    assert device.wait_keypad(5)
    assert [f.status for f in device.poll()] == [STATUS_KEYPAD_CANCELLED]
    assert [f.status for f in device.submit(running)] == [STATUS_KEYPAD_CANCELLED]  # from the cache
    with pytest.raises(ValueError):
        device.press("12a4")


def test_keypad_change(device: VirtualNhiReader) -> None:
    card = make_card("hc-pin")
    device.insert(SLOT_HC, card)
    host = Host(device)
    host.transmit(SLOT_HC, select_aid(HC_AID))
    device.press("1234")
    assert host.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 5])) == (STATUS_OK, b"\x90\x00")
    device.press("5678")
    device.press("5678")
    assert host.call(CMD_KEYPAD_CHANGE, bytes([SLOT_HC, 0x01, 5])) == (STATUS_OK, b"\x90\x00")
    device.press("5678")
    assert host.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 5])) == (STATUS_OK, b"\x90\x00")
    device.press("1111")
    device.press("2222")
    assert host.call(CMD_KEYPAD_CHANGE, bytes([SLOT_HC, 0x01, 5]))[0] == STATUS_BAD_PARAMETER


def test_same_seq_runs_once(device: VirtualNhiReader) -> None:
    card = make_card("hc-pin")
    device.insert(SLOT_HC, card)
    Host(device).transmit(SLOT_HC, select_aid(HC_AID))
    device.press("9999")
    request = Frame(77, CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 5]))
    first = device.handle(request)[-1]
    device.press("9999")  # typed ahead: a second run would spend it and another try
    again = device.handle(request)
    assert again == [first] and first.payload == b"\x00\x63\xc2"
    verifies = [command for command in card.transcript.commands() if command[1:2] == b"\x20"]
    assert len(verifies) == 1
    assert device.runs[CMD_KEYPAD_VERIFY] == 1
    # A TRANSMIT repeated with its SEQ is not sent to the card again either.
    before = len(card.transcript.commands())
    transmit = Frame(78, CMD_TRANSMIT, bytes([SLOT_HC]) + select_aid(HC_AID))
    assert device.handle(transmit) == device.handle(transmit)
    assert len(card.transcript.commands()) == before + 1
    device.clear_keypad()


def test_unknown_command_and_answers_ignored(device: VirtualNhiReader) -> None:
    assert Host(device).call(0x55) == (STATUS_UNKNOWN_COMMAND, b"")
    assert device.submit(Frame(1, 0x81, b"\x00")) == []


def test_clock_format_and_offset(sam_file: bytes) -> None:
    moment = datetime.datetime(2024, 12, 31, 16, 30, 5, tzinfo=datetime.UTC).timestamp()
    device = VirtualNhiReader(sam_file, clock=lambda: moment)
    host = Host(device)
    assert host.call(CMD_CLOCK) == (STATUS_OK, b"20250101003005")
    device.offset_seconds = -3600
    assert host.call(CMD_CLOCK) == (STATUS_OK, b"20241231233005")
    status, rest = Host(VirtualNhiReader()).call(CMD_CLOCK)
    assert status == STATUS_OK and len(rest) == 14 and rest.isdigit()


def test_staff_slot(device: VirtualNhiReader) -> None:
    card = make_card("hpc-doctor")
    device.insert(SLOT_HPC, card)
    status, rest = Host(device).call(CMD_STATUS)
    assert status == STATUS_OK
    assert rest[:7] == bytes([0, 0, 0, 0, 0, 0, 0])
    assert rest[7:] == bytes([1, 1, 0, 0, 0, 1, len(card.atr)]) + card.atr
