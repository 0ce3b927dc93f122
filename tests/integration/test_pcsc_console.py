"""The console's PC/SC workers through the real stack: pcscd + vpcd + pyscard, the bench's cards on vpcd."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from smartcard.System import readers as pyscard_readers

from api.core_client import CoreClient
from deploy.paths import console_paths
from sim.profiles import make_card
from sim.vpcd import VpcdCardBridge
from tests.integration.console import RunningConsole, wait_for
from tests.pcscd import Pcscd
from workers.apdu import HC_AID, READ_HC_PUBLIC_DATA, parse_response, select_aid
from workers.health_card import parse_public_data
from workers.pcsc_reader import open_reader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HC_BASIC = {
    "cardId": "900000000711",
    "name": "測試資料",
    "idNo": "R88855084A",
    "birthday": "0741201",
    "sex": "F",
    "dateIssue": "1070101",
}
SELECT_HC = select_aid(HC_AID)


def core_client(console: RunningConsole) -> CoreClient:
    return CoreClient(console_paths(console.data_dir, sim=True).api_endpoint, timeout=20)


def test_hc_basic_read_with_pyscard_directly_is_the_profile(pcscd: Pcscd) -> None:
    with VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 0)):
        [reader] = [r for r in pyscard_readers() if str(r) == pcscd.reader(0, 0)]
        connection = reader.createConnection()
        wait_for(lambda: _connects(connection), 5, "the card in the reader")
        try:
            select = connection.transmit(list(SELECT_HC))
            data, sw1, sw2 = connection.transmit(list(READ_HC_PUBLIC_DATA))
        finally:
            connection.disconnect()
    assert select[1:] == (0x90, 0x00)
    parsed = parse_public_data(parse_response(bytes(data) + bytes([sw1, sw2])))
    assert parsed.card_id == "900000000711" and parsed.name == "測試資料" and parsed.id_no == "R88855084A"
    assert (parsed.birthday, parsed.sex, parsed.date_issue) == ("0741201", "F", "1070101")


def _connects(connection: Any) -> bool:  # pyscard's CardConnection, which has no types
    try:
        connection.connect()
    except Exception:
        return False
    return True


def test_insert_and_remove_are_events_within_a_second(pcscd: Pcscd, pcsc_console: RunningConsole) -> None:
    reader = pcscd.reader(0, 0)
    bridge = VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 0)).connect()
    try:
        wait_for(lambda: pcsc_console.card_kinds().get(reader) == "hc", 1.0, "CardInserted (kind hc) within 1 s")
        # That reader's insertion: the bench's own readers report their cards meanwhile too.
        [inserted, *_] = [
            payload
            for (payload,) in pcsc_console.database_rows(
                "SELECT payload FROM events WHERE type = 'CardInserted' ORDER BY seq DESC"
            )
            if json.loads(payload)["reader"] == reader
        ]
        assert json.loads(inserted)["atr"] == make_card("hc-basic").atr.hex().upper()
    finally:
        bridge.disconnect()
    wait_for(lambda: pcsc_console.card_kinds().get(reader) is None, 1.0, "CardRemoved within 1 s")
    staff = VpcdCardBridge(make_card("hpc-doctor"), port=pcscd.port(0, 1)).connect()
    try:
        wait_for(lambda: pcsc_console.card_kinds().get(pcscd.reader(0, 1)) == "hpc", 1.0, "the staff card identified")
    finally:
        staff.disconnect()


def test_a_data_block_read_through_the_console_worker(pcscd: Pcscd, pcsc_console: RunningConsole) -> None:
    reader = pcscd.reader(0, 0)
    with VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 0)):
        wait_for(lambda: pcsc_console.card_kinds().get(reader) == "hc", 5, "the card identified")
        reply = core_client(pcsc_console).call("ReadPublicData", {"reader": reader})
    assert (reply.code, reply.body) == (0, HC_BASIC)


def test_concurrent_clients_never_interleave_apdus_on_one_card(pcscd: Pcscd, pcsc_console: RunningConsole) -> None:
    """20 console clients, plus 4 other PC/SC programs using transactions, all on one card."""
    reader = pcscd.reader(0, 0)
    card = make_card("hc-basic")
    with VpcdCardBridge(card, port=pcscd.port(0, 0)):
        wait_for(lambda: pcsc_console.card_kinds().get(reader) == "hc", 5, "the card identified")
        with card.transcript._lock:  # noqa: SLF001 - start the count after the worker's identification
            card.transcript.entries.clear()
        codes: list[int] = []
        failures: list[BaseException] = []

        def console_client() -> None:
            client = core_client(pcsc_console)
            for _ in range(5):
                codes.append(client.call("ReadPublicData", {"reader": reader}).code)

        def other_program() -> None:
            try:
                direct = open_reader(reader)
                try:
                    for _ in range(5):
                        with direct.transaction():
                            assert parse_response(direct.transmit(SELECT_HC)).ok
                            assert parse_response(direct.transmit(READ_HC_PUBLIC_DATA)).ok
                finally:
                    direct.close()
            except BaseException as error:  # reported below: a thread's failure must fail the test
                failures.append(error)

        threads = [threading.Thread(target=console_client) for _ in range(20)]
        threads += [threading.Thread(target=other_program) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not failures, failures
    assert codes == [0] * 100
    commands = card.transcript.commands()
    pairs = [commands[index : index + 2] for index in range(0, len(commands), 2)]
    assert len(commands) == 2 * (100 + 20)
    assert all(pair == [SELECT_HC, READ_HC_PUBLIC_DATA] for pair in pairs), "APDU sequences interleaved"


def test_a_reader_plugged_in_gets_a_worker_and_one_unplugged_loses_it(
    pcscd: Pcscd, pcsc_console: RunningConsole
) -> None:
    # pcscd reads a serial driver's reader.conf only at start: plugging a vpcd reader is a restart with one more entry.
    before = set(pcscd.readers())
    pcscd.restart(entries=2)
    try:
        added = set(pcscd.readers()) - before
        assert len(added) == 2
        wait_for(lambda: added <= pcsc_console.attached_readers(), 2.0 + 1.0, "workers for the plugged readers")
    finally:
        pcscd.restart(entries=1)
    wait_for(lambda: not (added & pcsc_console.attached_readers()), 3.0, "the unplugged readers detached")
    wait_for(lambda: before <= pcsc_console.attached_readers(), 5.0, "the first readers still served")
    with VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 0)):
        wait_for(
            lambda: pcsc_console.card_kinds().get(pcscd.reader(0, 0)) == "hc",
            5,
            "the surviving reader's worker sees a card after pcscd came back",
        )


class PulledDuringRead:
    """hc-basic, pulled out of the reader by the clerk while it is answering a READ."""

    def __init__(self) -> None:
        self.inner = make_card("hc-basic")
        self.atr = self.inner.atr
        self.transcript = self.inner.transcript
        self.bridge: VpcdCardBridge | None = None
        self.armed = False

    def respond(self, apdu: bytes) -> bytes:
        if self.armed and apdu == READ_HC_PUBLIC_DATA and self.bridge is not None:
            self.bridge.disconnect()  # from the serving thread: the card leaves now, mid-command
            return b""
        return self.inner.respond(apdu)

    def reset(self) -> None:
        self.inner.reset()


def test_a_card_pulled_mid_command_ends_it_with_1102_not_a_hang(pcscd: Pcscd, pcsc_console: RunningConsole) -> None:
    reader = pcscd.reader(0, 0)
    card = PulledDuringRead()
    card.bridge = VpcdCardBridge(card, port=pcscd.port(0, 0)).connect()
    try:
        wait_for(lambda: pcsc_console.card_kinds().get(reader) == "hc", 5, "the card identified")
        card.armed = True
        reply = core_client(pcsc_console).call("ReadPublicData", {"reader": reader})
        assert reply.code == 1102, reply
        wait_for(lambda: pcsc_console.card_kinds().get(reader) is None, 2, "the removal seen")
    finally:
        card.bridge.disconnect()
    # The reader serves the next card normally.
    with VpcdCardBridge(make_card("hc-basic"), port=pcscd.port(0, 0)):
        wait_for(lambda: pcsc_console.card_kinds().get(reader) == "hc", 5, "a new card identified")
        assert core_client(pcsc_console).call("ReadPublicData", {"reader": reader}).code == 0
