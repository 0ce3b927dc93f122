"""The bench's counters (issue 20): what reached a bench card (`cardCommands` of GET /api/sim/v1/Readers) and what
reached the DC simulator (GET /api/sim/v1/Dc/Calls), so a hostile-caller test counts instead of assuming.

Without processes: the counter's file as a worker and the control API share it, the in-process reader counting
where the APDU reaches the card, the DC service counting its protocol's requests, the control API's routes over
stand-ins, and the vpcd bridge against a stand-in vpcd on a local socket.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest

from api.app import create_app
from api.resources.common import VersionInfo
from contract.protocol import Reply as CoreReply
from sim.card_commands import COUNTS_ENV, CommandCounter, clear, count_file, counter_from_environment, read_count
from sim.control_api import BenchDcCalls, BenchReaders
from sim.dc.sam_files import SamCa
from sim.dc.service import DROP, DcService, Reply, Request
from sim.dc.state import DcState, StateDir
from sim.dc_control import DcControlError
from sim.profiles import make_card
from sim.virtual_reader import VirtualReader
from sim.vpcd import GET_ATR, POWER_ON, VpcdCardBridge
from workers.apdu import HC_AID, select_aid
from workers.seam import CardAbsent

SELECT_HC = select_aid(HC_AID)


# -- the count's file ----------------------------------------------------------------------------------------


def test_a_count_goes_on_across_counters_of_the_same_reader_and_a_clear_starts_it_again(tmp_path: Path) -> None:
    """A restarted worker opens a new counter: it must go on from the file, not count from 0 over it."""
    first = CommandCounter(tmp_path, "Desk/1 讀卡機")  # any character of a reader name, `/` included
    for _ in range(3):
        first.add()
    assert read_count(tmp_path, "Desk/1 讀卡機") == 3
    second = CommandCounter(tmp_path, "Desk/1 讀卡機")
    second.add()
    assert read_count(tmp_path, "Desk/1 讀卡機") == 4
    assert read_count(tmp_path, "another reader") == 0
    first.close()
    second.close()
    clear(tmp_path)
    assert tmp_path.is_dir() and read_count(tmp_path, "Desk/1 讀卡機") == 0


def test_the_file_holds_a_binary_count_that_no_secret_scan_reads_as_a_pin(tmp_path: Path) -> None:
    """`000000` is a bench PIN: a zero-padded decimal count would hold it; 8 little-endian bytes cannot."""
    counter = CommandCounter(tmp_path, "R")
    counter.add()
    assert count_file(tmp_path, "R").read_bytes() == (1).to_bytes(8, "little")
    counter.close()


def test_the_worker_finds_the_directory_the_bench_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COUNTS_ENV, raising=False)
    assert counter_from_environment("R") is None
    monkeypatch.setenv(COUNTS_ENV, str(tmp_path / "counts"))
    counter = counter_from_environment("R")
    assert counter is not None
    counter.add()
    assert read_count(tmp_path / "counts", "R") == 1
    counter.close()


# -- the in-process reader -----------------------------------------------------------------------------------


def test_the_reader_counts_every_apdu_its_cards_get_and_none_sent_to_an_empty_slot(tmp_path: Path) -> None:
    reader = VirtualReader("R", counter=CommandCounter(tmp_path, "R"))
    with pytest.raises(CardAbsent):
        reader.transmit(SELECT_HC)
    assert reader.card_commands == 0
    reader.insert(make_card("hc-basic"))
    reader.transmit(SELECT_HC)
    reader.transmit(b"\x00")  # malformed: it still reached the card, which answered it
    reader.control("insert", {"profile": "hpc-doctor"})  # a new card: the reader's count goes on
    reader.transmit(SELECT_HC)
    assert reader.card_commands == 3 == read_count(tmp_path, "R")


def test_a_reader_without_a_counter_counts_nothing() -> None:
    reader = VirtualReader("R")
    reader.insert(make_card("hc-basic"))
    reader.transmit(SELECT_HC)
    assert reader.card_commands == 0


# -- the DC simulator ----------------------------------------------------------------------------------------


@pytest.fixture
def dc(tmp_path: Path) -> Iterator[DcService]:
    layout = StateDir(tmp_path / "dc")
    layout.ensure()
    state = DcState(layout.database)
    try:
        yield DcService(state, SamCa.ensure(layout))
    finally:
        state.close()


def _calls(dc: DcService) -> int:
    reply = dc.handle(Request("GET", "/sim/v1/Calls"))
    assert isinstance(reply, Reply) and reply.status == 200
    return int(str(reply.body["calls"]))


def test_the_dc_counts_its_protocols_requests_whatever_their_answer(dc: DcService) -> None:
    assert _calls(dc) == 0
    dc.handle(Request("GET", "/dc/v1/Time"))  # no session: 401, but it reached the DC
    dc.handle(Request("POST", "/dc/v1/NoSuchCommand", body=b"{}"))
    dc.handle(Request("GET", "/elsewhere"))  # not under /dc/v1/: still not a bench control
    dc.handle(Request("POST", "/sim/v1/Faults", body=json.dumps({"statusCode": 1700, "count": 1}).encode()))
    assert dc.handle(Request("POST", "/dc/v1/Sam/Challenge", body=b"{}")) is DROP  # a fault's call counts too
    assert _calls(dc) == 4 == dc.calls


def test_the_bench_controls_are_not_dc_calls(dc: DcService) -> None:
    dc.handle(Request("POST", "/sim/v1/Clock", body=b'{"advanceSeconds": 1}'))
    dc.handle(Request("GET", "/sim/v1/Sams/000000000001"))
    dc.handle(Request("GET", "/sim/v1/NoSuchControl"))
    for _ in range(3):
        _calls(dc)
    assert _calls(dc) == 0
    assert dc.handle(Request("POST", "/sim/v1/Calls")).status == 404  # type: ignore[union-attr]  # a Reply


# -- the control API's routes --------------------------------------------------------------------------------


class ListingCore:
    """The broker's side of GET /api/sim/v1/Readers: the bench's readers, as `SimListReaders` answers them."""

    def call(self, command: str, args: dict[str, Any] | None = None, **kwargs: Any) -> CoreReply:
        assert command == "SimListReaders"
        readers = [{"name": "Bench A", "card": {"profile": "hc-basic"}}, {"name": "Bench B", "card": None}]
        return CoreReply("test", 0, {"readers": readers})


class StubDc:
    """The DC simulator's controls without a simulator: answers GET Calls, or raises what the test set."""

    def __init__(self, calls: int = 0, error: DcControlError | None = None) -> None:
        self.asked: list[tuple[str, str, dict[str, Any] | None]] = []
        self.calls = calls
        self.error = error

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        self.asked.append((method, path, body))
        if self.error is not None:
            raise self.error
        return {"calls": self.calls}


def _dc_calls(dc: StubDc | None) -> BenchDcCalls:
    return BenchDcCalls(dc)  # type: ignore[arg-type]  # a stand-in with DcControl's one method


def _client(mount: Any) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(
        create_app(
            ListingCore(),  # type: ignore[arg-type]  # a stand-in: create_app takes the CoreClient class
            VersionInfo("1.2.3", "/opt/nhi-console"),
            extra_routes=mount,
        ),
        headers={"Host": "localhost:5066"},
    )


def test_each_bench_reader_says_how_many_commands_its_cards_got(tmp_path: Path) -> None:
    counter = CommandCounter(tmp_path, "Bench A")
    for _ in range(5):
        counter.add()
    client = _client(lambda app, core: app.add_route("/api/sim/v1/Readers", BenchReaders(core, tmp_path)))
    assert client.simulate_get("/api/sim/v1/Readers").json == {
        "readers": [
            {"name": "Bench A", "card": {"profile": "hc-basic"}, "cardCommands": 5},
            {"name": "Bench B", "card": None, "cardCommands": 0},
        ]
    }
    counter.close()


def test_a_bench_without_a_count_says_null_not_zero() -> None:
    """Only an app built without serve's settings: a 0 there would be a count nobody took."""
    client = _client(lambda app, core: app.add_route("/api/sim/v1/Readers", BenchReaders(core)))
    assert [reader["cardCommands"] for reader in client.simulate_get("/api/sim/v1/Readers").json["readers"]] == [
        None,
        None,
    ]


def test_the_dc_calls_are_asked_of_the_simulator_and_answered_with_status_code_0() -> None:
    dc = StubDc(calls=17)
    client = _client(lambda app, core: app.add_route("/api/sim/v1/Dc/Calls", _dc_calls(dc)))
    answer = client.simulate_get("/api/sim/v1/Dc/Calls")
    assert (answer.status_code, answer.json) == (200, {"statusCode": 0, "calls": 17})
    assert dc.asked == [("GET", "Calls", None)]


@pytest.mark.parametrize(("error", "status"), [(DcControlError(502, "down"), 502), (None, 404)])
def test_the_dc_calls_route_answers_the_simulators_failure(error: DcControlError | None, status: int) -> None:
    dc = None if error is None else StubDc(error=error)
    client = _client(lambda app, core: app.add_route("/api/sim/v1/Dc/Calls", _dc_calls(dc)))
    answer = client.simulate_get("/api/sim/v1/Dc/Calls")
    assert answer.status_code == status and isinstance(answer.json["message"], str)


# -- the vpcd bridge -----------------------------------------------------------------------------------------


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


def _read_frame(sock: socket.socket) -> bytes:
    header = sock.recv(2, socket.MSG_WAITALL)
    return sock.recv(int.from_bytes(header, "big"), socket.MSG_WAITALL)


def test_the_vpcd_bridge_counts_the_apdus_pcscd_delivers_not_its_control_messages() -> None:
    """A stand-in vpcd on a local socket: power on, presence probes and APDUs, as pcscd's driver sends them."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        bridge = VpcdCardBridge(make_card("hc-basic"), port=port, probe_timeout=0.5)
        accepted: list[socket.socket] = []
        accepting = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
        accepting.start()
        bridge.connect()
        accepting.join(5)
        vpcd = accepted[0]
        vpcd.settimeout(5)
        try:
            vpcd.sendall(_frame(bytes([POWER_ON])) + _frame(bytes([GET_ATR])))
            assert _read_frame(vpcd) == make_card("hc-basic").atr
            for _ in range(2):
                vpcd.sendall(_frame(SELECT_HC))
                assert _read_frame(vpcd)[-2:] == b"\x90\x00"
            vpcd.sendall(_frame(bytes([GET_ATR])))  # a presence probe
            _read_frame(vpcd)
            assert bridge.card_commands == 2
        finally:
            vpcd.close()
            bridge.disconnect()
