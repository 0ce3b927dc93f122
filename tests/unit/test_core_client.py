"""The API's broker client against a real ZeroMQ ROUTER on an ipc:// path (a tiny stand-in broker)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from api.core_client import CoreClient, CoreUnavailable
from contract.protocol import CallMeta, Reply, Request, build, parse


class StandInBroker:
    """Answers each Request per `mode`: 'echo', 'silent', or 'stale-then-echo' (a wrong id first)."""

    def __init__(self, endpoint: str, mode: str) -> None:
        self.mode = mode
        self.received: list[Request] = []
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.bind(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(50):
                continue
            identity, *frames = self._socket.recv_multipart()
            request = parse(frames)
            assert isinstance(request, Request)
            self.received.append(request)
            if self.mode == "silent":
                continue
            if self.mode == "stale-then-echo":
                self._socket.send_multipart([identity, *build(Reply(id="stale", code=9, body={}))])
            self._socket.send_multipart(
                [identity, *build(Reply(id=request.id, code=0, body={"command": request.command}))]
            )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close(linger=0)


@pytest.fixture
def endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path}/api.sock"


def _failure_of(client: CoreClient) -> CoreUnavailable:
    """The call's CoreUnavailable. Not through pytest.raises: its ExceptionInfo would keep the client's frames,
    and with them a ZeroMQ context, alive into the next test, whose garbage collection then blocks on it."""
    try:
        client.call("GetStatus")
    except CoreUnavailable as error:
        return CoreUnavailable(str(error), delivered=error.delivered)
    raise AssertionError("the call did not fail")


def _broker(endpoint: str, mode: str) -> Iterator[StandInBroker]:
    broker = StandInBroker(endpoint, mode)
    try:
        yield broker
    finally:
        broker.close()


def test_a_request_gets_its_reply_with_call_metadata(endpoint: str) -> None:
    for broker in _broker(endpoint, "echo"):
        reply = CoreClient(endpoint, timeout=2).call("GetStatus", call=CallMeta(url="/api/x", uuid="u-1"))
        assert reply.code == 0 and reply.body == {"command": "GetStatus"}
        assert broker.received[0].call == CallMeta(url="/api/x", uuid="u-1")


def test_a_reply_for_another_request_is_ignored(endpoint: str) -> None:
    for _ in _broker(endpoint, "stale-then-echo"):
        assert CoreClient(endpoint, timeout=2).call("GetStatus").body == {"command": "GetStatus"}


def test_no_answer_raises_and_the_request_is_sent_once(endpoint: str) -> None:
    for broker in _broker(endpoint, "silent"):
        client = CoreClient(endpoint, timeout=0.3)
        assert _failure_of(client).delivered  # it may have run: the API must not say "nothing was done"
        assert len(broker.received) == 1


def test_no_broker_at_all_fails_fast_instead_of_queueing(endpoint: str) -> None:
    client = CoreClient(endpoint, timeout=5, connect_timeout=0.2)
    assert not _failure_of(client).delivered
    for broker in _broker(endpoint, "echo"):
        # The refused request was not queued and delivered late to the broker that came up.
        assert client.call("GetStatus").code == 0
        assert len(broker.received) == 1


def test_threads_each_get_their_own_socket(endpoint: str) -> None:
    for broker in _broker(endpoint, "echo"):
        client = CoreClient(endpoint, timeout=2)
        codes: list[int] = []
        threads = [
            threading.Thread(target=lambda: codes.append(client.call("GetStatus").code))  # noqa: B023 - joined below
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        assert codes == [0] * 8 and len(broker.received) == 8
