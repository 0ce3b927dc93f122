"""The broker's configuration: its typed in-process form, built from the settings file in one function.

`serve` writes every setting once (contract/settings.py); `broker_config` is the one place that turns those
settings into what the broker's loop uses, so no default or conversion is written twice (the tests build a
`BrokerConfig` directly, with the same defaults)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.runtime.worker_pool import ReaderSpec
from contract.settings import LogSettings, ReaderSettings, Settings, StaffSettings

ADOPT_GRACE_HEARTBEATS = 2.5
"""After a restart, how many heartbeats the new broker waits for the previous one's workers to re-register."""
PCSC_BACKEND = "workers.pcsc_reader:open_reader"
"""`module:factory` of the PC/SC back-end, handed to each pcscd reader's worker by name."""


def load_by_name(path: str) -> Any:
    """`module:attribute`: wiring by name, so that the broker imports no worker or bench module of its own."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass
class BrokerConfig:
    api_endpoint: str
    worker_endpoint: str
    database: Path
    durability: str = LogSettings.durability
    heartbeat_interval: float = ReaderSettings.heartbeat_seconds
    readers: list[ReaderSpec] = field(default_factory=list)
    adopt_grace: float = 0.0
    """Seconds to wait for workers of a previous broker to re-register before starting new ones."""
    pcsc_backend: str | None = None
    """`module:factory` of the PC/SC back-end: when set, every reader pcscd lists gets a worker."""
    pcsc_listing: str = "workers.pcsc_reader:list_pcsc_readers"
    """`module:function` that lists pcscd's readers (polled off the loop), loaded by name like the back-ends."""
    sim_backend: str | None = None
    """`module:factory` of the bench's in-process readers: set in `--sim` mode."""
    sim_start: SimStart | None = None
    """The bench's start state, applied on a fresh start (not on a restart after a crash)."""
    bench: str = "sim.bench:install"
    """`module:function` that wires the bench into the core when `sim_backend` is set (by name: no sim/ import)."""
    pseudonym_key: Path | None = None
    """The installation's key for card pseudonyms (made on first use); None: a throwaway key."""
    archive_dir: Path | None = None
    """Where sealed segments go; None: the log is never sealed."""
    checkpoint_key: Path | None = None
    """The installation's checkpoint key (made on first use); None: no checkpoints (broker/runtime/checkpointing.py)."""
    seal_max_live_rows: int | None = LogSettings.seal_max_rows
    seal_max_age_seconds: float | None = LogSettings().seal_max_age_seconds
    seal_check_interval: float = LogSettings.seal_check_interval
    cloud_sam_dir: Path | None = None
    """Where imported cloud SAM files are kept (0600); None: in memory only (tests)."""
    dc_url: str | None = None
    """The data center's base URL (docs/dc-protocol.md); None: no DC, its calls answer 1700."""
    dc_ca: Path | None = None
    serial_ports: Callable[[], list[str]] | None = None
    """Lists the machine's serial ports (tests replace it); None: pyserial's listing."""
    extra_serial_ports: list[str] = field(default_factory=list)
    """Ports to offer even if the listing misses them: a udev symlink, the bench's NHI reader on a pty."""
    port_names: dict[str, str] = field(default_factory=dict)
    """Windows names given to ports (`COM3` → `/dev/ttyUSB0`; the bench's `COM1`): each is its port's one name."""
    serial_backend: str = "workers.nhi_reader:open_reader"
    """`module:factory` of the NHI dedicated reader's back-end: one worker per port the session opens."""
    hca_trust: Path | None = None
    """PEM bundle of the HCA roots (and issuing CAs) staff certificates must chain to; None: none is trusted."""
    hpc_authentication_seconds: float = StaffSettings().authentication_seconds
    mobile_hca_window_seconds: float = StaffSettings.mobile_hca_window_seconds
    vhc_issuer: Path | None = None
    """PEM certificate(s) of the virtual health card token issuers; None: no token verifies (1523)."""
    agent_endpoint: str | None = None
    """`serve --agents tcp://ADDRESS:PORT`: where reader agents connect (issue 23); None: nowhere."""
    agent_link_key: Path | None = None
    """The console's Curve key pair file for that endpoint."""


@dataclass
class SimStart:
    readers: list[str]
    cards: dict[str, str]
    default_reader: str | None
    cloud_sam: Path | None = None
    """The bench's cloud SAM file (made by the DC simulator's `prepare`), imported at a fresh start."""


def broker_config(settings: Settings, *, restarted: bool) -> BrokerConfig:
    """The broker's config from the settings `serve` wrote. `restarted`: the previous broker died and its workers
    live on (re-parented to the supervisor), so this one waits a few heartbeats for them before starting others."""
    where, bench = settings.locations, settings.bench
    heartbeat = settings.readers.heartbeat_seconds
    sim_start = None
    if bench is not None:
        sim_start = SimStart(
            readers=[reader.name for reader in bench.readers],
            cards={reader.name: reader.profile for reader in bench.readers if reader.profile},
            default_reader=bench.default_reader,
            cloud_sam=bench.cloud_sam,
        )
    return BrokerConfig(
        api_endpoint=where.api_endpoint,
        worker_endpoint=where.worker_endpoint,
        database=where.database,
        durability=settings.log.durability,
        heartbeat_interval=heartbeat,
        adopt_grace=heartbeat * ADOPT_GRACE_HEARTBEATS if restarted else 0.0,
        pcsc_backend=PCSC_BACKEND if settings.serves_pcsc else None,
        sim_backend=bench.reader_backend if bench is not None else None,
        sim_start=sim_start,
        pseudonym_key=where.pseudonym_key,
        checkpoint_key=where.checkpoint_key,
        archive_dir=where.archive_dir,
        seal_max_live_rows=settings.log.seal_max_rows,
        seal_max_age_seconds=settings.log.seal_max_age_seconds,
        seal_check_interval=settings.log.seal_check_interval,
        cloud_sam_dir=where.cloud_sam_dir,
        dc_url=settings.data_center.url,
        dc_ca=settings.data_center.ca,
        hca_trust=settings.data_center.hca_trust,
        hpc_authentication_seconds=settings.staff.authentication_seconds,
        mobile_hca_window_seconds=settings.staff.mobile_hca_window_seconds,
        vhc_issuer=settings.data_center.vhc_issuer,
        extra_serial_ports=list(settings.offered_serial_ports()),
        port_names={port.name: port.device for port in settings.offered_port_names()},
        agent_endpoint=settings.readers.agents,
        agent_link_key=where.agent_link_key if settings.readers.agents is not None else None,
    )
