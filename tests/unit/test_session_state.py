"""The session's part of the fold: levels follow the events, and a card's level belongs to its insertion."""

from __future__ import annotations

from broker.domain.events import (
    CardAuthenticated,
    CardDetected,
    CardInserted,
    CardLoggedOut,
    CardRemoved,
    CloudSamImported,
    CloudSamRemoved,
    Event,
    ReaderAttached,
    ReaderDetached,
    SamLoggedOut,
    SamSessionExpired,
    SamVerificationFailed,
    SamVerified,
    SessionFinalized,
    SessionInitialized,
    SimClockAdvanced,
    WorkerLost,
)
from broker.domain.state import ConsoleState, project, render_status

EXPIRY = "2026-11-23T22:00:00+08:00"
OPEN: list[Event] = [
    ReaderAttached(reader="R0", backend="sim"),
    CardInserted(reader="R0", atr="3B", kind="hc", session=5),
    SessionInitialized(device="901000000047", sam_type=1, reader="R0"),
    SamVerified(expires_at=EXPIRY),
    CardDetected(kind="hc", reader="R0", session=5),
    CardAuthenticated(kind="hc", reader="R0", session=5),
]


def test_an_open_session_renders_as_the_spec_says() -> None:
    status = render_status(project(OPEN))
    assert status["initialized"] is True and status["name"] == "901000000047" and status["readerName"] == "R0"
    assert status["sam"] == {"status": 2, "type": 1, "expireTime": EXPIRY}
    assert status["hc"]["status"] == 2 and status["hc"]["type"] == 1


def test_removing_the_card_ends_its_level_but_another_insertions_removal_does_not() -> None:
    assert project([*OPEN, CardRemoved(reader="R0", session=4, reason="removed")]).hc.status == 2
    assert project([*OPEN, CardRemoved(reader="R0", session=5, reason="removed")]).hc.status == 0
    assert project([*OPEN, WorkerLost(reader="R0", reason="silent")]).hc.status == 0
    assert project([*OPEN, ReaderDetached(reader="R0", reason="gone")]).hc.status == 0


def test_sam_events() -> None:
    assert project([*OPEN, SamSessionExpired()]).sam.status == 1
    assert project([*OPEN, SamVerificationFailed(code=1700, reason="connectionFailed")]).sam.status == 2
    assert project([*OPEN, SamVerificationFailed(code=1303, reason="hospitalSuspended")]).sam.status == 1
    logged_out = project([*OPEN, SamLoggedOut()])
    assert (logged_out.sam.status, logged_out.sam.expire_time, logged_out.hc.status) == (1, None, 0)
    assert project([*OPEN, CardLoggedOut(kind="hc")]).hc.status == 0


def test_finalize_resets_the_session_but_keeps_settings_and_the_last_device() -> None:
    state = project(
        [CloudSamImported(sam_id="901000000047", hospital_id="777777777"), *OPEN, SessionFinalized(reason="finalize")]
    )
    assert render_status(state) == render_status(ConsoleState())
    assert state.last_device == "901000000047" and dict(state.cloud_sams) == {"901000000047": "777777777"}
    assert "R0" in state.readers
    assert dict(project([CloudSamImported(sam_id="1", hospital_id="2"), CloudSamRemoved(sam_id="1")]).cloud_sams) == {}


def test_the_bench_clock_offset_adds_up() -> None:
    assert project([SimClockAdvanced(seconds=60), SimClockAdvanced(seconds=40)]).clock_offset_seconds == 100
