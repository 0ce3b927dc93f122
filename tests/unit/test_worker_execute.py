"""The worker's pure core (workers/execute.py): the answer to each request, without sockets or threads.

The worker's loop and the tests' stand-in for the broker's loop (session_harness.py) both run this code, so
what it answers here is what a running worker answers: the codes and the messages of the status codes
the broker and the API pass on.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
from collections.abc import Iterator

import pytest

from contract.protocol import Reply, Request
from contract.status_codes import StatusCode
from sim.nhi_reader import VirtualNhiReader
from sim.profiles import make_card
from sim.virtual_reader import VirtualReader
from tests.unit.virtual_nhi_link import LinkToVirtualReader
from workers.execute import Slots, bench_card_expected, execute, identify_card
from workers.nhi_reader import NhiReader
from workers.seam import CardAbsent, PresenceChanged, ReaderError, ReaderFault, ReaderGone

BENCH = "NHI Sim Reader 1"
PORT = "/dev/ttyNHI0"


def bench_reader_with(profile: str, session: int) -> tuple[VirtualReader, Slots]:
    """A bench reader holding a fresh card of `profile`, reported to the core as insertion `session`."""
    reader = VirtualReader(BENCH)
    reader.insert(make_card(profile))
    slots = Slots.of(BENCH, reader)
    change = reader.wait_for_change(0)
    assert change is not None and change.atr is not None
    slots.take_change(change, lambda: session)
    return reader, slots


def test_a_session_command_runs_on_the_card_of_its_insertion() -> None:
    _, slots = bench_reader_with("hpc-doctor", session=7)
    presence = slots.cards[BENCH]
    assert presence is not None and (presence.kind, presence.session, presence.card_type) == ("hpc", 7, 1)
    assert presence.atr == presence.atr.upper()

    reply = execute(Request(id="r1", command="ReadHpcBasic", args={"session": 7}), slots)

    assert (reply.id, reply.code) == ("r1", 0)
    assert reply.body["cardId"] == presence.card_number


def test_another_insertion_or_none_is_not_the_card_meant() -> None:
    reader, slots = bench_reader_with("hc-basic", session=7)
    other = execute(Request(id="r", command="ReadHcPinState", args={"session": 6}), slots)
    assert (other.code, other.body) == (StatusCode.NO_CARD, {"message": "a different card is in the reader"})

    reader.remove()
    slots.take_change(PresenceChanged(None), lambda: pytest.fail("a removal numbers no insertion"))
    gone = execute(Request(id="r", command="ReadHcPinState", args={"session": 7}), slots)
    assert (gone.code, gone.body) == (StatusCode.NO_CARD, {"message": "no card in the reader"})


def test_requests_the_worker_cannot_take() -> None:
    _, slots = bench_reader_with("hc-basic", session=1)
    elsewhere = execute(Request(id="r", command="ReadPublicData", reader="Another Reader"), slots)
    assert (elsewhere.code, elsewhere.body) == (
        StatusCode.BAD_PARAMETER,
        {"message": "this worker does not serve that reader"},
    )
    unknown = execute(Request(id="r", command="ReadSamInfo"), slots)
    assert (unknown.code, unknown.body) == (
        StatusCode.BAD_PARAMETER,
        {"message": "unknown worker command 'ReadSamInfo'"},
    )


def test_a_bench_control_is_run_and_its_change_awaited() -> None:
    reader, slots = bench_reader_with("hc-basic", session=1)
    remove = Request(id="r", command="ControlBackend", args={"action": "remove"})
    done = execute(remove, slots)
    assert (done.code, done.body) == (0, {})
    assert bench_card_expected(remove, done) is False
    assert reader.wait_for_change(0) == PresenceChanged(None)

    insert = Request(id="r", command="ControlBackend", args={"action": "insert", "profile": "hpc-nurse"})
    assert bench_card_expected(insert, execute(insert, slots)) is True

    wrong = Request(id="r", command="ControlBackend", args={"action": "shake"})
    refused = execute(wrong, slots)
    assert refused.code == StatusCode.BAD_PARAMETER
    assert bench_card_expected(wrong, refused) is None, "a refused control changes nothing: nothing to await"
    read = Request(id="r", command="ReadPublicData")
    assert bench_card_expected(read, Reply(id="r", code=0)) is None


@pytest.fixture
def nhi() -> Iterator[NhiReader]:
    device = VirtualNhiReader(None)
    try:
        # A clock that jumps a second per look, so every wait_for_change polls at once.
        clock = itertools.count().__next__
        yield NhiReader(PORT, link=LinkToVirtualReader(device), monotonic=clock)  # type: ignore[arg-type]  # an in-memory stand-in SerialLink
    finally:
        device.shutdown()


def test_a_device_command_of_the_nhi_reader(nhi: NhiReader) -> None:
    slots = Slots.of(PORT, nhi)
    assert set(slots.readers) == {PORT, PORT + "#hpc"} and slots.device is nhi

    reply = execute(Request(id="r", command="ReadReaderClock", reader=PORT), slots)

    assert reply.code == 0
    datetime.datetime.strptime(reply.body["readerTime"], "%Y%m%d%H%M%S")
    for_a_card = execute(Request(id="r", command="AuthenticateCardWithSam", args={"session": 3}, reader=PORT), slots)
    assert (for_a_card.code, for_a_card.body) == (StatusCode.NO_CARD, {"message": "no card in the reader"})


def test_while_the_keypad_holds_the_device_everything_else_is_answered_at_once(nhi: NhiReader) -> None:
    slots = Slots.of(PORT, nhi)
    keypad = Request(id="r", command="VerifyHcPinOnKeypad", args={"session": 1, "seconds": 30}, reader=PORT)
    assert slots.is_long_command(keypad)
    assert not slots.is_long_command(Request(id="r", command="ReadReaderClock"))

    reply = execute(Request(id="r", command="ReadReaderClock", reader=PORT), slots, device_held=True)

    assert (reply.code, reply.body) == (
        StatusCode.NHI_READER_FAILED,
        {"message": "the reader is waiting for its keypad"},
    )


class FailingReader:
    """A reader whose every APDU fails with `error`."""

    def __init__(self, error: ReaderError) -> None:
        self.error = error

    def wait_for_change(self, timeout: float) -> PresenceChanged | None:
        return None

    def transmit(self, apdu: bytes) -> bytes:
        raise self.error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (CardAbsent("pulled"), StatusCode.NO_CARD, "no card in the reader"),
        (ReaderGone("unplugged"), StatusCode.READER_IN_USE_GONE, "the reader is gone"),
        (
            ReaderFault(int(StatusCode.KEYPAD_CANCELLED), "cancelled on the keypad"),
            StatusCode.KEYPAD_CANCELLED,
            "cancelled on the keypad",
        ),
        (ReaderError("SCARD_E_PROTO_MISMATCH 0000"), StatusCode.PCSC_OTHER_ERROR, "PC/SC error: ReaderError"),
    ],
)
def test_a_reader_failure_becomes_its_status_code(error: ReaderError, code: int, message: str) -> None:
    slots = Slots.of(BENCH, FailingReader(error))
    slots.cards[BENCH] = identify_card(FailingReader(error), b"\x3b\x00", 5, worker=BENCH)

    reply = execute(Request(id="r9", command="ReadPublicData"), slots)
    in_session = execute(Request(id="r9", command="ReadHpcBasic", args={"session": 5}), slots)

    assert (reply.id, reply.code, reply.body) == ("r9", code, {"message": message})
    assert (in_session.code, in_session.body) == (code, {"message": message})
    card = slots.cards[BENCH]
    assert card is not None and card.kind == "unknown", "a card that cannot be read is still reported, as unknown"
