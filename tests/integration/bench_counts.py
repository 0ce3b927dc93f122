"""What reached the bench, read through the running console: the counters of issue 20 (docs/virtual-cards.md,
"Counting what reached the bench"), for tests that must show a refused call ran nothing.

Every counter only grows while a console runs, so the difference over a block of requests that all must have run
nothing proves it for each of them: a zero total is a zero for every request.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

from tests.integration.console import RunningConsole

BENCH_NHI = "/api/sim/v1/NhiReader"
BENCH_READERS = "/api/sim/v1/Readers"
BENCH_DC_CALLS = "/api/sim/v1/Dc/Calls"


@dataclass(frozen=True)
class Counts:
    nhi_commands: int
    """What reached the bench NHI reader's cards or its SAM (`cardCommands` of GET /api/sim/v1/NhiReader)."""
    pcsc_commands: int
    """What reached the cards of the bench's PC/SC readers, all of them (`cardCommands` of GET /api/sim/v1/Readers)."""
    dc_calls: int
    records: int
    """Rows of the call record (`calls`)."""
    events: int
    """Rows of the event log (`events`), but the refusals."""
    refusals: int = 0
    """Refused requests kept in the log (`CallRefused` events, issue 22): what a refused request leaves, and all."""

    @property
    def card_commands(self) -> int:
        return self.nhi_commands + self.pcsc_commands

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(mine - theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))


NOTHING = Counts(0, 0, 0, 0, 0, 0)


def counts(console: RunningConsole) -> Counts:
    """Every counter, read now (bench reads: none of them is recorded or logged, or runs a card command)."""
    nhi = console.request("GET", BENCH_NHI).body["cardCommands"]
    readers = console.request("GET", BENCH_READERS).body["readers"]
    assert readers and all(isinstance(reader["cardCommands"], int) for reader in readers), readers
    dc = console.request("GET", BENCH_DC_CALLS).body
    assert dc["statusCode"] == 0
    return Counts(
        nhi_commands=int(nhi),
        pcsc_commands=sum(int(reader["cardCommands"]) for reader in readers),
        dc_calls=int(dc["calls"]),
        records=int(console.database_rows("SELECT count(*) FROM calls")[0][0]),
        events=int(console.database_rows("SELECT count(*) FROM events WHERE type != 'CallRefused'")[0][0]),
        refusals=int(console.database_rows("SELECT count(*) FROM events WHERE type = 'CallRefused'")[0][0]),
    )
