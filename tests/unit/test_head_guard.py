"""The guarded worker's pure rules (deploy/head_guard.py): when a head is complete or too large, and the deadlines."""

from __future__ import annotations

import pytest

from deploy.head_guard import (
    HANDSHAKE_SECONDS,
    HEAD_SECONDS,
    LINGER_MAX_BYTES,
    LINGER_SECONDS,
    MAX_HEAD_BYTES,
    Deadlines,
    HeadState,
    PendingHead,
    Stage,
    head_state,
)

HEAD = b"GET /api/common/v1/Status HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize(
    ("buffer", "state"),
    [
        (b"", HeadState.INCOMPLETE),
        (b"G", HeadState.INCOMPLETE),
        (HEAD[:-1], HeadState.INCOMPLETE),
        (HEAD[:-2], HeadState.INCOMPLETE),
        (HEAD, HeadState.COMPLETE),
        (HEAD + b'{"body": 1}', HeadState.COMPLETE),  # a body (or the next request) read along is fine
        (b"GET / HTTP/1.0\r\n\r\n", HeadState.COMPLETE),  # a request line and no field
        (b"\r\n" + HEAD, HeadState.COMPLETE),  # the one empty line RFC 9112 lets come first
        (b"\r\n", HeadState.INCOMPLETE),
        (b"\r\n\r", HeadState.INCOMPLETE),
        # that empty line is not itself the end of a head: the parser skips it and reads on
        (b"\r\nGET / HTTP/1.1\r\n", HeadState.INCOMPLETE),
        # bare LFs never end a head for gunicorn's parser: wait, never hand over a head the parser would read on
        (b"GET / HTTP/1.1\nHost: x\n\n", HeadState.INCOMPLETE),
    ],
)
def test_a_head_is_complete_at_its_blank_line(buffer: bytes, state: HeadState) -> None:
    assert head_state(buffer) is state


def test_a_head_over_the_limit_is_too_large_complete_or_not() -> None:
    limit = len(HEAD)
    assert head_state(HEAD, limit=limit) is HeadState.COMPLETE
    assert head_state(HEAD[:-1] + b"X\r\n\r\n", limit=limit) is HeadState.TOO_LARGE
    assert head_state(b"X" * (limit - 1), limit=limit) is HeadState.INCOMPLETE
    assert head_state(b"X" * limit, limit=limit) is HeadState.TOO_LARGE  # its blank line could only end past it
    assert head_state(b"GET / HTTP/1.1\r\nA: " + b"a" * MAX_HEAD_BYTES) is HeadState.TOO_LARGE


def test_a_head_arriving_a_byte_at_a_time_is_found_whatever_the_split() -> None:
    for data in (HEAD, b"\r\n" + HEAD):
        pending = PendingHead.reading(0.0)
        states = [pending.received(data[index : index + 1], 0.0) for index in range(len(data))]
        assert states == [HeadState.INCOMPLETE] * (len(data) - 1) + [HeadState.COMPLETE]
        assert bytes(pending.buffer) == data


def test_the_handshake_has_its_deadline_from_accept() -> None:
    pending = PendingHead.handshaking(100.0)
    assert (pending.stage, pending.deadline) == (Stage.HANDSHAKE, 100.0 + HANDSHAKE_SECONDS)
    pending.stirred(101.0)  # handshake bytes are not a head's
    assert (pending.stage, pending.deadline) == (Stage.HANDSHAKE, 100.0 + HANDSHAKE_SECONDS)


def test_a_ready_connection_waits_as_kept_alive_and_its_head_clock_starts_at_the_first_byte() -> None:
    pending = PendingHead.handshaking(100.0)
    pending.shook_hands(101.0, idle_seconds=75.0)
    assert (pending.stage, pending.deadline) == (Stage.IDLE, 176.0)
    assert pending.received(b"GET / HT", 150.0) is HeadState.INCOMPLETE
    assert (pending.stage, pending.deadline) == (Stage.HEAD, 150.0 + HEAD_SECONDS)
    assert pending.received(b"TP/1.1\r\n", 155.0) is HeadState.INCOMPLETE
    assert pending.deadline == 150.0 + HEAD_SECONDS  # later bytes never push it back
    assert pending.received(b"\r\n", 156.0) is HeadState.COMPLETE


def test_readable_before_any_whole_tls_record_starts_the_head_clock() -> None:
    """A byte a second of a TLS record yields no plaintext, but it is a head's first byte all the same."""
    pending = PendingHead.idle(0.0, idle_seconds=75.0)
    pending.stirred(3.0)
    assert (pending.stage, pending.deadline) == (Stage.HEAD, 3.0 + HEAD_SECONDS)
    pending.stirred(4.0)
    assert pending.deadline == 3.0 + HEAD_SECONDS


def test_a_read_ahead_given_back_is_judged_before_any_read() -> None:
    assert PendingHead.reading(0.0, HEAD + b"GET").state() is HeadState.COMPLETE
    partial = PendingHead.reading(7.0, b"GET / HTTP/1.1\r\n")
    assert partial.state() is HeadState.INCOMPLETE
    assert (partial.stage, partial.deadline) == (Stage.HEAD, 7.0 + HEAD_SECONDS)


def test_a_lingering_close_ends_at_the_clients_close_or_at_its_byte_cap() -> None:
    pending = PendingHead.lingering(10.0)
    assert (pending.stage, pending.deadline) == (Stage.LINGER, 10.0 + LINGER_SECONDS)
    assert pending.drained(100)
    assert not pending.drained(0)
    capped = PendingHead.lingering(0.0)
    assert capped.drained(LINGER_MAX_BYTES - 1)
    assert not capped.drained(1)


def test_deadlines_come_due_in_order_and_each_once() -> None:
    deadlines: Deadlines[str] = Deadlines()
    deadlines.set("a", 5.0)
    deadlines.set("b", 3.0)
    deadlines.set("c", 9.0)
    assert deadlines.next_due() == 3.0
    assert deadlines.due(2.9) == []
    assert deadlines.due(5.0) == ["b", "a"]
    assert deadlines.due(5.0) == []
    assert list(deadlines) == ["c"] and len(deadlines) == 1


def test_a_moved_or_discarded_deadline_is_not_due_at_its_old_time() -> None:
    deadlines: Deadlines[str] = Deadlines()
    deadlines.set("moved later", 1.0)
    deadlines.set("moved later", 8.0)
    deadlines.set("moved earlier", 9.0)
    deadlines.set("moved earlier", 2.0)
    deadlines.set("gone", 1.5)
    deadlines.discard("gone")
    assert deadlines.next_due() == 2.0
    assert deadlines.due(3.0) == ["moved earlier"]
    assert "gone" not in deadlines
    assert deadlines.due(8.0) == ["moved later"]
    assert deadlines.next_due() is None
    deadlines.set("back and forth", 4.0)
    deadlines.set("back and forth", 6.0)
    deadlines.set("back and forth", 4.0)
    assert deadlines.due(10.0) == ["back and forth"]


def test_a_cap_brings_every_deadline_forward_and_holds_for_later_ones() -> None:
    deadlines: Deadlines[str] = Deadlines()
    deadlines.set("early", 1.0)
    deadlines.set("late", 75.0)
    deadlines.cap(2.0)
    assert deadlines.get("early") == 1.0 and deadlines.get("late") == 2.0
    assert deadlines.set("after the cap", 50.0) == 2.0
    deadlines.cap(10.0)  # a cap never moves the ceiling later
    assert deadlines.set("another", 50.0) == 2.0
    assert deadlines.due(2.0) == ["early", "late", "after the cap", "another"]
