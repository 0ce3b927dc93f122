"""Remote readers (issue 23), the pure parts: names and keys of the link, routes and refusals, the state's agents
and resumed card sessions, the enrolment commands, and the pools that must never touch another machine's pid."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from broker.core import ConsoleCore
from broker.domain.events import (
    AgentEnrolled,
    AgentRemoved,
    CardInserted,
    CardSessionResumed,
    Event,
    HpcPinVerified,
    ReaderAttached,
    ReaderDetached,
    WorkerLost,
)
from broker.domain.presence import presence_events
from broker.domain.state import project
from broker.runtime.agent_routes import (
    PER_KEY_SECONDS,
    PER_WINDOW,
    RefusalThrottle,
    agent_reader,
    remote_status,
    route,
    split_route,
)
from broker.runtime.clock import ManualClock
from broker.runtime.liveness import WorkerRegistry
from contract.agent_link import (
    LIVENESS_INTERVALS,
    AgentKeys,
    AgentLinkError,
    check_agent_endpoint,
    check_agent_name,
    ensure_key_pair,
    key_id,
    key_id_of_text,
    link_timeout,
    public_key_bytes,
    public_key_of,
    remote_reader,
    split_remote,
)
from contract.commands import MAX_READER_NAME
from contract.protocol import CardPresence, Reply, Request, WorkerStatus
from deploy.reader_agent import PCSC_BACKEND, SERIAL_BACKEND, SIM_BACKEND, AgentConfig, wanted_readers, worker_arguments
from eventlog.memory_store import MemoryEventStore
from tests.unit.test_worker_pool import READER_A, FakeOs, make_pool

KEY = "ab" * 32
OTHER_KEY = "cd" * 32


def public_key() -> str:
    public, _ = zmq.curve_keypair()
    return public.decode("ascii")


# --- names and keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["desk-2", "a", "reception", "0" * 32])
def test_agent_names_that_can_start_a_reader_name(name: str) -> None:
    assert check_agent_name(name) == name


@pytest.mark.parametrize("name", ["", "-desk", "Desk", "desk/2", "desk 2", "a" * 33, "desk\n"])
def test_agent_names_refused(name: str) -> None:
    with pytest.raises(AgentLinkError):
        check_agent_name(name)


def test_a_key_id_is_the_sha256_of_the_key_and_an_error_never_repeats_the_key() -> None:
    text = public_key()
    assert (
        key_id_of_text(text) == hashlib.sha256(z85.decode(text.encode())).hexdigest() == key_id(public_key_bytes(text))
    )
    for bad in (text[:-1], text + "A", text[:-1] + "\\", ""):
        with pytest.raises(AgentLinkError) as refused:
            public_key_bytes(bad)
        assert not bad or bad not in str(refused.value)


def test_remote_reader_names_split_at_the_first_slash() -> None:
    assert remote_reader("desk-2", "ACS ACR39U 00 00") == "desk-2/ACS ACR39U 00 00"
    assert split_remote("desk-2/ACS ACR39U 00 00") == ("desk-2", "ACS ACR39U 00 00")
    assert split_remote("desk-2//dev/ttyUSB0") == ("desk-2", "/dev/ttyUSB0")
    assert split_remote("NHI Sim Reader 0") is None
    assert split_remote("Desk/Reader") is None  # not an agent's name: a local reader with a slash
    assert agent_reader("desk-2/ACS ACR39U 00 00") == "ACS ACR39U 00 00"


@pytest.mark.parametrize(
    "endpoint", ["tcp://*:5067", "tcp://192.0.2.7:1", "tcp://console.clinic:65535", "tcp://[::1]:5067"]
)
def test_agent_endpoints(endpoint: str) -> None:
    assert check_agent_endpoint(endpoint) == endpoint


@pytest.mark.parametrize("endpoint", ["ipc:///tmp/x", "tcp://host", "tcp://host:0", "tcp://host:70000", "host:5067"])
def test_agent_endpoints_refused(endpoint: str) -> None:
    with pytest.raises(AgentLinkError):
        check_agent_endpoint(endpoint)


@pytest.mark.parametrize("heartbeat", [0.05, 0.25, 1.0, 5.0])
def test_the_link_closes_a_silent_connection_before_the_broker_takes_the_reader_for_lost(heartbeat: float) -> None:
    """What the PIN rule across a cut rests on (contract/agent_link.py): a command held up on the way dies with
    its connection before the broker answers its caller, so it never reaches the card afterwards."""
    assert link_timeout(heartbeat) < heartbeat * LIVENESS_INTERVALS == WorkerRegistry(heartbeat).limit


def test_a_key_pair_is_made_once_private_and_its_public_half_read_back(tmp_path: Path) -> None:
    secret = ensure_key_pair(tmp_path / "keys", "agent")
    public = public_key_of(secret)
    assert secret.stat().st_mode & 0o077 == 0 and (tmp_path / "keys").stat().st_mode & 0o077 == 0
    assert ensure_key_pair(tmp_path / "keys", "agent") == secret and public_key_of(secret) == public
    assert len(public_key_bytes(public)) == 32


# --- routes and refusals -------------------------------------------------------------------------


def test_a_route_carries_the_authenticated_key_and_no_local_identity_looks_like_one() -> None:
    routed = route(KEY, b"worker-17-abcd")
    assert split_route(routed) == (KEY, b"worker-17-abcd")
    assert split_route(route(KEY, b"worker-17-abcd/heartbeat")) == (KEY, b"worker-17-abcd/heartbeat")
    assert split_route(b"worker-17-abcd") is None
    assert route(OTHER_KEY, b"worker-17-abcd") != routed  # the same identity from another agent is another worker


def test_an_agent_workers_report_is_named_for_the_agent_and_a_name_too_long_is_dropped() -> None:
    status = WorkerStatus(reader="ACS ACR39U 00 00", backend="pcsc", pid=7, card=None)
    assert remote_status("desk-2", status) == replace(status, reader="desk-2/ACS ACR39U 00 00")
    assert remote_status("desk-2", replace(status, reader="R" * (MAX_READER_NAME - len("desk-2/")))) is not None
    assert remote_status("desk-2", replace(status, reader="R" * (MAX_READER_NAME - len("desk-2")))) is None


def test_refusals_of_one_key_are_logged_once_a_minute_with_the_attempts_between() -> None:
    throttle = RefusalThrottle()
    first = throttle.note(KEY, "192.0.2.7", 0.0)
    assert first is not None and first.attempts == 1
    assert [throttle.note(KEY, "192.0.2.7", t) for t in (1.0, 2.0, 30.0)] == [None, None, None]
    later = throttle.note(KEY, "192.0.2.7", PER_KEY_SECONDS + 0.5)
    assert later is not None and later.attempts == 4


def test_refusals_of_many_keys_are_capped_per_window() -> None:
    throttle = RefusalThrottle()
    logged = [throttle.note(f"{index:064x}", "192.0.2.7", 1.0) for index in range(PER_WINDOW + 5)]
    assert sum(refusal is not None for refusal in logged) == PER_WINDOW
    assert throttle.note("f" * 64, "192.0.2.7", 62.0) is not None


# --- the state: agents, and a card that never left ------------------------------------------------


def test_enrolments_fold_into_the_state() -> None:
    state = project([AgentEnrolled("desk-2", KEY), AgentEnrolled("desk-3", OTHER_KEY), AgentRemoved("desk-2", KEY)])
    assert dict(state.agents) == {"desk-3": OTHER_KEY}
    assert dict(project([AgentEnrolled("desk-2", KEY), AgentEnrolled("desk-2", OTHER_KEY)]).agents) == {
        "desk-2": OTHER_KEY
    }


READER = "desk-2/Desk HPC"
INSERTED = CardInserted(reader=READER, atr="3B 00", kind="hpc", session=7, card_ref="ref", card_type=2)


def _report(session: int, atr: str = "3B 00") -> WorkerStatus:
    return WorkerStatus(reader=READER, backend="sim", pid=1, card=CardPresence(atr=atr, kind="hpc", session=session))


@pytest.mark.parametrize("gone", [ReaderDetached(READER, "agent desk-2 stopped answering"), WorkerLost(READER, "x")])
def test_the_same_insertion_reported_back_resumes_its_session(gone: ReaderDetached | WorkerLost) -> None:
    state = project([ReaderAttached(READER, "sim"), INSERTED, gone])
    assert state.departed_cards[READER].session == 7
    events = presence_events(state, _report(7))
    assert events[-1] == CardSessionResumed(reader=READER, session=7)
    resumed = project([ReaderAttached(READER, "sim"), INSERTED, gone, *events])
    card = resumed.readers[READER].card
    assert card is not None and (card.session, card.card_ref, card.kind) == (7, "ref", "hpc")
    assert READER not in resumed.departed_cards


@pytest.mark.parametrize("report", [_report(8), _report(7, atr="3B 01")], ids=["new session", "other card"])
def test_another_insertion_is_a_new_one_and_forgets_the_departed_card(report: WorkerStatus) -> None:
    state = project([ReaderAttached(READER, "sim"), INSERTED, ReaderDetached(READER, "gone")])
    events = presence_events(state, report)
    assert not [event for event in events if isinstance(event, CardSessionResumed)]
    [inserted] = [event for event in events if isinstance(event, CardInserted)]
    after = project([ReaderAttached(READER, "sim"), INSERTED, ReaderDetached(READER, "gone"), *events])
    assert READER not in after.departed_cards
    assert report.card is not None and inserted.session == report.card.session


def test_a_verified_staff_card_resumed_keeps_level_3() -> None:
    verified = HpcPinVerified(reader=READER, session=7, expires_at="2026-12-05T22:00:00+08:00")
    before: list[Event] = [ReaderAttached(READER, "sim"), INSERTED, verified, ReaderDetached(READER, "gone")]
    state = project(before)
    assert state.hpc.status == 3 and state.hpc.reader is None
    back = project([*before, ReaderAttached(READER, "sim"), CardSessionResumed(reader=READER, session=7)])
    assert back.hpc.status == 3 and (back.hpc.reader, back.hpc.session) == (READER, 7)


# --- the enrolment commands ----------------------------------------------------------------------


def _answer(core: ConsoleCore, command: str, **args: str) -> Reply:
    reply = core.handle(Request(id="r", command=command, args=args))
    assert isinstance(reply, Reply)
    return reply


def test_enrolment_commands() -> None:
    core = ConsoleCore(MemoryEventStore(), ManualClock())
    assert _answer(core, "EnrollAgent", name="desk-2", keyId=KEY).code == 0
    assert _answer(core, "EnrollAgent", name="desk-2", keyId=KEY).code == 0  # again: nothing new
    assert _answer(core, "EnrollAgent", name="desk-2", keyId=OTHER_KEY).code == 1704  # rotation is explicit
    assert _answer(core, "EnrollAgent", name="desk-3", keyId=KEY).code == 1704  # one key, one agent
    assert _answer(core, "EnrollAgent", name="Desk 3", keyId=OTHER_KEY).code == 1704
    assert _answer(core, "EnrollAgent", name="desk-3", keyId="not a key id").code == 1704
    assert core.agent_named(KEY) == "desk-2" and core.enrolled_key_ids() == {KEY}
    assert _answer(core, "ReplaceAgentKey", name="desk-2", keyId=OTHER_KEY).code == 0
    assert core.agent_named(KEY) is None and core.agent_named(OTHER_KEY) == "desk-2"
    listed = _answer(core, "ListAgents").body["agents"]
    assert listed == [{"name": "desk-2", "keyId": OTHER_KEY[:16], "readers": []}]
    assert _answer(core, "RemoveAgent", name="desk-2").code == 0
    assert _answer(core, "RemoveAgent", name="desk-2").code == 1704
    assert core.enrolled_key_ids() == frozenset()


# --- pools: an agent's worker is another machine's process ----------------------------------------


def test_a_silent_agent_worker_is_lost_but_never_signalled() -> None:
    fake_os = FakeOs()
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    registry.seen(route(KEY, b"worker-1"), "desk-2/Reader", fake_os.next_pid, 0.0, agent="desk-2")
    lost, unwanted = pool.reconcile({}, now=1.0)
    assert (lost, unwanted) == ([], [])  # not wanted by the pool's readers, and still not its to stop
    lost, _ = pool.reconcile({}, now=3.5)
    assert lost == [("desk-2/Reader", "agent desk-2 stopped answering")]
    assert fake_os.signals == []
    pool.stop_all(grace=0)
    assert fake_os.signals == []


def test_an_agent_worker_whose_pid_is_free_here_is_not_taken_for_exited() -> None:
    fake_os = FakeOs()
    registry = WorkerRegistry(1.0)
    pool = make_pool(fake_os, registry)
    pool.reconcile({READER_A.name: READER_A}, now=0.0)
    registry.seen(route(KEY, b"worker-1"), "desk-2/Reader", 999_999, 0.5, agent="desk-2")
    assert pool.reconcile({READER_A.name: READER_A}, now=1.0) == ([], [])
    assert registry.remote_readers() == {"desk-2/Reader"}


def test_the_agent_serves_its_readers_and_tells_its_workers_no_secret(tmp_path: Path) -> None:
    config = AgentConfig(
        console="tcp://console:5067",
        keys=AgentKeys(tmp_path / "agent.key_secret", public_key()),
        serial_ports=("/dev/ttyUSB0",),
        sim_readers=(("Desk HC", "hc-basic"),),
    )
    wanted = wanted_readers(config, frozenset({"ACS ACR39U 00 00"}))
    assert {name: spec.backend for name, spec in wanted.items()} == {
        "ACS ACR39U 00 00": PCSC_BACKEND,
        "/dev/ttyUSB0": SERIAL_BACKEND,
        "Desk HC": SIM_BACKEND,
    }
    assert wanted_readers(replace(config, pcsc=False), frozenset({"ACS ACR39U 00 00"})).keys() == {
        "/dev/ttyUSB0",
        "Desk HC",
    }
    arguments = worker_arguments(config)
    assert str(tmp_path / "agent.key_secret") in arguments and "inf" in arguments
