"""EVENTS (ours, beyond the spec): `GET /api/events/v1/Stream`, the live stream as Server-Sent Events.

The official console must be polled. Here a page (`new EventSource(...)`) or a
HIS can watch cards go in and out, readers come and go and levels change, as
they happen. Each stream event has an id; a client that reconnects with
`Last-Event-ID` (as EventSource does by itself) gets what it missed, from the
broker's memory of the log. The first message, and the message to a client too
far behind, is a `snapshot` of everything the stream shows. Calls recorded
meanwhile come as `call-recorded` messages without an id (the Record API is the
record). What is in each event: docs/event-stream.md; no personal data.

Each stream holds a thread of its API process, so there are at most
`max_streams` per process (then 503). The stream long-polls the broker a second
at a time, so it notices a stopping server (`STOPPING`) or a broker restart
within about a second and ends; the browser reconnects.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import falcon

from api import sse
from api.core_client import CoreClient, CoreUnavailable
from api.operations import Operation, documented
from contract import commands
from contract.settings import ApiSettings
from contract.status_codes import StatusCode
from contract.stream_positions import parse_position

STOPPING = threading.Event()
"""Set when this API process is asked to stop (deploy/gunicorn_conf.py), so open streams end at once."""

WAIT_SECONDS = 1.0
"""How long one long poll of the broker waits for news: the stream's reaction time to a stop."""
RECONNECT_MILLISECONDS = 1000

EVENT_STREAM = Operation(
    "Live events (Server-Sent Events): cards, readers, levels, the session, recorded calls",
    "EVENTS",
    commands.WaitForEvents,
    arguments_from="resource",
    answer_media_type="text/event-stream",
    answer_schema={
        "type": "string",
        "description": "text/event-stream: `snapshot`, then `card-inserted`, "
        "`card-removed`, `reader-plugged`, `reader-unplugged`, `level-changed`, `session-changed`, "
        "`default-reader-changed`, `record-cleared` (each with an id), `call-recorded` (without); "
        "`: heartbeat` comments. See docs/event-stream.md.",
    },
    headers={
        "Last-Event-ID": {
            "type": "string",
            "pattern": "^[0-9]{1,18}(-[0-9]{1,6})?$",
            "description": "The id of the last event this client saw",
        }
    },
    description="Not in the 6.0 spec: the official console must be polled. Send `Last-Event-ID` to resume after "
    "that event; without it (or too far behind) the stream starts with a snapshot. Not recorded.",
)


class EventStreamResource:
    """A watch, not a call: its command is declared unrecorded, or the Record would fill with one entry per
    reconnect."""

    def __init__(
        self,
        core: CoreClient,
        *,
        heartbeat_seconds: float = ApiSettings.stream_heartbeat_seconds,
        max_streams: int = ApiSettings.max_streams,
    ) -> None:
        self._core = core
        self._heartbeat = heartbeat_seconds
        self._slots = threading.BoundedSemaphore(max_streams)
        self._max_streams = max_streams

    @documented(EVENT_STREAM)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        position = parse_position(req.get_header("Last-Event-ID"))
        if not self._slots.acquire(blocking=False):
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "5")
            resp.media = {
                "statusCode": int(StatusCode.CONSOLE_UNAVAILABLE),
                "message": f"too many live streams open ({self._max_streams} per API process); "
                "close one, or poll GET /api/common/v1/Status",
            }
            return
        try:
            # Asked before the answer starts, so a broker that is not there is an HTTP 503, not an empty stream.
            first = self._wait(
                {
                    "after": None if position is None else [position.seq, position.index],
                    "afterCall": None,
                    "waitSeconds": 0,
                }
            )
        except BaseException:
            self._slots.release()
            raise
        resp.content_type = "text/event-stream; charset=utf-8"
        resp.set_header("X-Accel-Buffering", "no")  # no-store and nosniff: api/middleware.py PrivateAnswers
        resp.stream = _Stream(self._stream(first), self._slots.release)

    def _wait(self, args: dict[str, Any]) -> dict[str, Any]:
        reply = self._core.call("WaitForEvents", args, timeout=float(args["waitSeconds"]) + 5.0)
        if reply.code != 0:
            raise CoreUnavailable(f"the broker refused the stream's poll: {reply.code}", delivered=True)
        return reply.body

    def _stream(self, news: dict[str, Any]) -> Generator[bytes, None, None]:
        yield sse.retry(RECONNECT_MILLISECONDS)
        last_write = time.monotonic()
        while True:
            chunk = render(news)
            if chunk:
                yield chunk
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= self._heartbeat:
                yield sse.comment("heartbeat")
                last_write = time.monotonic()
            if STOPPING.is_set():
                return
            try:
                news = self._wait(
                    {"after": news["position"], "afterCall": news["lastCall"], "waitSeconds": WAIT_SECONDS}
                )
            except CoreUnavailable:
                return  # the broker is restarting: the client reconnects with its Last-Event-ID


class _Stream:
    """The WSGI body: the server calls `close()` when the stream ends or its client goes, started or not (a
    generator never started would skip its own `finally`), and that gives the stream's slot back."""

    def __init__(self, messages: Generator[bytes, None, None], release: Callable[[], None]) -> None:
        self._messages = messages
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return self._messages

    def close(self) -> None:
        self._messages.close()
        release, self._release = self._release, None
        if release is not None:
            release()


def render(news: dict[str, Any]) -> bytes:
    """One broker answer as SSE messages: the snapshot (if any), the events, then the calls."""
    parts: list[bytes] = []
    position = news["position"]
    if "snapshot" in news:
        parts.append(sse.message("snapshot", _json(news["snapshot"]), f"{position[0]}-{position[1]}"))
    for event in news["events"]:
        parts.append(sse.message(event["type"], _json(event["data"]), event["id"]))
    for call in news["calls"]:
        parts.append(sse.message("call-recorded", _json(call)))
    return b"".join(parts)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
