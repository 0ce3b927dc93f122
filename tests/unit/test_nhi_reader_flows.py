"""A session on an NHI dedicated reader (issue 8), through the real core and flows and the reader's real worker
back-end, over an in-memory line to the bench's device logic: the physical SAM, the keypad, the reader's clock."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from broker.credentials.cloud_sam_file import parse_cloud_sam_file, verify_signature
from broker.domain.routing import reader_for
from contract.status_codes import StatusCode
from sim.nhi_reader import VirtualNhiReader
from sim.profiles import make_card
from tests.unit.session_harness import NHI_PORT, NHI_SAM_ID, Harness, sam_file_bytes
from tests.unit.virtual_nhi_link import LinkToVirtualReader
from workers.serial_protocol import CMD_KEYPAD_VERIFY, CMD_SAM_AUTH_CARD, CMD_SAM_SIGN, SLOT_HC, SLOT_HPC

STAFF_SLOT = NHI_PORT + "#hpc"
PC_SC_READER = "PC/SC Reader 0"
NHI_SAM_FILE = sam_file_bytes(sam_id=NHI_SAM_ID)


@pytest.fixture
def device() -> Iterator[VirtualNhiReader]:
    reader = VirtualNhiReader(NHI_SAM_FILE, pending_interval=0.2)
    reader.insert(SLOT_HC, make_card("hc-basic"))
    yield reader
    reader.shutdown()


class NhiBench(Harness):
    """The harness with the bench's NHI reader attached over `link`, an in-memory line."""

    link: LinkToVirtualReader


@pytest.fixture
def bench(device: VirtualNhiReader) -> Harness:
    harness = NhiBench((PC_SC_READER, "hc-veteran"), serial_ports=(NHI_PORT,))
    harness.link = harness.attach_nhi_reader(device)
    harness.report_nhi()
    return harness


def link_of(bench: Harness) -> LinkToVirtualReader:
    assert isinstance(bench, NhiBench)
    return bench.link


def initialized(bench: Harness) -> Harness:
    assert bench.command("Initialize", {"name": NHI_PORT}) == (0, {})
    return bench


def test_name_lists_the_cloud_sams_then_the_serial_ports(bench: Harness) -> None:
    assert bench.command("ListDevices") == (0, {"names": ["901000000047", NHI_PORT]})


def test_initial_with_the_port_opens_the_reader_and_its_sam(bench: Harness) -> None:
    initialized(bench)
    status = bench.command("GetStatus")[1]["status"]
    assert (status["name"], status["readerName"], status["initialized"]) == (NHI_PORT, NHI_PORT, True)
    assert status["sam"] == {"status": 1, "type": 2, "expireTime": None}, "a physical SAM is not verified by itself"
    assert status["hc"]["status"] == 1, "the health card in the reader's slot is detected"
    assert bench.command("GetSamBasic") == (
        0,
        {"samId": NHI_SAM_ID, "hospitalId": "777777777", "hospitalName": "測試機構", "hospitalShortName": "測試"},
    )
    assert "PhysicalSamIdentified" in bench.event_types()
    assert "Sam/Login" not in bench.dc.calls
    assert bench.core.serial_devices() == {NHI_PORT}


def test_1301_until_verification_is_asked_then_the_reader_does_the_cards(bench: Harness) -> None:
    initialized(bench)
    assert bench.command("ReadHcBasic")[0] == StatusCode.SAM_LEVEL2_FAILED
    assert bench.command("GetServerDateTime")[0] == StatusCode.SAM_LEVEL2_FAILED
    assert bench.command("VerifySam") == (0, {})
    assert CMD_SAM_SIGN in link_of(bench).commands, "the DC login was signed inside the reader"
    code, body = bench.command("ReadHcBasic")
    assert (code, body["cardId"], body["identityStatus"]) == (0, "900000000711", "3")
    assert CMD_SAM_AUTH_CARD in link_of(bench).commands
    assert "Cards/Challenge" not in bench.dc.calls, "a physical SAM authenticates the card inside the reader"
    assert bench.card_commands[-1] == (NHI_PORT, "ReadHcBasic")


def test_the_health_card_in_another_reader_is_not_used(bench: Harness, device: VirtualNhiReader) -> None:
    initialized(bench)
    device.remove(SLOT_HC)
    bench.report_nhi()
    assert reader_for(bench.core.state, "hc") == StatusCode.NO_CARD
    bench.command("VerifySam")
    assert bench.command("ReadHcBasic")[0] == StatusCode.NO_CARD
    assert all(reader != PC_SC_READER for reader, _ in bench.card_commands)


def test_server_date_time_comes_from_the_readers_clock(bench: Harness, device: VirtualNhiReader) -> None:
    initialized(bench)
    bench.command("VerifySam")
    device.offset_seconds = 400 * 24 * 3600.0
    code, body = bench.command("GetServerDateTime")
    assert code == 0
    reader_now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8))) + datetime.timedelta(days=400)
    expected = f"{reader_now.year - 1911:03d}{reader_now:%m%d%H}"
    assert body["serverDateTime"][:9] == expected
    assert "Time" not in bench.dc.calls


def test_sam_signature_is_the_readers_sam(bench: Harness) -> None:
    initialized(bench)
    bench.command("VerifySam")
    code, body = bench.command("SignWithSam", {"serviceType": "A1"})
    assert code == 0 and body["samId"] == NHI_SAM_ID
    signed = body["clientRandom"] + f"{NHI_SAM_ID}777777777A1".encode()
    assert verify_signature(parse_cloud_sam_file(NHI_SAM_FILE).certificate, body["signature"], signed)


def test_hc_pin_from_the_keypad(bench: Harness, device: VirtualNhiReader) -> None:
    device.insert(SLOT_HC, make_card("hc-pin"))
    bench.report_nhi()
    initialized(bench)
    bench.command("VerifySam")
    device.cancel()
    assert bench.command("VerifyHcPin", {"pin": "000000"})[0] == StatusCode.KEYPAD_CANCELLED
    device.press("9999")
    assert bench.command("VerifyHcPin", {"pin": "000000"})[0] == StatusCode.HC_PIN_FAILED
    device.press("1234")
    assert bench.command("VerifyHcPin", {"pin": "000000"}) == (0, {})
    assert bench.core.state.hc.verified_pin is True
    assert CMD_KEYPAD_VERIFY in link_of(bench).commands
    assert ("000000" not in repr(bench.store.events())) and "1234" not in repr(bench.store.events())


def test_a_port_that_cannot_be_opened_is_1201_and_starts_nothing(bench: Harness) -> None:
    link_of(bench).openable = False
    link_of(bench).close()
    assert bench.command("Initialize", {"name": NHI_PORT})[0] == StatusCode.COMPORT_OPEN_FAILED
    assert not bench.core.state.initialized
    assert bench.core.serial_devices() == set(), "the port's worker is not kept for nothing"


def test_a_reader_without_a_sam_is_1300() -> None:
    bare = Harness(serial_ports=(NHI_PORT,))
    bare.attach_nhi_reader(VirtualNhiReader(None))
    assert bare.command("Initialize", {"name": NHI_PORT})[0] == StatusCode.SAM_LEVEL1_FAILED


def test_initial_without_a_name_falls_through_to_the_reader(bench: Harness) -> None:
    assert bench.command("RemoveCloudSam", {"samId": "901000000047"})[0] == 0
    assert bench.command("Initialize") == (0, {})
    assert bench.core.state.device_name == NHI_PORT


def test_a_silent_reader_is_1202_and_recovers(bench: Harness) -> None:
    initialized(bench)
    bench.command("VerifySam")
    assert bench.command("ReadHcBasic")[0] == 0
    link_of(bench).answering = False
    bench.report_nhi()
    assert bench.core.state.hc.status == 0, "its cards are gone: the reader may have reset them"
    assert bench.command("ReadHcBasic")[0] == StatusCode.NHI_READER_FAILED
    link_of(bench).answering = True
    bench.report_nhi()
    code, body = bench.command("ReadHcBasic")
    assert (code, body["identityStatus"]) == (0, "3"), "authenticated again inside the reader, on demand"


def test_the_staff_card_in_the_readers_second_slot(bench: Harness, device: VirtualNhiReader) -> None:
    device.insert(SLOT_HPC, make_card("hpc-doctor"))
    bench.report_nhi()
    initialized(bench)
    bench.command("VerifySam")
    assert reader_for(bench.core.state, "hpc") == STAFF_SLOT
    code, body = bench.command("VerifyHpcPin", {"pin": "000000"})
    assert code == 0, body
    assert bench.core.state.hpc.status == 3 and bench.core.state.hpc.reader == STAFF_SLOT


def test_a_physical_sam_whose_dc_session_ends_waits_to_be_asked(bench: Harness) -> None:
    initialized(bench)
    bench.command("VerifySam")
    logins = bench.dc.calls.count("Sam/Login")
    bench.clock.advance(bench.dc.session_seconds + 1)
    assert bench.core.due_flows() == []
    assert bench.core.state.sam.status == 1
    assert bench.dc.calls.count("Sam/Login") == logins
    assert bench.command("ReadHcBasic")[0] == StatusCode.SAM_LEVEL2_FAILED


def test_finalize_lets_the_port_go(bench: Harness) -> None:
    initialized(bench)
    assert bench.command("Finalize") == (0, {})
    assert bench.core.serial_devices() == set()
