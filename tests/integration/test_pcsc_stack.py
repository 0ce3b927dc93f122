"""The production PC/SC back-end against the real stack: pcscd + vpcd + pyscard + our bridged virtual card.

The card here is a deliberately tiny one of our own (the bench's NHI cards are
tested elsewhere): it answers SELECT by AID and READ BINARY with the selected
AID, records every APDU, and counts resets, which is all these tests need to
see interleaving, kept handles and presence.  Waits are on conditions with
deadlines; no test sleeps in place of a state change.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from smartcard import scard

from sim.vpcd import VpcdCardBridge
from tests.pcscd import ForeignPcscd, Pcscd, comm_accepts, find_pcscd, wait_for
from workers.pcsc_reader import PcscReader, list_pcsc_readers
from workers.seam import CardAbsent, PresenceChanged, ReaderGone

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ATR = bytes.fromhex("3B8800018180B1FE451F03")
OTHER_ATR = bytes.fromhex("3B8800018180B1FE451F04")
AID = bytes.fromhex("D15800000100000000000000000011")
OK = b"\x90\x00"


def select(aid: bytes) -> bytes:
    return bytes([0x00, 0xA4, 0x04, 0x00, len(aid)]) + aid


READ = bytes([0x00, 0xB0, 0x00, 0x00, 0x00])


class TinyCard:
    """SELECT remembers the AID, READ BINARY returns it: a READ answered for another thread's SELECT shows."""

    def __init__(self, atr: bytes = ATR) -> None:
        self.atr = atr
        self.resets = 0
        self.selected: bytes | None = None
        self.transcript: list[tuple[bytes, bytes]] = []
        self.on_read: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def respond(self, apdu: bytes) -> bytes:
        with self._lock:
            if apdu[:4] == b"\x00\xa4\x04\x00" and len(apdu) >= 5:
                self.selected = apdu[5 : 5 + apdu[4]]
                answer = OK
            elif apdu[:2] == b"\x00\xb0":
                if self.on_read is not None:
                    self.on_read()
                answer = self.selected + OK if self.selected is not None else b"\x69\x86"
            else:
                answer = b"\x6d\x00"
            self.transcript.append((apdu, answer))
            return answer

    def reset(self) -> None:
        with self._lock:
            self.resets += 1
            self.selected = None


def next_change(reader: PcscReader, timeout: float) -> PresenceChanged:
    """The next presence report, within `timeout` seconds (wait_for_change is called in 0.2 s slices, as a worker
    does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        change = reader.wait_for_change(min(0.2, max(0.0, deadline - time.monotonic())))
        if change is not None:
            return change
    raise TimeoutError(f"no presence change within {timeout}s")


def wait_until_reported(reader: PcscReader, atr: bytes | None, timeout: float = 5.0) -> list[PresenceChanged]:
    """Read reports until one says `atr` (None: empty); returns all seen, for tests that check the order."""
    seen: list[PresenceChanged] = []
    deadline = time.monotonic() + timeout
    while True:
        change = next_change(reader, max(0.01, deadline - time.monotonic()))
        seen.append(change)
        if change.atr == atr:
            return seen


def slot_is_empty(name: str) -> bool:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        hresult, states = scard.SCardGetStatusChange(context, 0, [(name, scard.SCARD_STATE_UNAWARE, [])])
        return hresult == scard.SCARD_S_SUCCESS and bool(states[0][1] & scard.SCARD_STATE_EMPTY)
    finally:
        scard.SCardReleaseContext(context)


class Slot:
    """One vpcd reader slot, empty at the start of the test; bridges and readers opened here are closed after."""

    def __init__(self, pcscd: Pcscd, entry: int = 0, index: int = 0) -> None:
        self.pcscd = pcscd
        self.name = pcscd.reader(entry, index)
        self.port = pcscd.port(entry, index)
        self._bridges: list[VpcdCardBridge] = []
        self._readers: list[PcscReader] = []

    def bridge(self, card: TinyCard) -> VpcdCardBridge:
        bridge = VpcdCardBridge(card, port=self.port)
        self._bridges.append(bridge)
        return bridge

    def reader(self) -> PcscReader:
        reader = PcscReader(self.name)
        self._readers.append(reader)
        return reader

    def insert(self, card: TinyCard) -> tuple[VpcdCardBridge, PcscReader]:
        """Bridge `card` in and return a reader whose watcher has seen it (so commands reach this card)."""
        bridge = self.bridge(card).connect()
        reader = self.reader()
        wait_until_reported(reader, card.atr)
        return bridge, reader

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        for bridge in self._bridges:
            bridge.disconnect()
        wait_for(lambda: slot_is_empty(self.name), 5.0, f"{self.name} to be empty")


@pytest.fixture
def slot(pcscd: Pcscd) -> Iterator[Slot]:
    opened = Slot(pcscd)
    wait_for(lambda: slot_is_empty(opened.name), 5.0, f"{opened.name} to be empty")
    try:
        yield opened
    finally:
        opened.close()


def assert_unbroken_pairs(transcript: list[tuple[bytes, bytes]]) -> None:
    """SELECT, READ, SELECT, READ, ... and every READ answers the AID its own SELECT chose."""
    assert len(transcript) % 2 == 0
    for position in range(0, len(transcript), 2):
        (first, _), (second, answer) = transcript[position], transcript[position + 1]
        assert first[:4] == b"\x00\xa4\x04\x00", f"entry {position} is not a SELECT"
        assert second == READ, f"entry {position + 1} is not the READ of the SELECT before it"
        assert answer == first[5:] + OK, f"READ at {position + 1} answered another sequence's SELECT"


# --------------------------------------------------------------------------- the bridge alone (no pcscd)


def test_bridge_reassembles_split_messages_and_ends_when_the_peer_closes() -> None:
    """A fake vpcd that writes one byte at a time: the bridge must loop on short reads."""
    server = socket.create_server(("127.0.0.1", 0))
    card = TinyCard()
    bridge = VpcdCardBridge(card, port=server.getsockname()[1])
    bridge.connect()
    peer, _ = server.accept()
    peer.settimeout(5)

    def send(payload: bytes) -> None:
        for byte in len(payload).to_bytes(2, "big") + payload:
            peer.sendall(bytes([byte]))

    def receive() -> bytes:
        header = b""
        while len(header) < 2:
            header += peer.recv(2 - len(header))
        body = b""
        while len(body) < int.from_bytes(header, "big"):
            body += peer.recv(int.from_bytes(header, "big") - len(body))
        return body

    try:
        send(b"\x01")  # power on: no answer, one reset
        send(b"\x04")
        assert receive() == ATR
        send(select(AID))
        assert receive() == OK
        send(READ)
        assert receive() == AID + OK
        send(b"\x02")
        send(b"\x04")
        assert receive() == ATR
        assert card.resets == 2
        assert [command for command, _ in card.transcript] == [select(AID), READ]
        peer.close()
        wait_for(lambda: not bridge.connected, 5.0, "the bridge thread to end after the peer closed")
    finally:
        bridge.disconnect()
        server.close()


def test_bridge_pulls_the_card_at_the_next_presence_probe_unanswered() -> None:
    """disconnect() closes when vpcd next asks for the ATR, so pcscd sees the slot empty in that very poll."""
    server = socket.create_server(("127.0.0.1", 0))
    bridge = VpcdCardBridge(TinyCard(), port=server.getsockname()[1])
    bridge.connect()
    peer, _ = server.accept()
    peer.settimeout(5)
    pulling = threading.Thread(target=bridge.disconnect)
    try:
        peer.sendall(b"\x00\x01\x04")
        assert peer.recv(64) == len(ATR).to_bytes(2, "big") + ATR
        pulling.start()
        deadline = time.monotonic() + 2.0
        while True:  # probe until the bridge hangs up instead of answering
            assert time.monotonic() < deadline, "the bridge kept answering presence probes after disconnect()"
            peer.sendall(b"\x00\x01\x04")
            answer = peer.recv(64)
            if answer == b"":
                break
            assert answer == len(ATR).to_bytes(2, "big") + ATR
        pulling.join(2.0)
        assert not pulling.is_alive() and not bridge.connected
    finally:
        bridge.disconnect()
        peer.close()
        server.close()


# --------------------------------------------------------------------------- through pcscd


def test_select_then_read_in_a_transaction(slot: Slot) -> None:
    card = TinyCard()
    _, reader = slot.insert(card)
    with reader.transaction():
        assert reader.transmit(select(AID)) == OK
        assert reader.transmit(READ) == AID + OK
    assert [command for command, _ in card.transcript] == [select(AID), READ]


def test_watcher_reports_current_state_then_insert_and_remove_within_a_second(slot: Slot) -> None:
    reader = slot.reader()
    assert next_change(reader, 1.0) == PresenceChanged(None)  # the state at the first call
    bridge = slot.bridge(TinyCard())
    started = time.monotonic()
    bridge.connect()
    assert next_change(reader, 1.0) == PresenceChanged(ATR)
    inserted_after = time.monotonic() - started
    started = time.monotonic()
    bridge.disconnect()
    assert next_change(reader, 1.0) == PresenceChanged(None)
    assert inserted_after < 1.0 and time.monotonic() - started < 1.0


def test_a_swap_nobody_watched_is_reported_as_removed_then_inserted(slot: Slot) -> None:
    """Same ATR on both cards: only pcscd's event counter can tell the swap happened."""
    bridge, reader = slot.insert(TinyCard())
    observer = slot.reader()
    wait_until_reported(observer, ATR)
    bridge.swap(TinyCard())
    # The observer proves pcscd saw both events before our reader is asked again.
    seen = wait_until_reported(observer, ATR)
    assert seen[-2:] == [PresenceChanged(None), PresenceChanged(ATR)]
    assert next_change(reader, 1.0) == PresenceChanged(None)
    assert next_change(reader, 1.0) == PresenceChanged(ATR)
    assert reader.wait_for_change(0.3) is None


def test_commands_after_a_reported_swap_reach_the_new_card(slot: Slot) -> None:
    bridge, reader = slot.insert(TinyCard())
    assert reader.transmit(select(AID)) == OK
    new_card = TinyCard(OTHER_ATR)
    bridge.swap(new_card)
    wait_until_reported(reader, OTHER_ATR)
    assert reader.transmit(READ) == b"\x69\x86"  # the new card has nothing selected: a fresh session
    assert [command for command, _ in new_card.transcript] == [READ]


def test_the_card_handle_is_kept_between_commands(slot: Slot) -> None:
    card = TinyCard()
    _, reader = slot.insert(card)
    assert reader.transmit(select(AID)) == OK
    resets_after_connect = card.resets
    for index in range(10):
        if index % 2:
            with reader.transaction():
                assert reader.transmit(READ) == AID + OK
        else:
            assert reader.transmit(READ) == AID + OK
    assert card.resets == resets_after_connect  # no power cycle: a verified PIN would have survived
    assert card.selected == AID


def test_twenty_threads_with_their_own_readers_never_interleave(slot: Slot) -> None:
    card = TinyCard()
    slot.insert(card)
    readers = [slot.reader() for _ in range(20)]
    failures: list[BaseException] = []
    start = threading.Barrier(len(readers))

    def run(index: int, reader: PcscReader) -> None:
        aid = AID[:-1] + bytes([index])
        try:
            start.wait()
            for _ in range(10):
                with reader.transaction():
                    assert reader.transmit(select(aid)) == OK
                    assert reader.transmit(READ) == aid + OK
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(index, reader)) for index, reader in enumerate(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert not any(thread.is_alive() for thread in threads), "a transaction hung"
    assert failures == []
    assert len(card.transcript) == 20 * 10 * 2
    assert_unbroken_pairs(card.transcript)


@pytest.mark.parametrize("when", ["between commands", "during a command"])
def test_a_card_pulled_mid_sequence_is_card_absent(slot: Slot, when: str) -> None:
    card = TinyCard()
    bridge, reader = slot.insert(card)
    if when == "during a command":
        card.on_read = bridge.disconnect  # the card leaves while pcscd waits for its answer
    started = time.monotonic()
    with pytest.raises(CardAbsent), reader.transaction():
        assert reader.transmit(select(AID)) == OK
        if when == "between commands":
            bridge.disconnect()
        reader.transmit(READ)
    assert time.monotonic() - started < 5.0
    with pytest.raises(CardAbsent):
        reader.transmit(READ)  # and it stays absent, without a hang
    wait_until_reported(reader, None)


def test_no_card_is_card_absent(slot: Slot) -> None:
    reader = slot.reader()
    with pytest.raises(CardAbsent):
        reader.transmit(select(AID))


def test_list_pcsc_readers_follows_pcscd(pcscd: Pcscd) -> None:
    assert set(pcscd.readers()) <= set(list_pcsc_readers())
    try:
        pcscd.stop()
        assert list_pcsc_readers() == []  # no pcscd: an empty list, not an exception
        pcscd.start(entries=2)
        listed = list_pcsc_readers()
        assert {"Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD 2 00 00", "Virtual PCD 2 00 01"} <= set(listed)
    finally:
        pcscd.restart(entries=1)
    assert "Virtual PCD 2 00 00" not in list_pcsc_readers()


def test_watcher_rides_out_a_pcscd_restart_and_reports_the_card_lost(pcscd: Pcscd) -> None:
    slot = Slot(pcscd)
    try:
        bridge, reader = slot.insert(TinyCard())
        assert reader.transmit(select(AID)) == OK
        pcscd.restart()  # the same readers; vpcd drops the card's socket as pcscd stops
        assert wait_until_reported(reader, None)[-1] == PresenceChanged(None)
        with pytest.raises(CardAbsent):
            reader.transmit(READ)  # a fresh connection to the new pcscd, which has no card in the slot
        bridge.connect()
        wait_until_reported(reader, ATR)
        assert reader.transmit(select(AID)) == OK
    finally:
        slot.close()


def test_watcher_reports_reader_gone_when_pcscd_restarts_without_it(pcscd: Pcscd) -> None:
    pcscd.restart(entries=2)
    reader = PcscReader(pcscd.reader(1, 0))
    try:
        assert next_change(reader, 1.0) == PresenceChanged(None)
        pcscd.restart(entries=1)
        deadline = time.monotonic() + 5.0
        with pytest.raises(ReaderGone):
            while time.monotonic() < deadline:
                reader.wait_for_change(0.2)
    finally:
        reader.close()
        pcscd.restart(entries=1)


def test_a_card_reset_by_another_application_is_reconnected_transparently(slot: Slot) -> None:
    card = TinyCard()
    _, reader = slot.insert(card)
    assert reader.transmit(select(AID)) == OK
    resets = card.resets
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        hresult, handle, _ = scard.SCardConnect(
            context, slot.name, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        assert hresult == scard.SCARD_S_SUCCESS
        assert scard.SCardDisconnect(handle, scard.SCARD_RESET_CARD) == scard.SCARD_S_SUCCESS
    finally:
        scard.SCardReleaseContext(context)
    assert card.resets == resets + 1
    assert reader.transmit(READ) == b"\x69\x86"  # answered, not raised: the card itself says its state is gone
    with reader.transaction():
        assert reader.transmit(select(AID)) == OK
        assert reader.transmit(READ) == AID + OK
    assert card.resets == resets + 1


def test_a_pcscd_we_did_not_start_is_refused_and_left_running(pcscd: Pcscd, tmp_path: Path) -> None:
    executable = find_pcscd()
    assert executable is not None
    pcscd.stop()
    config = tmp_path / "empty-reader.conf"
    config.write_text("")
    foreign = subprocess.Popen(
        [executable, "--foreground", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(comm_accepts, 5.0, "the other pcscd to answer")
        with pytest.raises(ForeignPcscd, match=f"pid {foreign.pid}"):
            Pcscd(tmp_path / "ours").start()
        assert foreign.poll() is None  # refused, not killed
    finally:
        foreign.terminate()  # ours to end: this test started it
        foreign.wait(5)
        wait_for(lambda: not comm_accepts(), 5.0, "the other pcscd to go")
        pcscd.start(entries=1)
