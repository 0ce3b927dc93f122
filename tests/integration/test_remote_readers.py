"""Remote readers (issue 23): a reader agent and a console as separate processes over TCP with Curve keys.

The console runs the bench (`serve --sim --agents tcp://127.0.0.1:PORT`); the agent serves bench readers of its
own (`reader-agent --sim-reader`), whose cards go through the card lab (sim/card_lab.py), which slows them and
counts the PIN VERIFYs that reached them. The PC/SC path of an agent (real pcscd and vpcd) is
test_remote_readers_pcsc.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contract.status_codes import StatusCode
from sim.card_commands import COUNTS_ENV, read_count
from sim.card_lab import DELAY_FILE, LAB_ENV, pin_verifies
from tests.integration.agents import (
    DelayProxy,
    RunningAgent,
    console_key,
    enrol,
    init_agent,
    kill_agent_group,
    nhi_console,
    start_agent,
)
from tests.integration.call_streams import Call, CallOutcome, OneShotClient
from tests.integration.console import RunningConsole, free_port, running_console
from tests.typed_secrets import PROFILE_PIN
from tests.waiting import wait_for

INITIAL = "/api/common/v1/Initial"
DEFAULT_READER = "/api/settings/v1/PcscReader/Default"
READERS = "/api/settings/v1/PcscReader/Readers"
HC_BASIC = "/api/hc/v1/Basic"
HPC_VERIFY = "/api/hpc/v1/Verification/Hpc"
AGENT = "desk-2"
HC_READER, HPC_READER = "Desk HC", "Desk HPC"
REMOTE_HC, REMOTE_HPC = f"{AGENT}/{HC_READER}", f"{AGENT}/{HPC_READER}"
VETERAN_CARD = "900000000735"
"""hc-veteran's card number: the agent's health card, not the bench's own hc-basic."""
SIM_READERS = ("--no-pcsc", "--sim-reader", f"{HC_READER}=hc-veteran", "--sim-reader", f"{HPC_READER}=hpc-nurse")


@pytest.fixture
def agent_port() -> int:
    return free_port()


@pytest.fixture
def console(tmp_path: Path, agent_port: int) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data", "--agents", f"tcp://127.0.0.1:{agent_port}") as running:
        yield running


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    directory = tmp_path / "lab"
    directory.mkdir()
    return directory


@contextmanager
def _agent(tmp_path: Path, console: RunningConsole, endpoint: str, lab: Path) -> Iterator[RunningAgent]:
    counts = tmp_path / "counts"
    counts.mkdir(exist_ok=True)
    agent = start_agent(
        tmp_path / "agent",
        endpoint,
        console_key(console.data_dir),
        *SIM_READERS,
        env={LAB_ENV: str(lab), COUNTS_ENV: str(counts)},
    )
    try:
        yield agent
    finally:
        agent.stop()
        kill_agent_group(agent)


def call(console: RunningConsole, method: str, path: str, body: Any = None, timeout: float = 30) -> dict[str, Any]:
    answer = console.request(method, path, body, timeout=timeout)
    assert answer.status == 200, answer
    result: dict[str, Any] = answer.body
    return result


def events(console: RunningConsole, *types: str) -> list[tuple[str, dict[str, Any]]]:
    marks = ",".join("?" * len(types))
    rows = console.database_rows(f"SELECT type, payload FROM events WHERE type IN ({marks}) ORDER BY seq", *types)
    return [(kind, json.loads(payload)) for kind, payload in rows]


def remote_readers_listed(console: RunningConsole) -> set[str]:
    listed = call(console, "GET", READERS)
    names = {reader if isinstance(reader, str) else reader.get("name") for reader in listed.get("readers", [])}
    return {name for name in names if isinstance(name, str) and name.startswith(f"{AGENT}/")}


def use_reader(console: RunningConsole, reader: str) -> None:
    assert call(console, "POST", DEFAULT_READER, {"readerName": reader}) == {"statusCode": 0}


def no_key_material_in(texts: list[str], agent_dir: Path) -> None:
    secret = (agent_dir / "agent.key_secret").read_text()
    [secret_line] = [line for line in secret.splitlines() if "secret-key" in line]
    secret_key = secret_line.split('"')[1]
    public_key = (agent_dir / "agent.key").read_text().split('public-key = "')[1].split('"')[0]
    for text in texts:
        assert secret_key not in text and public_key not in text


@pytest.mark.timeout(120)
def test_an_agents_readers_serve_a_basic_read_and_a_staff_pin(
    tmp_path: Path, console: RunningConsole, agent_port: int, lab: Path
) -> None:
    public_key = init_agent(tmp_path / "agent")
    enrol(console.data_dir, AGENT, public_key)
    with _agent(tmp_path, console, f"tcp://127.0.0.1:{agent_port}", lab) as agent:
        wait_for(lambda: {REMOTE_HC, REMOTE_HPC} <= console.attached_readers(), 30, "the agent's readers")
        assert remote_readers_listed(console) == {REMOTE_HC, REMOTE_HPC}
        assert call(console, "POST", INITIAL, timeout=70) == {"statusCode": 0}
        use_reader(console, REMOTE_HC)  # the default reader: the bench's own health card is in another one
        basic = call(console, "GET", HC_BASIC)
        assert basic["statusCode"] == 0 and basic["cardId"] == VETERAN_CARD
        use_reader(console, REMOTE_HPC)
        assert call(console, "POST", HPC_VERIFY, {"pin": PROFILE_PIN}, timeout=70) == {"statusCode": 0}
        verified = [payload for kind, payload in events(console, "HpcPinVerified")]
        assert [payload["reader"] for payload in verified] == [REMOTE_HPC]
        assert pin_verifies(lab) == 1
        listed = nhi_console("agents", "list", "--data-dir", str(console.data_dir))
        assert listed.returncode == 0 and REMOTE_HC in listed.stdout and REMOTE_HPC in listed.stdout
        agent_output = agent.output()
    enrolled = events(console, "AgentEnrolled")
    assert [(payload["name"], len(payload["key_id"])) for _, payload in enrolled] == [(AGENT, 64)]
    all_events = [payload for (payload,) in console.database_rows("SELECT CAST(payload AS TEXT) FROM events")]
    no_key_material_in([console.log_path.read_text(), agent_output, *all_events], tmp_path / "agent")


@pytest.mark.timeout(120)
def test_an_unenrolled_agent_is_refused_logged_and_admitted_once_enrolled(
    tmp_path: Path, console: RunningConsole, agent_port: int, lab: Path
) -> None:
    public_key = init_agent(tmp_path / "agent")
    with _agent(tmp_path, console, f"tcp://127.0.0.1:{agent_port}", lab) as agent:
        wait_for(lambda: events(console, "AgentRefused"), 30, "the refusal in the log")
        [(_, refused)] = events(console, "AgentRefused")
        assert refused["address"] == "127.0.0.1" and refused["attempts"] == 1 and len(refused["key_id"]) == 64
        assert "refused a reader agent's connection from 127.0.0.1" in console.log_path.read_text()
        time.sleep(3)  # the agent keeps trying meanwhile: still nothing of it in the state, one refusal logged
        assert not [reader for reader in console.attached_readers() if reader.startswith(f"{AGENT}/")]
        assert not events(console, "ReaderAttached", "CardInserted") or all(
            not payload["reader"].startswith(f"{AGENT}/")
            for _, payload in events(console, "ReaderAttached", "CardInserted")
        )
        assert len(events(console, "AgentRefused")) == 1, "refusals are throttled: one a key a minute"
        enrol(console.data_dir, AGENT, public_key)
        wait_for(lambda: {REMOTE_HC, REMOTE_HPC} <= console.attached_readers(), 30, "the readers, once enrolled")
        removed = nhi_console("agents", "remove", AGENT, "--data-dir", str(console.data_dir))
        assert removed.returncode == 0, removed.stderr
        wait_for(lambda: not {REMOTE_HC, REMOTE_HPC} & console.attached_readers(), 15, "the readers gone")
        detached = {payload["reader"]: payload["reason"] for _, payload in events(console, "ReaderDetached")}
        assert detached[REMOTE_HC] == f"agent {AGENT} removed"
        assert remote_readers_listed(console) == set()
        agent_output = agent.output()
    all_events = [payload for (payload,) in console.database_rows("SELECT CAST(payload AS TEXT) FROM events")]
    no_key_material_in([console.log_path.read_text(), agent_output, *all_events], tmp_path / "agent")


def _answered(answers: list[CallOutcome]) -> bool:
    return bool(answers)


@pytest.mark.timeout(240)
def test_a_slow_link_works_and_a_30_s_cut_loses_the_reader_never_the_pin_rule(
    tmp_path: Path, console: RunningConsole, agent_port: int, lab: Path
) -> None:
    """200 ms added each way (a 400 ms round trip) throughout; a 30 s cut with a PIN VERIFY in flight at the card."""
    proxy = DelayProxy(agent_port, delay=0.2)
    public_key = init_agent(tmp_path / "agent")
    enrol(console.data_dir, AGENT, public_key)
    counts = tmp_path / "counts"
    try:
        with _agent(tmp_path, console, proxy.endpoint, lab):
            wait_for(lambda: {REMOTE_HC, REMOTE_HPC} <= console.attached_readers(), 30, "the agent's readers")
            assert call(console, "POST", INITIAL, timeout=70) == {"statusCode": 0}
            use_reader(console, REMOTE_HC)
            basic = call(console, "GET", HC_BASIC)
            assert basic["statusCode"] == 0 and basic["cardId"] == VETERAN_CARD
            use_reader(console, REMOTE_HPC)
            assert call(console, "POST", HPC_VERIFY, {"pin": PROFILE_PIN}, timeout=70) == {"statusCode": 0}
            assert pin_verifies(lab) == 1
            [(_, inserted)] = [e for e in events(console, "CardInserted") if e[1]["reader"] == REMOTE_HPC]
            lost_before = len(events(console, "ReaderDetached"))

            # A PIN VERIFY in flight at the card when the link goes: slow cards, and the cut once an APDU of
            # the command has reached the card (the bench's count is taken before a slow card answers).
            (lab / DELAY_FILE).write_text("2")
            reached = read_count(counts, HPC_READER)
            answers: list[CallOutcome] = []
            client = OneShotClient(console.port, console.ca_file, timeout=70)
            caller = threading.Thread(
                target=lambda: answers.append(client.send(Call("POST", HPC_VERIFY, {"pin": PROFILE_PIN})))
            )
            caller.start()
            wait_for(lambda: read_count(counts, HPC_READER) > reached, 10, "the command's first APDU at the card")
            proxy.cut()
            cut_at = time.monotonic()
            wait_for(lambda: _answered(answers), 15, "the caller's answer after the cut")
            answered_after = time.monotonic() - cut_at
            caller.join(timeout=5)
            client.close()
            [outcome] = answers
            assert outcome.status == 200 and outcome.status_code not in (StatusCode.OK, None), outcome
            wait_for(lambda: len(events(console, "ReaderDetached")) >= lost_before + 2, 15, "the readers leaving")
            detached = [payload for _, payload in events(console, "ReaderDetached")][lost_before:]
            assert {payload["reader"] for payload in detached} == {REMOTE_HC, REMOTE_HPC}
            assert {payload["reason"] for payload in detached} == {f"agent {AGENT} stopped answering"}
            assert remote_readers_listed(console) == set()
            wait_for(lambda: pin_verifies(lab) == 2, 15, "the VERIFY the worker had under way")
            (lab / DELAY_FILE).write_text("0")
            wait_for(lambda: time.monotonic() - cut_at >= 30, 40, "30 s of cut", interval=0.5)

            proxy.restore()
            restored_at = time.monotonic()
            wait_for(lambda: {REMOTE_HC, REMOTE_HPC} <= console.attached_readers(), 30, "the readers back")
            back_after = time.monotonic() - restored_at
            assert remote_readers_listed(console) == {REMOTE_HC, REMOTE_HPC}
            # The agent never restarted and its worker saw no removal: the same insertion, not a new one.
            resumed = [payload for _, payload in events(console, "CardSessionResumed")]
            assert {(payload["reader"], payload["session"]) for payload in resumed} >= {
                (REMOTE_HPC, inserted["session"])
            }
            assert [e for e in events(console, "CardInserted") if e[1]["reader"] == REMOTE_HPC] == [
                ("CardInserted", inserted)
            ]
            assert pin_verifies(lab) == 2, "nothing was resent on reconnection"
            assert call(console, "POST", DEFAULT_READER, {"readerName": REMOTE_HPC}) == {"statusCode": 0}
            assert call(console, "POST", HPC_VERIFY, {"pin": PROFILE_PIN}, timeout=70) == {"statusCode": 0}
            assert pin_verifies(lab) == 3, "one PIN VERIFY per call"
    finally:
        proxy.close()
    print(
        f"\nagent with 200 ms added each way: the caller of a VERIFY in flight at a cut answered"
        f" {outcome.status_code} {answered_after:.1f} s after the cut; the readers back {back_after:.1f} s after"
        " the link was restored"
    )


@pytest.mark.timeout(120)
def test_an_agents_nhi_dedicated_reader_serves_its_card_slots(
    tmp_path: Path, console: RunningConsole, agent_port: int
) -> None:
    """`reader-agent --serial PORT`: the bench's NHI reader on its pseudo-terminal, served by the agent's worker
    (the console itself opens the port only for an `Initial` on it, which this test never makes)."""
    enrol(console.data_dir, AGENT, init_agent(tmp_path / "agent"))
    port = str(console.data_dir / "sim-nhi-reader" / "ttyNHI0")
    slot, staff_slot = f"{AGENT}/{port}", f"{AGENT}/{port}#hpc"
    agent = start_agent(
        tmp_path / "agent",
        f"tcp://127.0.0.1:{agent_port}",
        console_key(console.data_dir),
        "--no-pcsc",
        "--serial",
        port,
    )
    try:
        wait_for(lambda: {slot, staff_slot} <= console.attached_readers(), 30, "the NHI reader's two slots")
        assert call(console, "POST", INITIAL, timeout=70) == {"statusCode": 0}  # the bench's cloud SAM
        use_reader(console, slot)
        assert call(console, "GET", HC_BASIC)["statusCode"] == 0
        [(_, read)] = events(console, "CardDataRead")
        assert read["reader"] == slot
    finally:
        agent.stop()
        kill_agent_group(agent)
