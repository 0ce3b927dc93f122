"""`nhi-console reader-agent`: the console's reader workers, run on the machine the readers are plugged into.

The agent is a small supervisor. It finds its readers (what pcscd lists, the `--serial` ports of NHI dedicated
readers, and on the bench `--sim-reader`s), starts one worker each, the same `python -m workers` the console
starts, and restarts one that exits, with the broker's own backoff (broker/runtime/worker_pool.py, whose pool it
reuses: its workers report to the console, not to it, so it knows them by their processes only). Each worker
connects to the console's agent endpoint over CurveZMQ with the agent's key pair, which it reads from the key
file whose *path* it is given (contract/agent_link.py); across a network loss ZeroMQ reconnects it with backoff,
and it reports its reader and card again as soon as it is through. It waits for the console however long it is
away: only the agent's own exit (or its death: the worker is re-parented) ends it.

What the agent does not decide: its readers' names on the console (`NAME/reader`, NAME being what the console
enrolled its key as) and whether they are wanted (every reader of an enrolled agent is).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from broker.runtime.liveness import WorkerRegistry
from broker.runtime.pcsc_discovery import PcscDiscovery
from broker.runtime.worker_pool import ReaderSpec, WorkerPool
from contract.agent_link import AgentKeys
from contract.nhi_reader_slots import staff_slot_reader

PCSC_BACKEND = "workers.pcsc_reader:open_reader"
SERIAL_BACKEND = "workers.nhi_reader:open_reader"
SIM_BACKEND = "sim.agent_bench:open_reader"
SIM_CARDS_ENV = "NHI_CONSOLE_AGENT_SIM_CARDS"
"""sim/agent_bench.py's `CARDS_ENV`, named here too so that the agent imports nothing of sim/ unless asked."""
TURN_SECONDS = 0.25

log = logging.getLogger("nhi_console.reader_agent")


@dataclass(frozen=True)
class AgentConfig:
    console: str
    """The console's agent endpoint, `tcp://HOST:PORT`."""
    keys: AgentKeys
    pcsc: bool = True
    serial_ports: tuple[str, ...] = ()
    sim_readers: tuple[tuple[str, str], ...] = ()
    """(reader, profile): bench readers with a card in each (SIMULATION ONLY)."""
    heartbeat_seconds: float = 1.0


def wanted_readers(config: AgentConfig, pcsc_readers: frozenset[str]) -> dict[str, ReaderSpec]:
    """The readers this agent serves now, each with its back-end. Pure."""
    wanted: dict[str, ReaderSpec] = {}
    for name in sorted(pcsc_readers) if config.pcsc else ():
        wanted[name] = ReaderSpec(name, PCSC_BACKEND)
    for port in config.serial_ports:
        wanted[port] = ReaderSpec(port, SERIAL_BACKEND, companions=(staff_slot_reader(port),))
    for name, _ in config.sim_readers:
        wanted[name] = ReaderSpec(name, SIM_BACKEND)
    return wanted


def worker_arguments(config: AgentConfig) -> tuple[str, ...]:
    """What every worker is told besides its reader: the key file's path and the console's public key, never a
    secret; and to wait for the console for good (`inf`)."""
    return (
        "--agent-keys",
        str(config.keys.secret_file),
        "--console-key",
        config.keys.console_key,
        "--orphan-after",
        "inf",
    )


class ReaderAgent:
    def __init__(self, config: AgentConfig, list_pcsc: Callable[[], list[str]] | None = None) -> None:
        self._config = config
        self._stop = threading.Event()
        self._discovery: PcscDiscovery | None = None
        if config.pcsc:
            if list_pcsc is None:
                from workers.pcsc_reader import list_pcsc_readers

                list_pcsc = list_pcsc_readers
            self._discovery = PcscDiscovery(list_pcsc)
        self._pool = WorkerPool(
            config.console,
            WorkerRegistry(config.heartbeat_seconds),
            registration_timeout=math.inf,  # its workers report to the console: a slow start is not a hang here
            worker_args=worker_arguments(config),
        )

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> None:
        if self._config.sim_readers:
            os.environ[SIM_CARDS_ENV] = json.dumps(dict(self._config.sim_readers))  # the workers inherit it
        if self._discovery is not None:
            self._discovery.start()
        log.info("reader agent serving its readers to %s", self._config.console)
        served: set[str] = set()
        try:
            while not self._stop.is_set():
                found = self._discovery.readers() if self._discovery is not None else frozenset()
                wanted = wanted_readers(self._config, found)
                lost, unwanted = self._pool.reconcile(wanted, time.monotonic())
                for reader, reason in lost:
                    log.warning("reader %r: %s; restarting its worker", reader, reason)
                for reader in unwanted:
                    log.info("reader %r is gone", reader)
                if set(wanted) != served:
                    served = set(wanted)
                    log.info("serving %d reader(s): %s", len(served), ", ".join(sorted(served)) or "none")
                self._stop.wait(TURN_SECONDS)
        finally:
            if self._discovery is not None:
                self._discovery.stop()
            self._pool.stop_all()


def run_agent(config: AgentConfig) -> int:
    agent = ReaderAgent(config)

    def _stop(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    agent.run()
    return 0


def default_agent_dir() -> Path:
    configured = os.environ.get("NHI_CONSOLE_AGENT_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nhi-console-agent"
