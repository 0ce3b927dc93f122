"""Server-Sent Events on the wire (the WHATWG HTML standard's `text/event-stream`): writing and reading.

Written by the live stream's resource, read by `nhi-console status --watch` and
the tests. Pure: bytes in, messages out.
"""

from __future__ import annotations

from dataclasses import dataclass


def message(event: str, data: str, id: str | None = None) -> bytes:
    """One message; `data` must hold no line break (the stream's data are single-line JSON)."""
    if "\n" in data or "\r" in data or "\n" in event or "\r" in event:
        raise ValueError("an SSE field cannot hold a line break")
    lines = [f"event: {event}"]
    if id is not None:
        lines.append(f"id: {id}")
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def comment(text: str) -> bytes:
    """A line the client ignores: a heartbeat that keeps proxies and the client's read timeout content."""
    return f": {text}\n\n".encode()


def retry(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode("ascii")


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    id: str | None
    """The last event id in force when it was dispatched (the standard's "last event ID buffer")."""


class Parser:
    """Feed it the bytes as they come; it gives back each message once its blank line has arrived.

    Comments and `retry` are read and dropped, as a browser's EventSource does (`comments` counts them, so a
    test can see a heartbeat).
    """

    def __init__(self) -> None:
        self._pending = b""
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[Message]:
        self._pending += chunk
        found: list[Message] = []
        while True:
            line, separator, rest = _split_line(self._pending)
            if not separator:
                return found
            self._pending = rest
            dispatched = self._line(line.decode("utf-8", errors="replace"))
            if dispatched is not None:
                found.append(dispatched)

    def _line(self, line: str) -> Message | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            dispatched = Message(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return dispatched
        if line.startswith(":"):
            self.comments += 1
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self.last_id = value
        return None


def _split_line(buffer: bytes) -> tuple[bytes, bytes, bytes]:
    """The first line and what follows it; a lone CR at the very end may be half of a CRLF: wait for more."""
    ends = [index for index in (buffer.find(b"\n"), buffer.find(b"\r")) if index >= 0]
    if not ends:
        return buffer, b"", b""
    index = min(ends)
    if buffer[index] == 0x0A:
        return buffer[:index], b"\n", buffer[index + 1 :]
    if index + 1 == len(buffer):
        return buffer, b"", b""
    skip = 2 if buffer[index + 1] == 0x0A else 1
    return buffer[:index], buffer[index : index + skip], buffer[index + skip :]
