"""`nhi-console status --watch`: the console's state, live, from its event stream (`/api/events/v1/Stream`).

On a terminal the screen is redrawn (the status table, the readers, the last
events); into a pipe or a file it writes one line per event, which is what a
log or a test reads. A lost connection is retried every second with the last
event id, so nothing in between is missed.
"""

from __future__ import annotations

import datetime
import http.client
import json
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from api import sse
from deploy.status_table import render_status_table

RECENT = 10
CARD_LABELS = {"sam": "SAM", "hpc": "staff card", "hc": "health card"}


@dataclass
class WatchView:
    """What the watcher knows, folded from the stream's messages (pure)."""

    status: dict[str, Any] | None = None
    readers: dict[str, str | None] = field(default_factory=dict)
    default_reader: str | None = None
    recent: list[str] = field(default_factory=list)

    def apply(self, message: sse.Message, now: datetime.datetime) -> str | None:
        """Fold one message in; the line it is worth in the log (None for none)."""
        data = json.loads(message.data) if message.data else {}
        if message.event == "snapshot":
            self.status = data["status"]
            self.readers = {reader["name"]: reader["card"] for reader in data["readers"]}
            self.default_reader = data["defaultReader"]
            return f"{now:%H:%M:%S} snapshot: {self.lights()}"
        if message.event in ("card-inserted", "reader-plugged"):
            self.readers[data["reader"]] = data.get("kind")
        elif message.event == "card-removed":
            self.readers[data["reader"]] = None
        elif message.event == "reader-unplugged":
            self.readers.pop(data["reader"], None)
        elif message.event == "level-changed" and self.status is not None:
            self.status[data["card"]] = {key: value for key, value in data.items() if key != "card"}
        elif message.event == "session-changed" and self.status is not None:
            self.status.update(data)
        elif message.event == "default-reader-changed":
            self.default_reader = data["reader"]
        line = f"{now:%H:%M:%S} {message.event} " + " ".join(f"{key}={value}" for key, value in data.items())
        if message.event == "level-changed":
            line += f" | {self.lights()}"
        self.recent = (self.recent + [line.rstrip()])[-RECENT:]
        return line.rstrip()

    def lights(self) -> str:
        if self.status is None:
            return "-"
        return ", ".join(f"{CARD_LABELS[card]} {self.status[card]['status']}" for card in ("sam", "hpc", "hc"))

    def screen(self, url: str) -> str:
        parts = [render_status_table(self.status, url) if self.status else f"console   {url}", "", "readers:"]
        for name, kind in sorted(self.readers.items()):
            mark = " (default)" if name == self.default_reader else ""
            parts.append(f"  {name}{mark}: {kind or '-'}")
        parts += ["", "recent events:", *(f"  {line}" for line in self.recent)]
        return "\n".join(parts)


def watch(
    host: str,
    port: int,
    context: ssl.SSLContext,
    out: TextIO = sys.stdout,
    *,
    stop: threading.Event | None = None,
    redraw: bool | None = None,
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now().astimezone(),
) -> int:
    """Follow the stream until `stop` is set (or forever); reconnect with the last event id when it drops."""
    stop = stop or threading.Event()
    redraw = out.isatty() if redraw is None else redraw
    url = f"https://{host}:{port}"
    view = WatchView()
    last_id: str | None = None
    while not stop.is_set():
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=60)
        try:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
            connection.request("GET", "/api/events/v1/Stream", headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                print(f"{url} answered HTTP {response.status}: {response.read(500)!r}; retrying", file=out, flush=True)
            else:
                parser = sse.Parser()
                while not stop.is_set():
                    chunk = response.read1(65536)
                    if not chunk:
                        break  # the console ended the stream (stopping, or its core restarting)
                    for message in parser.feed(chunk):
                        line = view.apply(message, clock())
                        last_id = parser.last_id
                        if redraw:
                            out.write("\x1b[H\x1b[2J" + view.screen(url) + "\n")
                        elif line:
                            out.write(line + "\n")
                        out.flush()
        except (OSError, http.client.HTTPException) as error:
            print(f"{url}: {error}; reconnecting", file=out, flush=True)
        finally:
            connection.close()
        stop.wait(1.0)
    return 0
