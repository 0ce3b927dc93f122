"""The API side of the wire: one DEALER socket per thread, made after gunicorn forks.

Lazy Pirate style: a request that gets no answer within its timeout closes its
socket (so a late reply or a queued request can never surface later) and
raises `CoreUnavailable`.  The client never resends on its own: a command that
may have run once must not run twice.  A broker that dies holding a request
(its connection drops) will never answer it, whoever restarts: the request
fails at once instead of waiting out its timeout (a minute, for a flow).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from contract.deadlines import REQUEST_SECONDS
from contract.protocol import CallMeta, ProtocolError, Reply, Request, build, parse


class CoreUnavailable(Exception):
    """The broker could not be reached, or did not answer in time (restarting, or overloaded).

    `delivered` says which: False means the request never left (nothing ran: safe to retry); True means
    the broker may have run it (a card step, a DC call) and only its answer is missing.
    """

    def __init__(self, message: str, *, delivered: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered


class CoreClient:
    def __init__(self, endpoint: str, timeout: float = REQUEST_SECONDS, connect_timeout: float = 1.0) -> None:
        self._endpoint = endpoint
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._context: zmq.Context | None = None
        self._context_pid = -1
        self._context_lock = threading.Lock()

    def _socket(self) -> tuple[zmq.Socket, zmq.Socket]:
        with self._context_lock:
            if self._context is None or self._context_pid != os.getpid():
                # A context inherited across fork is unusable: make ours in this process.
                self._context = zmq.Context()
                self._context_pid = os.getpid()
                self._local = threading.local()
        socket: zmq.Socket | None = getattr(self._local, "socket", None)
        if socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a broker that is not there
            socket.connect(self._endpoint)
            self._local.socket = socket
            self._local.monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        return socket, self._local.monitor

    def _discard(self) -> None:
        socket = getattr(self._local, "socket", None)
        if socket is not None:
            socket.disable_monitor()
            self._local.monitor.close(linger=0)
            socket.close(linger=0)
            self._local.socket = None
            self._local.monitor = None

    def call(
        self,
        command: str,
        args: dict[str, Any] | None = None,
        call: CallMeta | None = None,
        timeout: float | None = None,
    ) -> Reply:
        socket, monitor = self._socket()
        request = Request(id=uuid.uuid4().hex, command=command, args=args or {}, call=call)
        if not socket.poll(int(self._connect_timeout * 1000), zmq.POLLOUT):  # pyzmq takes whole milliseconds
            self._discard()
            raise CoreUnavailable("no broker connected")
        _drain(monitor)  # a connection lost before this request says nothing about it
        try:
            socket.send_multipart(build(request), zmq.NOBLOCK)
        except zmq.Again as error:
            self._discard()
            raise CoreUnavailable("broker not accepting requests") from error
        budget_ms = (timeout if timeout is not None else self._timeout) * 1000
        deadline = _now_ms() + budget_ms
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        while True:
            remaining = deadline - _now_ms()
            ready = dict(poller.poll(int(remaining))) if remaining > 0 else {}
            if not ready:
                self._discard()
                raise CoreUnavailable(f"no answer to {command} within {budget_ms / 1000:.1f}s", delivered=True)
            if socket not in ready:
                if _lost_connection(monitor):
                    self._discard()
                    raise CoreUnavailable(f"the broker went away before answering {command}", delivered=True)
                continue
            try:
                reply = parse(socket.recv_multipart())
            except ProtocolError:
                continue
            if isinstance(reply, Reply) and reply.id == request.id:
                return reply


def _now_ms() -> float:
    return time.monotonic() * 1000


def _drain(monitor: zmq.Socket) -> None:
    while monitor.poll(0, zmq.POLLIN):
        recv_monitor_message(monitor)


def _lost_connection(monitor: zmq.Socket) -> bool:
    """Whether the waiting monitor events include the broker's connection dropping (all of them are read)."""
    lost = False
    while monitor.poll(0, zmq.POLLIN):
        lost = lost or recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    return lost
