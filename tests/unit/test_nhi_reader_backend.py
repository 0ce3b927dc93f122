"""The NHI dedicated reader's worker back-end (workers/nhi_reader.py) above the line: presence by polling, faults
and recovery, the SAM, the clock and the keypad, against the bench's device logic."""

from __future__ import annotations

import datetime
import itertools
import threading
from collections.abc import Iterator

import pytest

from broker.credentials.cloud_sam_file import parse_cloud_sam_file, verify_signature
from contract.status_codes import StatusCode
from sim.nhi_reader import VirtualNhiReader
from sim.profiles import make_card
from tests.unit.test_virtual_nhi_reader import bench_sam_file
from tests.unit.virtual_nhi_link import LinkToVirtualReader
from workers.nhi_reader import NhiReader
from workers.seam import CardAbsent, PresenceChanged, ReaderFault
from workers.serial_protocol import CMD_KEYPAD_VERIFY, SLOT_HC, SLOT_HPC
from workers.session_commands import read_hc_basic

PORT = "/dev/ttyNHI0"
STAFF = "/dev/ttyNHI0#hpc"


@pytest.fixture(scope="module")
def sam_file() -> bytes:
    return bench_sam_file()


@pytest.fixture
def device(sam_file: bytes) -> Iterator[VirtualNhiReader]:
    reader = VirtualNhiReader(sam_file, pending_interval=0.2)
    yield reader
    reader.shutdown()


@pytest.fixture
def link(device: VirtualNhiReader) -> LinkToVirtualReader:
    return LinkToVirtualReader(device)


@pytest.fixture
def nhi(link: LinkToVirtualReader) -> NhiReader:
    # A clock that jumps a second per look, so every wait_for_change polls at once.
    return NhiReader(PORT, link=link, monotonic=itertools.count().__next__)  # type: ignore[arg-type]  # in-memory SerialLink


def changes(nhi: NhiReader) -> list[PresenceChanged]:
    seen = []
    while (change := nhi.wait_for_change(0)) is not None:
        seen.append(change)
    return seen


def test_the_slots_are_two_readers_named_by_the_port(nhi: NhiReader) -> None:
    assert set(nhi.slot_readers()) == {PORT, STAFF}


def test_presence_is_polled_per_slot(nhi: NhiReader, device: VirtualNhiReader) -> None:
    assert nhi.fault() == StatusCode.COMPORT_OPEN_FAILED, "nothing is known before the first poll"
    hc, hpc = make_card("hc-basic"), make_card("hpc-doctor")
    device.insert(SLOT_HC, hc)
    device.insert(SLOT_HPC, hpc)
    assert changes(nhi) == [PresenceChanged(hc.atr, PORT), PresenceChanged(hpc.atr, STAFF)]
    assert nhi.fault() is None
    assert changes(nhi) == [], "a card that stays is not reported again"
    device.remove(SLOT_HC)
    assert changes(nhi) == [PresenceChanged(None, PORT)]


def test_a_swap_between_two_polls_is_a_removal_then_an_insertion(nhi: NhiReader, device: VirtualNhiReader) -> None:
    device.insert(SLOT_HC, make_card("hc-basic"))
    changes(nhi)
    again = make_card("hc-basic")
    device.insert(SLOT_HC, again)  # same ATR, but the insertion counter moved
    assert changes(nhi) == [PresenceChanged(None, PORT), PresenceChanged(again.atr, PORT)]


def test_a_port_that_cannot_be_opened_then_can(
    nhi: NhiReader, link: LinkToVirtualReader, device: VirtualNhiReader
) -> None:
    link.openable = False
    card = make_card("hc-basic")
    device.insert(SLOT_HC, card)
    assert changes(nhi) == []
    assert nhi.fault() == StatusCode.COMPORT_OPEN_FAILED
    with pytest.raises(ReaderFault) as refused:
        nhi.run_device_command(PORT, "ReadSamInfo", {})
    assert refused.value.code == StatusCode.COMPORT_OPEN_FAILED
    link.openable = True
    assert changes(nhi) == [PresenceChanged(card.atr, PORT)]
    assert nhi.fault() is None


def test_a_silent_reader_loses_its_cards_and_recovers_with_new_insertions(
    nhi: NhiReader, link: LinkToVirtualReader, device: VirtualNhiReader
) -> None:
    card = make_card("hc-basic")
    device.insert(SLOT_HC, card)
    assert changes(nhi) == [PresenceChanged(card.atr, PORT)]
    link.answering = False
    assert changes(nhi) == [PresenceChanged(None, PORT)], "a reader that stopped answering may have reset its cards"
    assert nhi.fault() == StatusCode.NHI_READER_FAILED
    assert not link.is_open, "the line is closed, to be opened afresh"
    with pytest.raises(ReaderFault) as failed:
        nhi.slot_readers()[PORT].transmit(bytes(5))
    assert failed.value.code == StatusCode.NHI_READER_FAILED
    link.answering = True
    assert changes(nhi) == [PresenceChanged(card.atr, PORT)], "the card comes back as a new insertion"
    assert nhi.fault() is None


def test_transmit_to_an_empty_slot_is_card_absent(nhi: NhiReader) -> None:
    changes(nhi)
    with pytest.raises(CardAbsent):
        nhi.slot_readers()[STAFF].transmit(bytes.fromhex("00A4040000"))


def test_the_sam_identity_signature_and_card_authentication(
    nhi: NhiReader, device: VirtualNhiReader, sam_file: bytes
) -> None:
    code, info = nhi.run_device_command(PORT, "ReadSamInfo", {})
    assert (code, info) == (
        0,
        {
            "samId": "901000000047",
            "hospitalId": "777777777",
            "hospitalName": "測試機構",
            "hospitalShortName": info["hospitalShortName"],
        },
    )
    code, body = nhi.run_device_command(PORT, "SignWithReaderSam", {"data": b"to be signed"})
    assert code == 0
    assert verify_signature(parse_cloud_sam_file(sam_file).certificate, body["signature"], b"to be signed")
    assert nhi.run_device_command(PORT, "SignWithReaderSam", {"data": b""})[0] == StatusCode.BAD_PARAMETER

    device.insert(SLOT_HC, make_card("hc-basic"))
    transmit = nhi.slot_readers()[PORT].transmit
    assert read_hc_basic(transmit)[0] == StatusCode.HC_LEVEL2_FAILED, "no identity status before authentication"
    assert nhi.run_device_command(PORT, "AuthenticateCardWithSam", {}) == (0, {})
    code, data = read_hc_basic(transmit)
    assert (code, data["identityStatus"]) == (0, "3")
    with pytest.raises(CardAbsent):
        nhi.run_device_command(STAFF, "AuthenticateCardWithSam", {})


def test_the_reader_clock_in_taipei_time(nhi: NhiReader) -> None:
    code, body = nhi.run_device_command(PORT, "ReadReaderClock", {})
    assert code == 0
    moment = datetime.datetime.strptime(body["readerTime"], "%Y%m%d%H%M%S").replace(
        tzinfo=datetime.timezone(datetime.timedelta(hours=8))
    )
    assert abs((moment - datetime.datetime.now(datetime.UTC)).total_seconds()) < 5


def _keypad(nhi: NhiReader, command: str = "VerifyHcPinOnKeypad", seconds: int = 5) -> tuple[int, dict]:
    return nhi.run_device_command(PORT, command, {"seconds": seconds})


def test_keypad_pin_verification(nhi: NhiReader, device: VirtualNhiReader, link: LinkToVirtualReader) -> None:
    device.insert(SLOT_HC, make_card("hc-pin"))
    device.press("9999")
    code, body = _keypad(nhi)
    assert (code, body["outcome"], body["verified"]) == (0, "wrong", False)
    assert isinstance(body["triesLeft"], int)
    device.press("1234")
    assert _keypad(nhi)[1]["outcome"] == "accepted"
    link.commands.clear()
    assert _keypad(nhi)[1]["outcome"] == "alreadyVerified"
    assert CMD_KEYPAD_VERIFY not in link.commands, "a verified PIN is not asked for again"


def test_keypad_without_a_pin_on_the_card_asks_nothing(
    nhi: NhiReader, device: VirtualNhiReader, link: LinkToVirtualReader
) -> None:
    device.insert(SLOT_HC, make_card("hc-basic"))
    assert _keypad(nhi)[1]["outcome"] == "noPin"
    assert CMD_KEYPAD_VERIFY not in link.commands


def test_keypad_cancel_and_timeout_have_their_codes(nhi: NhiReader, device: VirtualNhiReader) -> None:
    device.insert(SLOT_HC, make_card("hc-pin"))
    device.cancel()
    with pytest.raises(ReaderFault) as cancelled:
        _keypad(nhi)
    assert cancelled.value.code == StatusCode.KEYPAD_CANCELLED
    with pytest.raises(ReaderFault) as timed_out:
        _keypad(nhi, seconds=1)
    assert timed_out.value.code == StatusCode.NHI_READER_FAILED
    assert "in time" in timed_out.value.message
    assert _keypad(nhi, seconds=0)[0] == StatusCode.BAD_PARAMETER


def test_keypad_new_pin_typed_twice(nhi: NhiReader, device: VirtualNhiReader) -> None:
    device.insert(SLOT_HC, make_card("hc-pin"))
    device.press("1234")
    assert _keypad(nhi)[1]["outcome"] == "accepted"
    device.press("5678")
    device.press("5679")
    with pytest.raises(ReaderFault) as differ:
        _keypad(nhi, "SetHcPinOnKeypad")
    assert differ.value.code == StatusCode.NHI_READER_FAILED and "differ" in differ.value.message
    device.press("5678")
    device.press("5678")
    assert _keypad(nhi, "SetHcPinOnKeypad") == (0, {"outcome": "accepted"})
    card = device.card(SLOT_HC)
    assert card is not None
    device.insert(SLOT_HC, card)  # power it up afresh: the PIN must be typed again
    device.press("5678")
    assert _keypad(nhi)[1]["outcome"] == "accepted"


def test_keypad_entry_from_another_thread_while_waiting(nhi: NhiReader, device: VirtualNhiReader) -> None:
    device.insert(SLOT_HC, make_card("hc-pin"))
    typing = threading.Timer(0.3, device.press, args=("1234",))
    typing.start()
    try:
        assert _keypad(nhi)[1]["outcome"] == "accepted"
    finally:
        typing.cancel()


def test_a_command_that_finds_the_line_broken_reports_the_cards_gone_before_it_reopens(
    nhi: NhiReader, link: LinkToVirtualReader, device: VirtualNhiReader
) -> None:
    card = make_card("hc-basic")
    device.insert(SLOT_HC, card)
    changes(nhi)
    link.answering = False
    with pytest.raises(ReaderFault):
        nhi.run_device_command(PORT, "ReadReaderClock", {})
    link.answering = True
    assert nhi.run_device_command(PORT, "ReadReaderClock", {})[0] == 0, "the command reopened the line"
    assert changes(nhi) == [PresenceChanged(None, PORT), PresenceChanged(card.atr, PORT)], (
        "the card that was in the reader while it was away comes back as a new insertion"
    )
