"""The serial framing (docs/serial-protocol.md): CRC, encoding, and the resynchronising parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.serial_protocol import (
    MAX_FRAME,
    MAX_PAYLOAD,
    SOF,
    Frame,
    FrameReader,
    answer,
    crc16_ccitt_false,
    encode,
)


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_encode_layout() -> None:
    raw = encode(Frame(7, 0x10, b"\x00\x00\xa4"))
    assert raw[:5] == bytes([SOF, 0x00, 0x03, 7, 0x10])
    assert raw[5:8] == b"\x00\x00\xa4"
    assert int.from_bytes(raw[8:], "big") == crc16_ccitt_false(raw[1:8])
    assert len(encode(Frame(0, 1, bytes(MAX_PAYLOAD)))) == MAX_FRAME


def test_frame_checks_ranges_and_hides_payload() -> None:
    with pytest.raises(ValueError):
        Frame(256, 1)
    with pytest.raises(ValueError):
        Frame(0, 1, bytes(MAX_PAYLOAD + 1))
    assert "1234" not in repr(Frame(1, 0x10, b"1234"))
    reply = answer(Frame(9, 0x30), 0x00, b"\x90\x00")
    assert (reply.seq, reply.cmd, reply.status, reply.payload) == (9, 0xB0, 0, b"\x00\x90\x00")


@pytest.mark.parametrize("payload", [b"", b"\xa5", b"\xa5" * 10, bytes(range(256)) * 4])
def test_round_trip(payload: bytes) -> None:
    frame = Frame(200, 0x21, payload)
    reader = FrameReader()
    assert reader.feed(encode(frame)) == [frame]
    assert reader.dropped == 0 and reader.buffered == 0


def test_split_byte_by_byte() -> None:
    frame = Frame(3, 0x01, b"hello")
    reader = FrameReader()
    got: list[Frame] = []
    for byte in encode(frame):
        got += reader.feed(bytes([byte]))
    assert got == [frame]


def test_two_frames_in_one_chunk() -> None:
    first, second = Frame(1, 0x01), Frame(2, 0x10, b"\x00\x00\xa4\x04\x00")
    assert FrameReader().feed(encode(first) + encode(second)) == [first, second]


def test_garbage_before_and_between_is_skipped_and_counted() -> None:
    first, second = Frame(1, 0x01, b"a"), Frame(2, 0x02, b"b")
    reader = FrameReader()
    assert reader.feed(b"\x00\x01junk" + encode(first) + b"xyz" + encode(second)) == [first, second]
    assert reader.dropped == 6 + 3


def test_bad_crc_is_dropped_and_next_frame_found() -> None:
    bad = bytearray(encode(Frame(1, 0x01, b"abc")))
    bad[-1] ^= 0xFF
    good = Frame(2, 0x01, b"def")
    reader = FrameReader()
    assert reader.feed(bytes(bad) + encode(good)) == [good]
    assert reader.dropped == len(bad)


def test_oversized_length_is_dropped_and_next_frame_found() -> None:
    good = Frame(5, 0x40)
    reader = FrameReader()
    # LEN 0xFFFF: a framing error, decided on the spot rather than after waiting for 64 KiB.
    assert reader.feed(bytes([SOF, 0xFF, 0xFF, 1, 1])) == []
    assert reader.buffered == 0
    assert reader.feed(encode(good)) == [good]
    assert reader.dropped == 5


def test_a_frame_starting_inside_a_truncated_one_is_found() -> None:
    """A truncated frame whose claimed length swallows the next frame: after the CRC fails, the parser
    restarts one byte later and finds the real frame inside the bytes it had held."""
    truncated = encode(Frame(1, 0x10, bytes(40)))[:20]
    good = Frame(2, 0x01, b"ok")
    reader = FrameReader()
    got = reader.feed(truncated + encode(good) + bytes(40))
    assert good in got


def test_buffer_is_bounded_with_a_huge_chunk() -> None:
    reader = FrameReader()
    # Every A5 claims a full-size payload: each is held until a whole maximum frame is there, then dropped.
    frames = reader.feed(bytes([SOF, 0x04, 0x00]) * 700 + encode(Frame(1, 1, b"x")))
    assert reader.buffered <= MAX_FRAME
    # The good frame sits inside the last candidate's claimed span; bytes without SOF settle it.
    frames += reader.feed(bytes(MAX_FRAME))
    assert frames == [Frame(1, 1, b"x")]
    assert reader.buffered == 0


# Fuzzing ------------------------------------------------------------------------------------------

frames_strategy = st.builds(
    Frame,
    seq=st.integers(0, 255),
    cmd=st.integers(0, 255),
    payload=st.binary(max_size=64) | st.binary(min_size=MAX_PAYLOAD - 24, max_size=MAX_PAYLOAD),
)


def _valid(frame: Frame) -> bool:
    """Every frame the parser returns must re-encode to bytes whose CRC is right (it cannot invent one)."""
    raw = encode(frame)
    return crc16_ccitt_false(raw[1:-2]) == int.from_bytes(raw[-2:], "big")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4000), chunk=st.integers(1, 1500))
def test_fuzz_arbitrary_bytes(data: bytes, chunk: int) -> None:
    reader = FrameReader()
    for start in range(0, len(data), chunk):
        for frame in reader.feed(data[start : start + chunk]):
            assert _valid(frame)
        assert reader.buffered <= MAX_FRAME


def _corrupt(raw: bytes, how: int, where: int, value: int) -> bytes:
    if not raw:
        return raw
    where %= len(raw)
    if how == 0:  # truncate
        return raw[:where]
    changed = bytearray(raw)
    changed[where] ^= value or 1  # flip at least one bit
    return bytes(changed)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.tuples(
            frames_strategy,
            st.sampled_from(["good", "corrupt", "garbage"]),
            st.integers(0, 1),
            st.integers(0, 2000),
            st.integers(0, 255),
            st.binary(max_size=50),
        ),
        max_size=8,
    ),
    tail=frames_strategy,
    chunk=st.integers(1, 1200),
)
def test_fuzz_good_frames_mixed_with_corruption(items: list, tail: Frame, chunk: int) -> None:
    stream = bytearray()
    sent_good: list[Frame] = []
    for frame, kind, how, where, value, garbage in items:
        if kind == "good":
            stream += encode(frame)
            sent_good.append(frame)
        elif kind == "corrupt":
            stream += _corrupt(encode(frame), how, where, value)
        else:
            stream += garbage
    # A corrupted frame may claim a long length and swallow what follows until its CRC fails; a frame that
    # follows enough bytes to settle that (one max frame of padding that holds no SOF) must be found.
    stream += bytes(MAX_FRAME) + encode(tail)
    reader = FrameReader()
    got: list[Frame] = []
    for start in range(0, len(stream), chunk):
        got += reader.feed(bytes(stream[start : start + chunk]))
        assert reader.buffered <= MAX_FRAME
    assert all(_valid(frame) for frame in got)
    assert got and got[-1] == tail
    # Every good frame is found, in order, unless garbage happened to hold a frame with a right CRC (one
    # chance in 65536 per candidate SOF), which could then swallow the start of a good one.
    expected = sent_good + [tail]
    if all(frame in expected for frame in got):
        assert got == expected
