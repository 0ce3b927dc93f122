"""The spec's record timestamp: ISO 8601, 7 fractional digits, local UTC offset.

The official console is .NET, whose DateTimeOffset prints 100 ns ticks
(`2024-05-23T15:38:00.2514272+08:00`); we keep that shape exactly so that a HIS
that parses the official console's timestamps parses ours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo


def format_record_timestamp(epoch_ns: int, tz: tzinfo | None = None) -> str:
    """Format nanoseconds since the epoch in `tz` (default: the machine's local zone)."""
    seconds, remainder_ns = divmod(epoch_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    moment = moment.astimezone(tz) if tz is not None else moment.astimezone()
    ticks = remainder_ns // 100
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    offset_minutes = abs(int(offset.total_seconds())) // 60
    # Fields by hand rather than strftime: glibc's %Y does not zero-pad years
    # before 1000 ("999-01-01..."), which would break the fixed shape.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{ticks:07d}"
        f"{sign}{offset_minutes // 60:02d}:{offset_minutes % 60:02d}"
    )
