"""Slow and silent clients of the console's API, for tests/integration/test_slow_clients.py and bench/slow_clients.py:
connections that send nothing, or their TLS ClientHello or request head a byte a second (issue 20)."""

from __future__ import annotations

import resource
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from tests.integration.console import RunningConsole

STATUS = "/api/common/v1/Status"
HEAD = f"GET {STATUS} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: a-byte-a-second\r\n\r\n".encode()
"""A whole Status request head, for trickling or sending at once."""


def raise_descriptor_limit(wanted: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to `wanted` (at most the hard limit), before a console is started so
    that its processes inherit it too; the limits it had, to restore."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, hard


def client_hello() -> bytes:
    """The first flight of a real TLS client: what a handshake trickled a byte a second sends."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("a TLS client finished its handshake with no server")


def connect(console: RunningConsole) -> socket.socket:
    """A TCP connection to the API that has sent nothing yet."""
    return socket.create_connection(("localhost", console.port), timeout=10)


def connect_tls(console: RunningConsole) -> ssl.SSLSocket:
    """A connection to the API with its TLS handshake done, that has sent no request yet."""
    return console.ssl_context().wrap_socket(connect(console), server_hostname="localhost")


@contextmanager
def held(open_one: Callable[[], socket.socket], count: int) -> Iterator[list[socket.socket]]:
    """`count` connections opened one after another by `open_one`, closed when the block ends."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(open_one())
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


class Trickle:
    """A thread sending each socket the next byte of `data` once a second (one TLS record a byte, on TLS sockets),
    until `stop`; a socket whose send fails (the console closed it) is dropped and counted."""

    def __init__(self, sockets: Sequence[socket.socket], data: bytes) -> None:
        self._live = list(sockets)
        self._data = data
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)

    @property
    def open(self) -> int:
        """How many sockets still took their last byte."""
        return len(self._live)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        for index in range(len(self._data)):
            for sock in list(self._live):
                try:
                    sock.send(self._data[index : index + 1])
                except OSError:
                    self._live.remove(sock)
            if self._stop.wait(1.0):
                return


@contextmanager
def trickling(sockets: Sequence[socket.socket], data: bytes) -> Iterator[Trickle]:
    """`Trickle` for the length of the block."""
    trickle = Trickle(sockets, data)
    trickle.start()
    try:
        yield trickle
    finally:
        trickle.stop()


def still_open(sock: socket.socket) -> bool:
    """Whether the console has not closed a plain TCP socket that it sends nothing on (a peek, nothing read)."""
    timeout = sock.gettimeout()
    sock.settimeout(0)  # with a timeout, Python would wait for readability before the peek
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
