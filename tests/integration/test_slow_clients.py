"""Slow and silent clients cannot stop the API (issue 20, "hostile callers"; deploy/guarded_worker.py).

Before the guarded worker, about 60 connections that each sent one byte held every thread of the API's two
processes, and Status stopped answering. Here hundreds of connections send nothing, or their ClientHello or their
request head a byte a second, or never close after an answer, while Status is called on fresh connections; every
call must be answered within its 1 s timeout. Answers are counted, never timed more finely than that.
"""

from __future__ import annotations

import http.client
import resource
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from deploy.head_guard import HANDSHAKE_SECONDS, HEAD_SECONDS
from tests.integration.console import RunningConsole, running_console
from tests.integration.hostile_clients import (
    HEAD,
    STATUS,
    client_hello,
    connect,
    connect_tls,
    held,
    raise_descriptor_limit,
    trickling,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HOSTILE = 500
"""Connections of each kind a test holds open: ten times what stopped gthread."""
CALLS = 50
CALL_TIMEOUT = 1.0
"""Each Status call's client timeout (per socket operation: connect, handshake, send, read)."""
NEVER_CLOSING = 16
"""Clients that never close after a closing answer: fewer than one API process's threads (see the test)."""
NEEDED_DESCRIPTORS = 4 * HOSTILE
"""The test process holds its hostile sockets, and the console's processes inherit its limit."""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningConsole]:
    """One console for the module, started after the descriptor limit is raised so that its processes inherit it."""
    soft, hard = raise_descriptor_limit(NEEDED_DESCRIPTORS)
    try:
        with running_console(tmp_path_factory.mktemp("slow-clients") / "data") as running:
            yield running
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def status_calls_answered(console: RunningConsole, calls: int = CALLS) -> int:
    """`calls` Status calls one after another, each on a fresh HTTPS connection with a 1 s timeout: how many were
    answered 200 (a fresh connection goes through accept, handshake and head, where the hostile ones wait)."""
    answered = 0
    for _ in range(calls):
        connection = http.client.HTTPSConnection(
            "localhost", console.port, context=console.ssl_context(), timeout=CALL_TIMEOUT
        )
        try:
            connection.request("GET", STATUS)
            response = connection.getresponse()
            response.read()
            answered += response.status == 200
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
    return answered


def closed_by_server(sock: socket.socket, by: float) -> float:
    """Wait until `by` (monotonic) for the console to close `sock`, which it does without sending anything; when."""
    sock.settimeout(max(by - time.monotonic(), 0.001))
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        pass
    except TimeoutError:
        pytest.fail("the console did not close the connection by its deadline plus 10 s")
    return time.monotonic()


def test_the_console_answers_before_any_hostile_connection(console: RunningConsole) -> None:
    """The baseline the other tests compare with: the same calls, nothing hostile."""
    assert status_calls_answered(console) == CALLS


def test_status_answers_past_500_connections_that_send_nothing(console: RunningConsole) -> None:
    with held(lambda: connect(console), HOSTILE):
        assert status_calls_answered(console) == CALLS


def test_status_answers_past_500_handshakes_sent_a_byte_a_second(console: RunningConsole) -> None:
    with held(lambda: connect(console), HOSTILE) as sockets, trickling(sockets, client_hello()):
        assert status_calls_answered(console) == CALLS


def test_status_answers_past_500_request_heads_sent_a_byte_a_second(console: RunningConsole) -> None:
    with held(lambda: connect_tls(console), HOSTILE) as sockets, trickling(sockets, HEAD):
        assert status_calls_answered(console) == CALLS


def test_status_answers_past_kept_alive_connections_sending_their_next_head_a_byte_a_second(
    console: RunningConsole,
) -> None:
    def answered_then_kept_alive() -> socket.socket:
        tls = connect_tls(console)
        tls.sendall(HEAD)
        answer = b""
        while b"\r\n\r\n" not in answer:  # Status's answer is small: its head and body come in one record
            answer += tls.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        return tls

    with held(answered_then_kept_alive, HOSTILE // 5) as sockets, trickling(sockets, HEAD):
        assert status_calls_answered(console) == CALLS


def test_status_answers_past_clients_that_never_close_after_a_closing_answer(console: RunningConsole) -> None:
    """gthread waited up to 2 s for each such client's close in its main loop, blocking the whole process: 16 of
    them (fewer than one process's 24 threads, so that no thread ran short) cost it 9 of the 50 calls. The requests
    go out together, once every connection is open, so that the closes come together too."""
    with held(lambda: connect_tls(console), NEVER_CLOSING) as sockets:
        for tls in sockets:
            tls.sendall(HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))  # then neither read nor closed
        assert status_calls_answered(console) == CALLS


def test_unfinished_handshakes_and_heads_are_closed_after_their_deadlines(console: RunningConsole) -> None:
    """Closed by the console, a handshake `HANDSHAKE_SECONDS` after accept and a head `HEAD_SECONDS` after its
    first byte (a new connection's, and a kept-alive one's next), none held open by a thread waiting on it. The
    bounds asserted are coarse: not before half the deadline, and within it plus 10 s."""
    silent = connect(console)
    hello = connect(console)
    hello.sendall(client_hello()[:10])
    head = connect_tls(console)
    head.sendall(HEAD[:20])
    kept = connect_tls(console)
    kept.sendall(HEAD)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += kept.recv(65536)
    kept.sendall(HEAD[:1])
    began = time.monotonic()
    try:
        for sock, deadline in ((silent, HANDSHAKE_SECONDS), (hello, HANDSHAKE_SECONDS), (head, HEAD_SECONDS)):
            assert closed_by_server(sock, began + deadline + 10) - began >= deadline / 2
        assert closed_by_server(kept, began + HEAD_SECONDS + 10) - began >= HEAD_SECONDS / 2
    finally:
        for sock in (silent, hello, head, kept):
            sock.close()
    assert status_calls_answered(console, 5) == 5


def test_a_head_sent_a_byte_a_record_or_pipelined_is_answered(console: RunningConsole) -> None:
    """The guard's read of a head, whatever its pieces: one byte per TLS record, and two requests in one write
    (the second read ahead into gunicorn's parser, then given back to the guard)."""
    with connect_tls(console) as tls:
        for index in range(len(HEAD)):
            tls.sendall(HEAD[index : index + 1])
        answers = read_answers(tls, 1)
    assert answers[0].startswith(b"HTTP/1.1 200 ")
    with connect_tls(console) as tls:
        tls.sendall(HEAD + HEAD)
        answers = read_answers(tls, 2)
    assert [answer[:13] for answer in answers] == [b"HTTP/1.1 200 "] * 2


def test_a_head_over_64_kib_is_refused_with_431(console: RunningConsole) -> None:
    with connect_tls(console) as tls:
        tls.sendall(HEAD[:-2] + b"X-Padding: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = b""
        try:
            while chunk := tls.recv(65536):
                answer += chunk
        except (ConnectionResetError, ssl.SSLEOFError):
            pass
    assert answer.startswith(b"HTTP/1.1 431 ")


def read_answers(tls: ssl.SSLSocket, count: int) -> list[bytes]:
    """`count` HTTP answers with Content-Length bodies, read off `tls`."""
    buffer = b""
    answers: list[bytes] = []
    while len(answers) < count:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = buffer[:end].decode()
            length = int(
                next(line.split(":", 1)[1] for line in head.split("\r\n") if line.lower().startswith("content-length:"))
            )
            if len(buffer) >= end + 4 + length:
                answers.append(buffer[: end + 4 + length])
                buffer = buffer[end + 4 + length :]
                continue
        chunk = tls.recv(65536)
        assert chunk, "the console closed the connection before answering"
        buffer += chunk
    return answers
