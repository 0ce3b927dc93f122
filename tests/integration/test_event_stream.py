"""The live stream through the running console (`serve --sim`): real TLS, gunicorn, the broker's long polls.

An insertion arrives within a second; a client that reconnects with `Last-Event-ID` gets exactly what a client
that never left saw; heartbeats keep an idle stream alive; Origin rules hold; a stop or a broker crash ends the
stream promptly instead of hanging it; `nhi-console status --watch` follows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.console import RunningConsole, running_console
from tests.integration.stream_client import Received, StreamClient
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HEARTBEAT = 0.5
READER_0, READER_1 = "NHI Sim Reader 0", "NHI Sim Reader 1"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data", "--stream-heartbeat", str(HEARTBEAT)) as running:
        yield running


def card(console: RunningConsole, reader: str, profile: str | None) -> None:
    path = f"/api/sim/v1/Readers/{quote(reader)}/Card"
    answer = console.request("DELETE", path) if profile is None else console.request("PUT", path, {"profile": profile})
    assert answer.status == 200, answer.body


def resumable(received: list[Received]) -> list[tuple[str, str | None, object]]:
    """The messages a reconnect must give again: everything with an id of its own (not `call-recorded`)."""
    return [
        (r.message.event, r.message.id, json.loads(r.message.data))
        for r in received
        if r.message.event not in ("call-recorded", "snapshot")
    ]


def test_an_insertion_arrives_within_a_second(console: RunningConsole) -> None:
    stream = StreamClient(console)
    try:
        [snapshot] = stream.until("snapshot")
        assert {"name": READER_0, "card": "hc"} in json.loads(snapshot.message.data)["readers"]
        card(console, READER_0, None)
        stream.until("card-removed")
        started = time.monotonic()
        card(console, READER_0, "hc-pin")
        inserted = stream.until("card-inserted")[-1]
        latency = inserted.at - started
        print(f"\ncard-inserted {latency * 1000:.0f} ms after the bench was asked to insert the card")
        assert json.loads(inserted.message.data) == {"reader": READER_0, "kind": "hc"}
        assert latency < 1.0
    finally:
        stream.close()


def test_a_reconnect_with_last_event_id_misses_nothing(console: RunningConsole) -> None:
    witness = StreamClient(console)  # connected throughout: what the reconnecting client must end up with
    leaving = StreamClient(console)
    try:
        witness.until("snapshot")
        leaving.until("snapshot")
        card(console, READER_0, None)
        leaving.until("card-removed")
        last_id = leaving.parser.last_id
        leaving.close()
        # While it is away: a new reader and its card, a card out, a session with its levels, the reader gone.
        assert console.request("POST", "/api/sim/v1/Readers", {"name": "Desk 2"}).status == 200
        card(console, "Desk 2", "hc-pin")
        card(console, READER_1, None)
        assert console.request("POST", "/api/common/v1/Initial").body["statusCode"] == 0
        assert console.request("DELETE", f"/api/sim/v1/Readers/{quote('Desk 2')}").status == 200
        witness.until("card-removed")  # the first removal, the last event the leaving client saw
        seen = witness.until("reader-unplugged", timeout=15)
        missed = resumable(seen)
        assert {
            "reader-plugged",
            "card-inserted",
            "card-removed",
            "session-changed",
            "level-changed",
            "reader-unplugged",
        } <= {event for event, _, _ in missed}
        resumed = StreamClient(console, last_event_id=last_id)
        try:
            again: list[Received] = []
            while len(again) < len(missed):
                received = resumed.next()
                if received.message.event != "call-recorded":
                    again.append(received)
            assert "snapshot" not in [r.message.event for r in again]
            assert resumable(again) == missed
            print(f"\nresumed after {last_id}: {len(missed)} events, none missed, none twice")
        finally:
            resumed.close()
    finally:
        witness.close()


def test_an_idle_stream_gets_heartbeats(console: RunningConsole) -> None:
    stream = StreamClient(console)
    try:
        stream.until("snapshot")
        wait_for(lambda: stream.parser.comments >= 2, 10 * HEARTBEAT + 5, "two heartbeat comments")
    finally:
        stream.close()


def test_origin_rules_hold_for_the_stream(console: RunningConsole) -> None:
    refused = StreamClient(console, headers={"Origin": "https://evil.example"})
    assert refused.response.status == 403 and "access-control-allow-origin" not in {
        name.lower() for name, _ in refused.response.getheaders()
    }
    refused.close()
    allowed = StreamClient(console, headers={"Origin": "https://www.nhi.gov.tw"})
    try:
        assert allowed.response.status == 200
        assert allowed.response.getheader("Access-Control-Allow-Origin") == "https://www.nhi.gov.tw"
        allowed.until("snapshot")
    finally:
        allowed.close()


def test_a_broker_crash_ends_the_stream_and_the_client_resumes_after_it(console: RunningConsole) -> None:
    stream = StreamClient(console)
    try:
        stream.until("snapshot")
        card(console, READER_0, None)
        stream.until("card-removed")
        last_id = stream.parser.last_id
        [broker] = console.processes()["broker"]
        os.kill(broker, signal.SIGKILL)
        assert stream.ended(timeout=5), "the stream outlived its broker"
    finally:
        stream.close()
    wait_for(console.status_ok, 15, "the restarted broker")
    resumed = StreamClient(console, last_event_id=last_id)
    try:
        card(console, READER_0, "hc-basic")
        event = [r for r in resumed.until("card-inserted") if r.message.event != "call-recorded"]
        assert [r.message.event for r in event] == ["card-inserted"]  # nothing again, nothing lost
    finally:
        resumed.close()


def test_a_stop_ends_an_open_stream_at_once(tmp_path: Path) -> None:
    """Without the API's stop hook, a stream would run on until gunicorn's graceful timeout (5 s) killed it."""
    with running_console(tmp_path / "data") as console:
        stream = StreamClient(console)
        try:
            stream.until("snapshot")
            started = time.monotonic()
            console.process.send_signal(signal.SIGTERM)
            assert stream.ended(timeout=3.0), "the stream held on past the stop"
            ended = time.monotonic() - started
        finally:
            stream.close()
        assert console.process.wait(timeout=20) == 0
    print(f"\nthe stream ended {ended:.2f}s after the stop was asked")


def test_status_watch_follows_the_console(console: RunningConsole) -> None:
    script = Path(sys.executable).with_name("nhi-console")
    watcher = subprocess.Popen(
        [str(script), "status", "--watch", "--port", str(console.port), "--data-dir", str(console.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert " snapshot: SAM 0, staff card 0, health card 0" in first, first
        card(console, READER_0, None)
        line = watcher.stdout.readline()
        assert f"card-removed reader={READER_0} kind=hc" in line, line
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
