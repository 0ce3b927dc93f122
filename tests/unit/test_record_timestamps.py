"""The record timestamp must look exactly like .NET's DateTimeOffset "o" output,
because a HIS written against the official console parses it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlog.timestamps import format_record_timestamp

SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}[+-]\d{2}:\d{2}")

TAIPEI = timezone(timedelta(hours=8))
NEWFOUNDLAND_DST = timezone(-timedelta(hours=3, minutes=30))

# 2024-05-23T07:38:00Z, the spec's example instant (15:38 in Taipei).
SPEC_SECONDS = 1_716_449_880
SPEC_NS = SPEC_SECONDS * 1_000_000_000 + 251_427_200

YEAR_1900_NS = -2_208_988_800 * 1_000_000_000
YEAR_2200_NS = 7_258_118_400 * 1_000_000_000
FIXED_ZONES = [UTC, TAIPEI, NEWFOUNDLAND_DST, timezone(timedelta(hours=14))]


def test_spec_example() -> None:
    assert format_record_timestamp(SPEC_NS, TAIPEI) == "2024-05-23T15:38:00.2514272+08:00"


@given(
    epoch_ns=st.integers(min_value=YEAR_1900_NS, max_value=YEAR_2200_NS),
    tz=st.sampled_from(FIXED_ZONES),
)
def test_shape(epoch_ns: int, tz: timezone) -> None:
    assert SHAPE.fullmatch(format_record_timestamp(epoch_ns, tz))


@pytest.mark.parametrize(
    ("fraction_ns", "digits"),
    [
        (123_456_789, "1234567"),  # truncated, not rounded to ...568
        (999_999_999, "9999999"),  # not rounded up into the next second
        (0, "0000000"),
        (99, "0000000"),  # below one 100 ns tick
        (100, "0000001"),
        (1_000, "0000010"),
        (500_000_000, "5000000"),
    ],
)
def test_fraction_is_seven_truncated_tick_digits(fraction_ns: int, digits: str) -> None:
    formatted = format_record_timestamp(SPEC_SECONDS * 1_000_000_000 + fraction_ns, UTC)
    assert formatted == f"2024-05-23T07:38:00.{digits}+00:00"


def test_truncation_before_the_epoch_goes_to_the_earlier_tick() -> None:
    # -1 ns is 23:59:59.999999999 on 1969-12-31: floor, not toward zero.
    assert format_record_timestamp(-1, UTC) == "1969-12-31T23:59:59.9999999+00:00"


def test_utc_is_plus_zero_not_z() -> None:
    assert format_record_timestamp(0, UTC) == "1970-01-01T00:00:00.0000000+00:00"


def test_positive_offset_gives_local_wall_time() -> None:
    # 16:30Z is 00:30 the next day in Taipei: the date must roll over too.
    epoch_ns = int(datetime(2024, 12, 31, 16, 30, tzinfo=UTC).timestamp()) * 10**9
    assert format_record_timestamp(epoch_ns, TAIPEI) == "2025-01-01T00:30:00.0000000+08:00"


def test_negative_offset_with_minutes() -> None:
    epoch_ns = int(datetime(2024, 1, 1, 2, 0, tzinfo=UTC).timestamp()) * 10**9
    formatted = format_record_timestamp(epoch_ns + 50_000_000, NEWFOUNDLAND_DST)
    assert formatted == "2023-12-31T22:30:00.0500000-03:30"


def test_year_before_1000_is_zero_padded() -> None:
    # glibc's strftime("%Y") gives "999" here; the shape needs four digits.
    epoch_ns = int(datetime(999, 6, 1, tzinfo=UTC).timestamp()) * 10**9
    assert format_record_timestamp(epoch_ns, UTC) == "0999-06-01T00:00:00.0000000+00:00"


@pytest.fixture
def taipei_local_zone() -> Iterator[None]:
    """Make the process's local zone UTC+8 (POSIX TZ string: no tzdata needed)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "CST-8"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("taipei_local_zone")
def test_default_zone_is_the_machines_local_zone() -> None:
    assert format_record_timestamp(SPEC_NS) == "2024-05-23T15:38:00.2514272+08:00"


@given(
    a=st.integers(min_value=YEAR_1900_NS, max_value=YEAR_2200_NS),
    b=st.integers(min_value=YEAR_1900_NS, max_value=YEAR_2200_NS),
    tz=st.sampled_from(FIXED_ZONES),
)
def test_lexical_order_follows_time_order_in_one_zone(a: int, b: int, tz: timezone) -> None:
    """Lets the record be sorted or range-filtered as plain strings."""
    fa, fb = format_record_timestamp(a, tz), format_record_timestamp(b, tz)
    ticks_a, ticks_b = a // 100, b // 100  # the resolution the format keeps
    assert (fa < fb) == (ticks_a < ticks_b)
    assert (fa == fb) == (ticks_a == ticks_b)


@given(ns=st.integers(min_value=YEAR_1900_NS, max_value=YEAR_2200_NS), tz=st.sampled_from(FIXED_ZONES))
def test_round_trips_to_the_same_tick(ns: int, tz: timezone) -> None:
    """Python can read it back (after trimming to 6 digits) to the same instant, less sub-µs."""
    formatted = format_record_timestamp(ns, tz)
    parsed = datetime.fromisoformat(formatted[:26] + formatted[27:])
    assert parsed.utcoffset() == tz.utcoffset(None)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert (parsed - epoch) // timedelta(microseconds=1) == ns // 1_000
