"""The live stream's wire (api/sse.py), its resource (api/resources/events.py) over a fake broker, and the
terminal watcher's view (deploy/status_watch.py)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import falcon
import falcon.testing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import sse
from api.app import StreamSettings, create_app
from api.core_client import CoreUnavailable
from api.resources.common import VersionInfo
from contract.protocol import Reply
from deploy.status_watch import WatchView
from tests.spec_samples import EMPTY_STATUS
from tests.unit.test_api import FakeCore

HOST = {"Host": "localhost:5066"}
SNAPSHOT = {"status": EMPTY_STATUS, "readers": [{"name": "R0", "card": None}], "defaultReader": "R0"}


# --- the wire ----------------------------------------------------------------------------------------


def test_messages_and_comments_read_back() -> None:
    stream = (
        sse.retry(1000)
        + sse.comment("heartbeat")
        + sse.message("card-inserted", '{"reader":"R0"}', "5-0")
        + sse.message("call-recorded", '{"url":"/x"}')
    )
    parser = sse.Parser()
    messages = parser.feed(stream)
    assert [(m.event, m.data, m.id) for m in messages] == [
        ("card-inserted", '{"reader":"R0"}', "5-0"),
        ("call-recorded", '{"url":"/x"}', "5-0"),  # no id of its own: the last one stays in force
    ]
    assert parser.comments == 1 and parser.last_id == "5-0"


def test_line_breaks_of_every_kind_and_multi_line_data() -> None:
    parser = sse.Parser()
    assert [(m.event, m.data) for m in parser.feed(b"event: a\r\ndata: 1\rdata: 2\n\r\n: c\n\ndata:x\n\n")] == [
        ("a", "1\n2"),
        ("message", "x"),
    ]


def test_a_field_cannot_carry_a_line_break() -> None:
    with pytest.raises(ValueError):
        sse.message("a", "1\n2")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["snapshot", "card-removed", "level-changed"]),
            st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=30),
        ),
        max_size=8,
    ),
    st.lists(st.integers(min_value=1, max_value=40), max_size=20),
)
def test_any_chunking_reads_the_same_messages(messages: list[tuple[str, str]], cuts: list[int]) -> None:
    wire = b"".join(sse.message(event, data, f"{index}-0") for index, (event, data) in enumerate(messages))
    parser, found, start = sse.Parser(), [], 0
    for cut in cuts:
        found += parser.feed(wire[start : start + cut])
        start += cut
    found += parser.feed(wire[start:])
    assert [(m.event, m.data, m.id) for m in found] == [
        (event, data, f"{index}-0") for index, (event, data) in enumerate(messages)
    ]


# --- the resource over a fake broker ---------------------------------------------------------------------


class StreamingCore(FakeCore):
    """Answers WaitForEvents from a script, then goes away (which ends the stream)."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        super().__init__()
        self.answers = answers

    def call(
        self, command: str, args: dict[str, Any] | None = None, call: Any = None, timeout: float | None = None
    ) -> Reply:
        if command != "WaitForEvents":
            return super().call(command, args, call, timeout)
        super().call(command, args, call, timeout)
        if not self.answers:
            raise CoreUnavailable("gone", delivered=True)
        return Reply(id="r", code=0, body=self.answers.pop(0))


def client_for(core: FakeCore, max_streams: int = 8) -> falcon.testing.TestClient:
    stream = StreamSettings(heartbeat_seconds=15, max_streams=max_streams)
    app = create_app(core, VersionInfo("1", "/x"), stream=stream)  # type: ignore[arg-type]  # a stand-in core
    return falcon.testing.TestClient(app, headers=HOST)


def test_a_stream_is_a_snapshot_then_events_and_calls_then_ends_when_the_broker_goes() -> None:
    core = StreamingCore(
        [
            {"position": [3, 0], "lastCall": 9, "events": [], "calls": [], "snapshot": SNAPSHOT},
            {
                "position": [4, 1],
                "lastCall": 10,
                "calls": [{"url": "/api/common/v1/Status", "statusCode": 0}],
                "events": [
                    {"id": "4-0", "type": "card-inserted", "data": {"reader": "R0", "kind": "hc"}},
                    {"id": "4-1", "type": "level-changed", "data": {"card": "hc", "status": 1}},
                ],
            },
        ]
    )
    response = client_for(core).simulate_get("/api/events/v1/Stream")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    messages = sse.Parser().feed(response.content)
    assert [(m.event, m.id) for m in messages] == [
        ("snapshot", "3-0"),
        ("card-inserted", "4-0"),
        ("level-changed", "4-1"),
        ("call-recorded", "4-1"),
    ]
    assert json.loads(messages[0].data) == SNAPSHOT
    polls = [sent.args for sent in core.sent if sent.command == "WaitForEvents"]
    assert polls[0] == {"after": None, "afterCall": None, "waitSeconds": 0}
    assert polls[1] == {"after": [3, 0], "afterCall": 9, "waitSeconds": 1.0}  # from where the snapshot stood
    assert polls[2] == {"after": [4, 1], "afterCall": 10, "waitSeconds": 1.0}
    assert all(sent.call is None for sent in core.sent)  # a watch, not a recorded call


def test_last_event_id_resumes_and_a_malformed_one_starts_afresh() -> None:
    core = StreamingCore([{"position": [8, 0], "lastCall": 1, "events": [], "calls": []}])
    client_for(core).simulate_get("/api/events/v1/Stream", headers={"Last-Event-ID": "7-2"})
    assert core.sent[0].args["after"] == [7, 2]
    core = StreamingCore([{"position": [8, 0], "lastCall": 1, "events": [], "calls": [], "snapshot": SNAPSHOT}])
    client_for(core).simulate_get("/api/events/v1/Stream", headers={"Last-Event-ID": "seven"})
    assert core.sent[0].args["after"] is None


def test_a_broker_that_is_not_there_is_a_503_and_gives_its_slot_back() -> None:
    core = StreamingCore([])
    client = client_for(core, max_streams=1)
    for _ in range(3):  # the one slot is free again after each refusal
        response = client.simulate_get("/api/events/v1/Stream")
        assert response.status_code == 503 and response.json["statusCode"] == 1099


def test_streams_beyond_the_limit_are_refused_until_one_ends() -> None:
    answer = {"position": [1, 0], "lastCall": 0, "events": [], "calls": [], "snapshot": SNAPSHOT}
    core = StreamingCore([dict(answer) for _ in range(4)])
    app = create_app(core, VersionInfo("1", "/x"), stream=StreamSettings(max_streams=1))  # type: ignore[arg-type]  # a stand-in core
    environ = falcon.testing.create_environ("/api/events/v1/Stream", headers=HOST)
    started: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        started.append(status)
        return lambda data: None

    body = app(environ, start_response)  # open, not yet read
    refused = falcon.testing.TestClient(app, headers=HOST).simulate_get("/api/events/v1/Stream")
    assert started == ["200 OK"] and refused.status_code == 503
    assert hasattr(body, "close")
    body.close()  # the client went away before a byte was read: the slot comes back all the same
    assert falcon.testing.TestClient(app, headers=HOST).simulate_get("/api/events/v1/Stream").status_code == 200


def test_a_disallowed_origin_gets_no_stream() -> None:
    core = StreamingCore([{"position": [1, 0], "lastCall": 0, "events": [], "calls": [], "snapshot": SNAPSHOT}])
    core.replies["ListCorsHosts"] = Reply(id="r", code=0, body={"cors": ["localhost"]})
    response = client_for(core).simulate_get("/api/events/v1/Stream", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert not [sent for sent in core.sent if sent.command == "WaitForEvents"]


def test_the_consoles_own_pages_are_always_allowed() -> None:
    core = StreamingCore([])
    core.replies["ListCorsHosts"] = Reply(id="r", code=0, body={"cors": []})  # not even localhost
    core.replies["GetStatus"] = Reply(id="r", code=0, body={"status": EMPTY_STATUS})
    client = client_for(core)
    own = client.simulate_get("/api/common/v1/Status", headers={"Origin": "https://localhost:5066"})
    assert own.status_code == 200 and own.headers["access-control-allow-origin"] == "https://localhost:5066"
    for other in ("http://localhost:5066", "https://localhost:5067", "https://127.0.0.1:5066"):
        assert client.simulate_get("/api/common/v1/Status", headers={"Origin": other}).status_code == 403


# --- the terminal watcher -------------------------------------------------------------------------------


def test_the_watcher_folds_the_stream_into_lines_and_a_screen() -> None:
    view = WatchView()
    now = datetime.datetime(2026, 12, 3, 9, 30, 5)
    snapshot = sse.Message("snapshot", json.dumps(SNAPSHOT), "3-0")
    assert view.apply(snapshot, now) == "09:30:05 snapshot: SAM 0, staff card 0, health card 0"
    inserted = sse.Message("card-inserted", json.dumps({"reader": "R0", "kind": "hc"}), "4-0")
    assert view.apply(inserted, now) == "09:30:05 card-inserted reader=R0 kind=hc"
    level = sse.Message(
        "level-changed",
        json.dumps({"card": "hc", "status": 1, "type": 1, "expireTime": None, "hasPin": None, "verifiedPin": None}),
        "4-1",
    )
    line = view.apply(level, now)
    assert line is not None and line.endswith("| SAM 0, staff card 0, health card 1")
    screen = view.screen("https://localhost:5066")
    assert "health card          1 (present), physical" in screen and "R0 (default): hc" in screen
