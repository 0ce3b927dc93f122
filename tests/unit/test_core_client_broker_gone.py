"""The API's broker client when the broker dies holding a request: an answer at once, not after the timeout."""

from __future__ import annotations

import threading
from pathlib import Path

import zmq

from api.core_client import CoreClient, CoreUnavailable
from contract.protocol import Reply, Request, build, parse
from tests.waiting import wait_for


def _receive_one(router: zmq.Socket) -> tuple[bytes, Request]:
    assert router.poll(5000), "the request never arrived"
    identity, *frames = router.recv_multipart()
    request = parse(frames)
    assert isinstance(request, Request)
    return identity, request


def test_a_broker_that_dies_with_the_request_fails_it_at_once_as_delivered(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/api.sock"
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    outcome: list[BaseException | Reply] = []
    client = CoreClient(endpoint, timeout=60)

    def call() -> None:
        try:
            outcome.append(client.call("Initialize"))
        except CoreUnavailable as error:
            outcome.append(CoreUnavailable(str(error), delivered=error.delivered))

    caller = threading.Thread(target=call)
    caller.start()
    try:
        _receive_one(router)
        router.close(linger=0)  # the broker is gone, and the request with it
        caller.join(timeout=10)  # far below the call's 60 s: only the lost connection can end it this soon
        assert not caller.is_alive(), "the call waited for a broker that no longer exists"
    finally:
        router.close(linger=0)
    [failure] = outcome
    assert isinstance(failure, CoreUnavailable) and failure.delivered  # it may have run: "check, do not retry"
    # The next call reaches the broker that took its place, on a fresh socket.
    successor = context.socket(zmq.ROUTER)
    successor.bind(endpoint)
    try:
        answered: list[Reply] = []
        second = threading.Thread(target=lambda: answered.append(client.call("GetStatus")))
        second.start()
        identity, request = _receive_one(successor)
        successor.send_multipart([identity, *build(Reply(id=request.id, code=0, body={}))])
        second.join(timeout=10)
        assert [reply.code for reply in answered] == [0]
    finally:
        successor.close(linger=0)
        context.destroy(linger=0)  # closes what a failed call left open, instead of hanging on it


def _answer_one(router: zmq.Socket, code: int) -> threading.Thread:
    def serve() -> None:
        identity, request = _receive_one(router)
        router.send_multipart([identity, *build(Reply(id=request.id, code=code, body={}))])

    server = threading.Thread(target=serve)
    server.start()
    return server


def _client_sees_no_broker(client: CoreClient) -> bool:
    """Whether the client's socket has dropped its connection (IMMEDIATE: not writable without one).

    Polled from the thread that makes the client's calls, which owns the socket.
    """
    socket, _ = client._socket()  # noqa: SLF001 - the socket's own state is what is looked at
    return not socket.poll(0, zmq.POLLOUT)


def test_an_earlier_lost_connection_does_not_fail_the_next_request(tmp_path: Path) -> None:
    """A broker restart between two calls of one thread (one socket): the second is answered by the new broker.

    Its connection is new, so the old one's end was reported before it: the call drains that report and waits
    for its own answer instead of failing as "the broker went away". The test waits until the client has seen
    the old broker go, as a real restart gives it time to (a new broker takes far longer to start than a
    socket takes to notice a dead peer); a request sent in the instant before that would go down the dead
    connection, which no client can tell from a broker that died holding it.
    """
    endpoint = f"ipc://{tmp_path}/api.sock"
    context = zmq.Context()
    client = CoreClient(endpoint, timeout=5, connect_timeout=5)
    try:
        for generation in range(3):
            router = context.socket(zmq.ROUTER)
            router.bind(endpoint)
            server = _answer_one(router, generation)
            assert client.call("GetStatus").code == generation
            server.join(timeout=10)
            router.close(linger=0)
            wait_for(lambda: _client_sees_no_broker(client), 5, "the client to notice the broker is gone")
    finally:
        context.destroy(linger=0)  # closes what a failed call left open, instead of hanging on it
