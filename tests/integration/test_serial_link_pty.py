"""The host side of the serial link (workers/serial_link.py) against the virtual NHI reader on a REAL pty."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.nhi_reader import PtyNhiReader, VirtualNhiReader
from sim.profiles import make_card
from workers.apdu import HC_AID, select_aid
from workers.serial_link import SerialLink, SerialLinkError
from workers.serial_protocol import (
    CMD_INFO,
    CMD_KEYPAD_VERIFY,
    CMD_TRANSMIT,
    SLOT_HC,
    STATUS_OK,
    Frame,
    encode,
)


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[PtyNhiReader]:
    pty_reader = PtyNhiReader(tmp_path / "ttyNHI0", VirtualNhiReader()).start()
    try:
        yield pty_reader
    finally:
        pty_reader.stop()


@pytest.fixture
def link(reader: PtyNhiReader) -> Iterator[SerialLink]:
    serial_link = SerialLink()
    serial_link.open(str(reader.link_path))
    try:
        yield serial_link
    finally:
        serial_link.close()


@pytest.mark.timeout(60)
def test_info_and_transmit(reader: PtyNhiReader, link: SerialLink) -> None:
    assert reader.link_path.is_symlink()
    status, rest = link.call(CMD_INFO)
    assert status == STATUS_OK and json.loads(rest)["slots"] == ["hc", "hpc"]
    reader.insert(SLOT_HC, make_card("hc-basic"))
    status, rest = link.call(CMD_TRANSMIT, bytes([SLOT_HC]) + select_aid(HC_AID))
    assert (status, rest[-2:]) == (STATUS_OK, b"\x90\x00")
    assert link.retransmissions == 0


@pytest.mark.timeout(60)
def test_keypad_verify_survives_a_slow_holder_thanks_to_pendings(reader: PtyNhiReader, link: SerialLink) -> None:
    reader.insert(SLOT_HC, make_card("hc-pin"))
    link.call(CMD_TRANSMIT, bytes([SLOT_HC]) + select_aid(HC_AID))
    timer = threading.Timer(2.5, reader.device.press, args=("1234",))  # the deliberate delay: a slow holder
    timer.start()
    try:
        started = time.monotonic()
        # A 1.5 s answer timeout: without the device's pendings, the host would give up long before 2.5 s.
        status, rest = link.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 30]), answer_timeout=1.5)
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
    assert (status, rest) == (STATUS_OK, b"\x90\x00")
    assert elapsed >= 2.0
    assert link.retransmissions == 0
    assert reader.device.runs[CMD_KEYPAD_VERIFY] == 1


@pytest.mark.timeout(60)
def test_a_lost_answer_is_recovered_without_running_twice(reader: PtyNhiReader, link: SerialLink) -> None:
    """The device's answer is lost: the host resends the same frame, the device answers from its cache, and
    the card sees the command once."""
    card = make_card("hc-basic")
    reader.insert(SLOT_HC, card)
    reader.answers_to_lose = 1
    status, rest = link.call(CMD_TRANSMIT, bytes([SLOT_HC]) + select_aid(HC_AID), answer_timeout=0.5)
    assert (status, rest[-2:]) == (STATUS_OK, b"\x90\x00")
    assert link.retransmissions == 1
    assert len(card.transcript.commands()) == 1
    assert [f.seq for f in reader.received] == [reader.received[0].seq] * 2


@pytest.mark.timeout(60)
def test_pendings_do_not_extend_the_wait_forever(reader: PtyNhiReader, tmp_path: Path) -> None:
    reader.insert(SLOT_HC, make_card("hc-pin"))
    link = SerialLink(overall_cap=1.5)
    link.open(str(reader.link_path))
    try:
        started = time.monotonic()
        with pytest.raises(SerialLinkError) as caught:
            link.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, 0x01, 60]), answer_timeout=1.2)
        assert caught.value.code == 1202
        assert time.monotonic() - started < 4
    finally:
        link.close()
        reader.device.cancel()


@pytest.mark.timeout(60)
def test_garbage_on_the_line_is_skipped(reader: PtyNhiReader, link: SerialLink) -> None:
    """Noise in front of a command: the device resynchronises and still answers the command."""
    port = link._port  # noqa: SLF001 - writing under the link, as line noise would
    assert port is not None
    port.write(b"\x00\xa5\xff\xffnoise" + encode(Frame(1, 0x99))[:-1])
    status, _ = link.call(CMD_INFO)
    assert status == STATUS_OK


@pytest.mark.timeout(60)
def test_unplug_then_replug(reader: PtyNhiReader, link: SerialLink) -> None:
    assert link.call(CMD_INFO)[0] == STATUS_OK
    reader.unplug()
    assert not reader.link_path.exists()
    started = time.monotonic()
    with pytest.raises(SerialLinkError) as caught:
        link.call(CMD_INFO, answer_timeout=1.0)
    assert caught.value.code == 1202
    assert time.monotonic() - started < 5
    link.close()
    with pytest.raises(SerialLinkError) as caught:
        link.open(str(reader.link_path))
    assert caught.value.code == 1201
    reader.replug()
    link.open(str(reader.link_path))
    assert link.call(CMD_INFO)[0] == STATUS_OK


@pytest.mark.timeout(60)
def test_a_silent_port_is_not_answering(tmp_path: Path) -> None:
    """A pty nobody serves: every attempt times out, the same frame is resent, then 1202."""
    reader = PtyNhiReader(tmp_path / "ttySilent")
    reader._open_pty()  # noqa: SLF001 - the pty and its link, without the thread that would answer
    try:
        link = SerialLink()
        link.open(str(reader.link_path))
        started = time.monotonic()
        with pytest.raises(SerialLinkError) as caught:
            link.call(CMD_INFO, answer_timeout=0.3, attempts=3)
        assert caught.value.code == 1202
        assert link.retransmissions == 2
        assert 0.8 <= time.monotonic() - started < 5
        link.close()
    finally:
        reader._close_pty()  # noqa: SLF001 - undoes _open_pty above


@pytest.mark.timeout(60)
def test_a_port_that_does_not_exist(tmp_path: Path) -> None:
    link = SerialLink()
    with pytest.raises(SerialLinkError) as caught:
        link.open(str(tmp_path / "no-such-tty"))
    assert caught.value.code == 1201
    with pytest.raises(SerialLinkError) as caught:
        link.call(CMD_INFO)
    assert caught.value.code == 1202
