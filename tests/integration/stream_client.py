"""A client of the console's live stream for tests: reads it in a thread, hands over messages as they arrive."""

from __future__ import annotations

import http.client
import queue
import socket
import threading
import time
from dataclasses import dataclass

from api import sse
from tests.integration.console import RunningConsole


@dataclass(frozen=True)
class Received:
    message: sse.Message
    at: float
    """time.monotonic() when it arrived."""


class StreamClient:
    def __init__(
        self, console: RunningConsole, last_event_id: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self._connection = http.client.HTTPSConnection(
            "localhost", console.port, context=console.ssl_context(), timeout=30
        )
        all_headers = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id is not None:
            all_headers["Last-Event-ID"] = last_event_id
        self._connection.request("GET", "/api/events/v1/Stream", headers=all_headers)
        self._socket = self._connection.sock
        self.response = self._connection.getresponse()
        self.parser = sse.Parser()
        self._messages: queue.Queue[Received | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if self.response.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.response.read1(65536):
                for message in self.parser.feed(chunk):
                    self._messages.put(Received(message, time.monotonic()))
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by the test, or by the console
        finally:
            self._messages.put(None)

    def next(self, timeout: float = 10) -> Received:
        received = self._messages.get(timeout=timeout)
        if received is None:
            raise EOFError("the stream ended")
        return received

    def until(self, event: str, timeout: float = 10) -> list[Received]:
        """Every message up to and including the first `event` one."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            received = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(received)
            if received.message.event == event:
                return seen

    def take(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        return [self.next(max(0.01, deadline - time.monotonic())) for _ in range(count)]

    def ended(self, timeout: float) -> bool:
        """Whether the console ends the stream within `timeout` (messages before the end are dropped)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.next(max(0.01, deadline - time.monotonic()))
        except EOFError:
            return True
        except queue.Empty:
            return False

    def close(self) -> None:
        """Hang up; the reading thread ends before the connection is torn down under it."""
        try:
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the reading thread, which close() alone may not
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._connection.close()
        self.response.close()
