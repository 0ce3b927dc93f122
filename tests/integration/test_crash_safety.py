"""Surviving crashes without losing a record or a PIN try (issue 9), with real processes and `kill -9`.

The broker is killed 50 times under a stream of recorded calls, reads and state changes: every call it
answered must be in the record, once; every state change it answered must be in the state after the
restart; and the state must be what the log replays to, before the kill and after. A reader's worker is
killed while the card holds its answer to a PIN VERIFY: the caller gets an error at once, and the PIN is
never sent again.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.core_client import CoreClient, CoreUnavailable
from contract.status_codes import StatusCode
from deploy.paths import console_paths
from eventlog.verify import verify
from sim.vpcd import VpcdCardBridge
from tests.integration.answered_effects import (
    CORS,
    DEFAULT_READER,
    FINALIZE,
    INITIAL,
    Expected,
    allow_host,
    differences,
    expected_after,
    remove_host,
    set_default_reader,
)
from tests.integration.call_streams import Call, CallOutcome, CallStream, OneShotClient
from tests.integration.console import RunningConsole, alive, cmdline, running_console, wait_for
from tests.integration.log_replay import event_types_after, replayed_snapshot
from tests.integration.stalling_card import StallingCard
from tests.pcscd import Pcscd
from tests.typed_secrets import PROFILE_PIN, WRONG_PIN

pytestmark = [pytest.mark.integration]

BROKER_KILLS = 50
READERS = ("NHI Sim Reader 0", "NHI Sim Reader 1")
PRESENCE_EVENTS = frozenset({"ReaderAttached", "ReaderDetached", "CardInserted", "CardRemoved", "WorkerLost"})
"""What live workers may add to the log on their own: a worker that re-registers too late with the new
broker is replaced, and its card is reported again as a new insertion (docs/decisions.md)."""
ANSWERS: dict[str, set[int]] = {
    "POST " + CORS: {StatusCode.OK},
    "DELETE " + CORS: {StatusCode.OK, StatusCode.BAD_PARAMETER},  # 1704: its adding was cut by a kill
    "POST " + DEFAULT_READER: {StatusCode.OK},
    "POST " + INITIAL: {StatusCode.OK, StatusCode.ALREADY_INITIALIZED},  # already: a Finalize was cut
    "POST " + FINALIZE: {StatusCode.OK, StatusCode.NOT_INITIALIZED},  # not initialized: an Initial was cut
    "GET /api/common/v1/Status": {StatusCode.OK},
    "GET /api/common/v1/Version": {StatusCode.OK},
}
"""The statusCodes the console may answer each call of the streams with: anything else is a fault (a reader
the restarted broker forgot would answer 1600, say)."""


def _recorded_read(number: int) -> Call:
    return Call("GET", "/api/common/v1/Status" if number % 2 == 0 else "/api/common/v1/Version")


def _state_change(number: int) -> Call:
    """A cycle of four: allow a new host, set the default reader, Initial or Finalize, remove the last host."""
    cycle, step = divmod(number, 4)
    if step == 0:
        return allow_host(f"h{cycle}.crash.test")
    if step == 1:
        return set_default_reader(READERS[cycle % 2])
    if step == 2:
        return Call("POST", INITIAL if cycle % 2 == 0 else FINALIZE)
    return remove_host(f"h{cycle - 1}.crash.test")


def _kind(outcome: CallOutcome) -> str:
    path = outcome.call.path
    return f"{outcome.call.method} {CORS if path.startswith(CORS + '/') else path}"


@pytest.fixture
def crashable_console(tmp_path: Path) -> Iterator[RunningConsole]:
    """`serve --sim` restarting what dies at once: the production pace backs off to 5 s after repeated
    crashes, which would make 50 kills take minutes without changing anything this test checks."""
    with running_console(tmp_path / "data", "--restart-backoff-max", "0.2") as running:
        yield running


def _snapshot(core: CoreClient) -> tuple[int, dict[str, Any]]:
    reply = core.call("GetStateSnapshot")
    assert reply.code == 0, reply
    return int(reply.body["throughSeq"]), reply.body["state"]


def _snapshot_once_up(core: CoreClient) -> tuple[int, dict[str, Any]] | None:
    try:
        return _snapshot(core)
    except CoreUnavailable:
        return None


def _events_by_host(console: RunningConsole, type_name: str) -> Counter[str]:
    rows = console.database_rows("SELECT payload FROM events WHERE type = ?", type_name)
    return Counter(json.loads(payload)["host"] for (payload,) in rows)


@pytest.mark.timeout(300)
def test_50_broker_kills_under_recorded_calls_lose_no_record_and_no_answered_state(
    crashable_console: RunningConsole,
) -> None:
    """Even kills are "quiet": the state-changing stream is paused (the reads go on, so the kill still lands in
    the middle of call-record writes), and the restarted broker's state must equal the killed one's. Odd kills
    land anywhere in both streams; the state is then checked against what the answered calls did.

    What "equal" means: `snapshot()` holds only what the event log says (no live worker registry, no SAM
    token), so nothing is excluded from any comparison. Two things are checked at every kill: the killed
    broker's last snapshot is what the log, read after the crash, replays to through the same seq (nothing
    it had acknowledged was lost or rewritten); and the restarted broker's snapshot is what the log replays
    to through its seq. Between the two, only events the console had not acknowledged yet, or that live
    workers report on their own (PRESENCE_EVENTS), may appear.
    """
    console = crashable_console
    database = console_paths(console.data_dir, sim=True).database
    core = CoreClient(console_paths(console.data_dir, sim=True).api_endpoint, timeout=5, connect_timeout=0.5)
    reads = CallStream("recorded-reads", OneShotClient(console.port, console.ca_file, 30), _recorded_read).start()
    # A call the broker holds when it dies is answered at once (503); 75 s only bounds a console gone wrong.
    changes = CallStream("state-changes", OneShotClient(console.port, console.ca_file, 75), _state_change).start()
    expected = Expected(default_reader=READERS[0], initialized=False)  # the bench's start (sim-control.md)
    folded = 0
    restarts: list[float] = []
    integrity: list[str] = []
    quiet_and_equal = 0
    answered_by_kill: dict[str, int] = {}
    try:
        for kill in range(BROKER_KILLS):
            quiet = kill % 2 == 0
            marks = reads.answered(), changes.answered()
            wait_for(
                lambda: reads.answered() >= marks[0] + 3 and changes.answered() >= marks[1] + 3,  # noqa: B023 - called at once
                30,
                f"both streams answered by broker #{kill}",
            )
            if quiet:
                changes.pause(10)
            seq_before, before = _snapshot(core)
            [broker] = console.processes()["broker"]
            os.kill(broker, signal.SIGKILL)
            killed_at = time.monotonic()
            for outcome in reads.outcomes() + changes.outcomes():
                if outcome.answered and outcome.request_id is not None:
                    answered_by_kill.setdefault(outcome.request_id, kill)
            wait_for(lambda: not alive(broker), 5, "the broker to die")  # noqa: B023 - called at once
            if not quiet:
                changes.pause(10)  # its call in flight ends: answered by the new broker, or a 503 at once
            seq_after, after = wait_for(lambda: _snapshot_once_up(core), 20, f"broker #{kill + 1}'s snapshot")
            restarts.append(time.monotonic() - killed_at)
            assert seq_after >= seq_before
            assert replayed_snapshot(database, seq_before) == before, f"kill {kill}: acknowledged state lost"
            assert replayed_snapshot(database, seq_after) == after, f"kill {kill}: the new broker is not its log"
            between = event_types_after(database, seq_before, seq_after)
            if quiet:
                assert set(between) <= PRESENCE_EVENTS, f"kill {kill}: events nobody asked for: {between}"
                if not between:
                    assert after == before
                    quiet_and_equal += 1
            new_outcomes = changes.outcomes()[folded:]
            folded += len(new_outcomes)
            expected = expected_after(new_outcomes, expected)
            assert not differences(expected, after), f"kill {kill}: {differences(expected, after)}"
            [(check,)] = console.database_rows("PRAGMA integrity_check")
            integrity.append(check)
            assert check == "ok", f"kill {kill}: {check}"
            changes.resume()
    finally:
        reads.stop(10)
        changes.stop(10)
    assert reads.failure is None and changes.failure is None, (reads.failure, changes.failure)
    outcomes = reads.outcomes() + changes.outcomes()
    answered = [outcome for outcome in outcomes if outcome.answered]
    unexpected = [(_kind(o), o.status_code) for o in answered if o.status_code not in ANSWERS[_kind(o)]]
    assert not unexpected, unexpected
    recorded = Counter(uuid for (uuid,) in console.database_rows("SELECT uuid FROM calls"))
    lost = [(answered_by_kill.get(o.request_id or ""), _kind(o)) for o in answered if not recorded[o.request_id]]
    assert not lost, f"{len(lost)} answered calls missing from the record (kill before which, call): {lost[:10]}"
    assert not [uuid for uuid, count in recorded.items() if count > 1], "a call recorded twice"
    _assert_each_answered_host_change_logged_once(console, changes.outcomes())
    final_seq, final = _snapshot(core)
    assert not differences(expected_after(changes.outcomes()[folded:], expected), final)
    assert replayed_snapshot(database, final_seq) == final
    [(final_check,)] = console.database_rows("PRAGMA integrity_check")
    chains = verify(database)
    assert final_check == "ok" and chains.ok, (final_check, chains.problems[:3])
    changed = [outcome for outcome in changes.outcomes() if outcome.answered]
    print(
        f"\n{len(restarts)} kills survived; {len(answered)} calls answered ({len(changed)} of them state changes),"
        f" {len(outcomes) - len(answered)} not answered (sent while the broker was down, or cut by a kill);"
        f" {len(lost)} records lost; integrity_check ok"
        f" {integrity.count('ok')}/{len(integrity)} and at the end, hash chains ok ({chains.events_checked} events,"
        f" {chains.calls_checked} calls); quiet kills with the state unchanged: {quiet_and_equal};"
        f" restart (kill to the new broker's first answer) min {min(restarts):.2f}s"
        f" median {statistics.median(restarts):.2f}s max {max(restarts):.2f}s"
    )


def _assert_each_answered_host_change_logged_once(console: RunningConsole, outcomes: list[CallOutcome]) -> None:
    """Each host is allowed once and removed once by the stream: an answered change is one event, never two
    (a change run again after a restart would show twice), and an unanswered one at most one."""
    allowed, removed = _events_by_host(console, "CorsHostAllowed"), _events_by_host(console, "CorsHostRemoved")
    for outcome in outcomes:
        if outcome.call.path == CORS and outcome.call.body is not None:
            host, logged = str(outcome.call.body["allowHost"]), allowed
        elif outcome.call.path.startswith(CORS + "/"):
            host, logged = outcome.call.path.rsplit("/", 1)[1], removed
        else:
            continue
        if not outcome.answered:
            assert logged[host] <= 1, (host, logged[host])
        else:
            assert logged[host] == (1 if outcome.status_code == StatusCode.OK else 0), (host, outcome)


# --- a reader's worker killed in the middle of a PIN verification -----------------------------------------------

HPC_VERIFY = "/api/hpc/v1/Verification/Hpc"
WORKER_LOST_MESSAGE = "the reader's worker stopped during the command"


def _worker_serving(console: RunningConsole, reader: str) -> list[int]:
    found = []
    for pid in console.processes()["worker"]:
        arguments = cmdline(pid)
        if "--reader" in arguments and arguments[arguments.index("--reader") + 1 :][:1] == [reader]:
            found.append(pid)
    return found


def _card_back_after_worker_lost(console: RunningConsole, reader: str) -> bool:
    """The replacement worker reported the card: a CardInserted for `reader` after its WorkerLost."""
    rows = console.database_rows(
        "SELECT type, payload FROM events WHERE type IN ('WorkerLost', 'CardInserted') ORDER BY seq"
    )
    ours = [type_name for type_name, payload in rows if json.loads(payload)["reader"] == reader]
    return "WorkerLost" in ours and ours[-1] == "CardInserted"


def _restart_the_broker(console: RunningConsole) -> None:
    """kill -9 of the broker: its workers live on, re-parented to the supervisor, and the new broker adopts them."""
    [broker] = console.processes()["broker"]
    os.kill(broker, signal.SIGKILL)
    wait_for(lambda: not alive(broker), 5, "the broker to die")
    wait_for(lambda: [pid for pid in console.processes()["broker"] if pid != broker], 10, "the new broker")
    wait_for(console.status_ok, 10, "Status from the new broker")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("adopted", [False, True], ids=["worker-of-this-broker", "worker-adopted-after-a-broker-kill"])
def test_a_worker_killed_during_a_pin_verify_fails_the_call_at_once_and_never_sends_the_pin_again(
    pcscd: Pcscd,
    pcsc_console: RunningConsole,
    adopted: bool,
) -> None:
    """The wrong PIN, so that the one try the card spends shows in its counter: 3 -> 2 means the VERIFY ran
    exactly once (the right PIN would leave the counter at 3 whether it ran once or twice).

    A worker the broker started is its child, whose exit it sees at once; a worker adopted from a killed
    broker is the supervisor's, and its exit must be seen as soon (not only when its heartbeats stop).
    """
    console, reader = pcsc_console, pcscd.reader(0, 0)
    card = StallingCard("hpc-nurse")
    bridge = VpcdCardBridge(card, port=pcscd.port(0, 0)).connect()
    try:
        wait_for(lambda: console.card_kinds().get(reader) == "hpc", 10, "the staff card identified")
        # The routing rule's way to this reader: the bench's own staff card sits in NHI Sim Reader 1.
        assert console.request("POST", DEFAULT_READER, {"readerName": reader}).body == {"statusCode": 0}
        assert console.request("POST", INITIAL, timeout=70).body == {"statusCode": 0}
        [first_worker] = _worker_serving(console, reader)
        if adopted:
            _restart_the_broker(console)
        tries_before = card.pin_tries_left
        card.arm()
        answers: list[CallOutcome] = []
        client = OneShotClient(console.port, console.ca_file, timeout=70)
        caller = threading.Thread(
            target=lambda: answers.append(client.send(Call("POST", HPC_VERIFY, {"pin": WRONG_PIN})))
        )
        caller.start()
        wait_for(card.pin_verify_arrived.is_set, 30, "the PIN VERIFY at the card")
        [worker] = _worker_serving(console, reader)
        assert worker == first_worker  # adopted: the same process, now the supervisor's child
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: bool(answers), 3, "the caller's answer within 3 s of the kill")
        answered_after = time.monotonic() - killed_at
        [outcome] = answers
        card.release()
        caller.join(timeout=5)
        client.close()
        # A definite error, and not the card's "wrong PIN": the console cannot know what the card answered.
        assert outcome.status == 200 and outcome.status_code == StatusCode.HPC_LEVEL3_FAILED, outcome
        assert outcome.message == WORKER_LOST_MESSAGE
        lost = console.database_rows("SELECT payload FROM events WHERE type = 'WorkerLost'")
        assert [json.loads(payload)["reader"] for (payload,) in lost] == [reader]
        wait_for(lambda: _worker_serving(console, reader) not in ([], [worker]), 10, "a replacement worker")
        wait_for(lambda: _card_back_after_worker_lost(console, reader), 10, "the card reported by the new worker")
        assert (card.pin_verifies, card.counter_reads) == (1, 1), "the PIN was sent again"
        assert card.pin_tries_left == tries_before - 1
        # The reader serves the next call, whose VERIFY is its own single one (and the right PIN resets the count).
        assert console.request("POST", HPC_VERIFY, {"pin": PROFILE_PIN}, timeout=70).body == {"statusCode": 0}
        assert (card.pin_verifies, card.counter_reads, card.pin_tries_left) == (2, 2, tries_before)
    finally:
        card.release()
        bridge.disconnect()
    print(
        f"\n{'adopted ' if adopted else ''}worker kill -9 during a PIN VERIFY: answered {outcome.status_code}"
        f" {answered_after:.2f}s after the kill; the card saw 1 PIN VERIFY, tries {tries_before} ->"
        f" {tries_before - 1}"
    )
