"""The bench NHI reader's controls: the control API's routes (over a stand-in control), the control client, and
the reader service's request handling, without processes or a pseudo-terminal."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import msgpack
import pytest
import zmq

from api.app import create_app
from api.resources.common import VersionInfo
from sim.control_api import mount, mount_nhi_reader
from sim.nhi_control import NhiControlError, NhiReaderControl
from sim.nhi_reader import PtyNhiReader, VirtualNhiReader
from sim.nhi_reader_service import BenchNhiReader

DESCRIBED = {
    "port": "/tmp/ttyNHI0",
    "plugged": True,
    "slots": {"hc": {"profile": "hc-basic"}, "hpc": None},
    "cardCommands": 7,
}


class NoCore:
    """The bench's NHI routes never ask the broker; a call here is a test failure."""

    def call(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the NHI reader routes must not call the broker")


class StubControl:
    """Records each control it is asked for; answers `describe`, or raises what the test set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error: NhiControlError | None = None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.calls.append((op, args))
        if self.error is not None:
            raise self.error
        return dict(DESCRIBED) if op == "describe" else {}


def _app(extra: Any) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(
        create_app(
            NoCore(),  # type: ignore[arg-type]  # a stand-in: create_app takes the CoreClient class, not a protocol
            VersionInfo("1.2.3", "/opt/nhi-console"),
            extra_routes=extra,
        ),
        headers={"Host": "localhost:5066"},
    )


@pytest.fixture
def control() -> StubControl:
    return StubControl()


@pytest.fixture
def client(control: StubControl) -> falcon.testing.TestClient:
    return _app(lambda app, core: mount_nhi_reader(app, control))  # type: ignore[arg-type]  # a stand-in control


# -- /api/sim/v1/Keypad ------------------------------------------------------------------------------------


def test_keys_are_passed_on_and_answered_with_an_empty_object(
    client: falcon.testing.TestClient, control: StubControl
) -> None:
    result = client.simulate_post("/api/sim/v1/Keypad", json={"keys": "123456"})
    assert (result.status_code, result.json) == (200, {})
    assert control.calls == [("keypad", {"keys": "123456"})]


def test_cancel_is_passed_on(client: falcon.testing.TestClient, control: StubControl) -> None:
    result = client.simulate_post("/api/sim/v1/Keypad", json={"cancel": True})
    assert (result.status_code, result.json) == (200, {})
    assert control.calls == [("keypad", {"cancel": True})]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"keys": ""},
        {"keys": "12345678901234567"},  # 17 digits
        {"keys": "12a4"},
        {"keys": "12 4"},
        {"keys": "١٢٣٤"},  # digits, but not ASCII ones
        {"keys": 1234},
        {"keys": ["1234"]},
        {"cancel": False},
        {"cancel": "true"},
        {"cancel": 1},
        {"keys": "1234", "cancel": True},
        {"pin": "1234"},
    ],
)
def test_a_bad_keypad_body_is_400_and_nothing_is_sent(
    client: falcon.testing.TestClient, control: StubControl, body: dict[str, Any]
) -> None:
    result = client.simulate_post("/api/sim/v1/Keypad", json=body)
    assert result.status_code == 400
    assert control.calls == []
    assert "1234" not in result.text and "١٢٣٤" not in result.text  # the keys are never echoed


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"1234"'])
def test_a_keypad_body_that_is_not_an_object_is_400(
    client: falcon.testing.TestClient, control: StubControl, raw: bytes
) -> None:
    result = client.simulate_post("/api/sim/v1/Keypad", body=raw, headers={"Content-Type": "application/json"})
    assert result.status_code == 400 and control.calls == []


# -- /api/sim/v1/NhiReader ---------------------------------------------------------------------------------


def test_the_reader_is_described(client: falcon.testing.TestClient, control: StubControl) -> None:
    result = client.simulate_get("/api/sim/v1/NhiReader")
    assert (result.status_code, result.json) == (200, DESCRIBED)
    assert control.calls == [("describe", {})]


@pytest.mark.parametrize("slot, profile", [("hc", "hc-pin"), ("hpc", "hpc-nurse"), ("hc", "hpc-doctor")])
def test_a_card_of_any_profile_goes_in_either_slot(
    client: falcon.testing.TestClient, control: StubControl, slot: str, profile: str
) -> None:
    result = client.simulate_put(f"/api/sim/v1/NhiReader/Slots/{slot}/Card", json={"profile": profile})
    assert (result.status_code, result.json) == (200, {})
    assert control.calls == [("insert", {"slot": slot, "profile": profile})]


def test_a_card_is_taken_out(client: falcon.testing.TestClient, control: StubControl) -> None:
    result = client.simulate_delete("/api/sim/v1/NhiReader/Slots/hpc/Card")
    assert (result.status_code, result.json) == (200, {})
    assert control.calls == [("remove", {"slot": "hpc"})]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_an_unknown_slot_is_404_and_nothing_is_sent(
    client: falcon.testing.TestClient, control: StubControl, method: str
) -> None:
    result = client.simulate_request(method, "/api/sim/v1/NhiReader/Slots/sam/Card", json={"profile": "hc-basic"})
    assert result.status_code == 404 and "hc and hpc" in result.json["message"]
    assert control.calls == []


@pytest.mark.parametrize("body", [{"profile": "hc-nobody"}, {"profile": ""}, {"profile": 7}, {"card": "hc-basic"}])
def test_a_bad_profile_is_400_and_nothing_is_sent(
    client: falcon.testing.TestClient, control: StubControl, body: dict[str, Any]
) -> None:
    result = client.simulate_put("/api/sim/v1/NhiReader/Slots/hc/Card", json=body)
    assert result.status_code == 400 and control.calls == []


@pytest.mark.parametrize("path, op", [("Unplug", "unplug"), ("Replug", "replug")])
def test_the_cable(client: falcon.testing.TestClient, control: StubControl, path: str, op: str) -> None:
    result = client.simulate_post(f"/api/sim/v1/NhiReader/{path}")
    assert (result.status_code, result.json) == (200, {})
    assert control.calls == [(op, {})]


@pytest.mark.parametrize("status, http", [(400, 400), (404, 404), (500, 502), (502, 502)])
def test_a_refusal_or_silence_is_answered_with_its_message(
    client: falcon.testing.TestClient, control: StubControl, status: int, http: int
) -> None:
    control.error = NhiControlError(status, "the reader says no")
    result = client.simulate_post("/api/sim/v1/NhiReader/Unplug")
    assert (result.status_code, result.json) == (http, {"message": "the reader says no"})


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/sim/v1/Keypad", {"keys": "1234"}),
        ("POST", "/api/sim/v1/Keypad", {"keys": "not digits"}),
        ("GET", "/api/sim/v1/NhiReader", None),
        ("PUT", "/api/sim/v1/NhiReader/Slots/hc/Card", {"profile": "hc-pin"}),
        ("DELETE", "/api/sim/v1/NhiReader/Slots/hc/Card", None),
        ("POST", "/api/sim/v1/NhiReader/Unplug", None),
        ("POST", "/api/sim/v1/NhiReader/Replug", None),
    ],
)
def test_without_a_bench_nhi_reader_every_route_is_404(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for name in ("NHI_CONSOLE_SIM_NHI_CONTROL", "NHI_CONSOLE_SIM_DC_URL", "NHI_CONSOLE_SIM_DC_CA"):
        monkeypatch.delenv(name, raising=False)
    result = _app(mount).simulate_request(method, path, json=body)
    assert (result.status_code, result.json) == (404, {"message": "no bench NHI reader is running"})


def test_an_empty_setting_means_no_reader_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NHI_CONSOLE_SIM_NHI_CONTROL", "")  # what `serve` without --sim passes
    assert _app(mount).simulate_get("/api/sim/v1/NhiReader").status_code == 404


# -- the control client -----------------------------------------------------------------------------------


@pytest.fixture
def answering() -> Iterator[tuple[str, list[dict[str, Any]], list[bytes]]]:
    """A REP socket on inproc that answers the queued raw answers in turn, and records what it received."""
    endpoint = f"inproc://nhi-control-test-{uuid.uuid4().hex}"  # unique: a closed inproc name may linger
    socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REP)
    socket.bind(endpoint)
    received: list[dict[str, Any]] = []
    answers: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if socket.poll(50):
                received.append(msgpack.unpackb(socket.recv(), raw=False))
                socket.send(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield endpoint, received, answers
    finally:
        stop.set()
        thread.join(5)
        socket.close(linger=0)


def test_the_client_sends_a_map_and_returns_the_answer_without_ok(
    answering: tuple[str, list[dict[str, Any]], list[bytes]],
) -> None:
    endpoint, received, answers = answering
    answers.append(msgpack.packb({"ok": True, "plugged": False}))
    assert NhiReaderControl(endpoint).call("insert", slot="hc", profile="hc-pin") == {"plugged": False}
    assert received == [{"op": "insert", "slot": "hc", "profile": "hc-pin"}]


@pytest.mark.parametrize(
    "raw, status, message",
    [
        (msgpack.packb({"ok": False, "status": 404, "error": "no such slot"}), 404, "no such slot"),
        (msgpack.packb({"ok": False}), 502, "the bench NHI reader refused"),
        (msgpack.packb([1, 2]), 502, "the bench NHI reader answered something that is not a map"),
        (b"\xc1 not msgpack", 502, "the bench NHI reader answered something that is not a map"),
    ],
)
def test_the_client_raises_a_refusal(
    answering: tuple[str, list[dict[str, Any]], list[bytes]], raw: bytes, status: int, message: str
) -> None:
    endpoint, _, answers = answering
    answers.append(raw)
    with pytest.raises(NhiControlError) as raised:
        NhiReaderControl(endpoint).call("describe")
    assert (raised.value.status, raised.value.message) == (status, message)


@pytest.mark.timeout(10)
def test_the_client_gives_up_on_a_silent_reader_with_502(tmp_path: Path) -> None:
    control = NhiReaderControl(f"ipc://{tmp_path / 'nobody.sock'}", timeout=0.2)
    with pytest.raises(NhiControlError) as raised:
        control.call("describe")
    assert (raised.value.status, raised.value.message) == (502, "the bench NHI reader is not answering")


# -- the service's request handling (no pty, no socket) ------------------------------------------------


@pytest.fixture
def bench(tmp_path: Path) -> BenchNhiReader:
    return BenchNhiReader(PtyNhiReader(tmp_path / "ttyNHI0", VirtualNhiReader()))  # never started: no pty


def test_the_service_puts_any_card_in_any_slot_and_describes_it(bench: BenchNhiReader) -> None:
    assert bench.handle({"op": "insert", "slot": "hc", "profile": "hpc-doctor"}) == {"ok": True}
    described = bench.handle({"op": "describe"})
    assert described["slots"] == {"hc": {"profile": "hpc-doctor"}, "hpc": None}
    assert bench.handle({"op": "remove", "slot": "hc"}) == {"ok": True}
    assert bench.handle({"op": "describe"})["slots"] == {"hc": None, "hpc": None}


@pytest.mark.parametrize(
    "request_, status",
    [
        (None, 400),
        ([1, 2], 400),
        ({}, 400),
        ({"op": 1}, 400),
        ({"op": "shake"}, 400),
        ({"op": "insert", "slot": "hc", "profile": "hc-nobody"}, 400),
        ({"op": "insert", "slot": "hc"}, 400),
        ({"op": "insert", "slot": "sam", "profile": "hc-pin"}, 404),
        ({"op": "insert", "profile": "hc-pin"}, 404),
        ({"op": "remove", "slot": 0}, 404),
        ({"op": "keypad"}, 400),
        ({"op": "keypad", "keys": "12345678901234567"}, 400),
        ({"op": "keypad", "keys": "1234", "cancel": True}, 400),
        ({"op": "keypad", "cancel": False}, 400),
    ],
)
def test_the_service_refuses_bad_input_and_changes_nothing(
    bench: BenchNhiReader, request_: object, status: int
) -> None:
    bench.handle({"op": "insert", "slot": "hpc", "profile": "hpc-nurse"})
    before = bench.handle({"op": "describe"})
    answer = bench.handle(request_)
    assert answer["ok"] is False and answer["status"] == status and isinstance(answer["error"], str)
    assert "1234" not in json.dumps(answer, ensure_ascii=False)
    assert bench.handle({"op": "describe"}) == before
