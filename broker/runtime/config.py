"""The broker's configuration: what `python -m broker` is started with."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from broker.runtime.worker_pool import ReaderSpec


def load_by_name(path: str) -> Any:
    """`module:attribute`: wiring by name, so that the broker imports no worker or bench module of its own."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass
class BrokerConfig:
    api_endpoint: str
    worker_endpoint: str
    database: Path
    durability: str = "full"
    heartbeat_interval: float = 1.0
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
    pseudonym_key: Path | None = None
    """The installation's key for card pseudonyms (made on first use); None: a throwaway key."""
    archive_dir: Path | None = None
    """Where sealed segments go; None: the log is never sealed."""
    seal_max_live_rows: int | None = 1_000_000
    seal_max_age_seconds: float | None = 365 * 24 * 3600.0
    seal_check_interval: float = 60.0
    cloud_sam_dir: Path | None = None
    """Where imported cloud SAM files are kept (0600); None: in memory only (tests)."""
    dc_url: str | None = None
    """The data center's base URL (docs/dc-protocol.md); None: no DC, its calls answer 1700."""
    dc_ca: Path | None = None
    serial_ports: Callable[[], list[str]] | None = None
    """Lists the machine's serial ports (tests replace it); None: pyserial's listing."""
    extra_serial_ports: list[str] = field(default_factory=list)
    """Ports to offer even if the listing misses them: a udev symlink, the bench's NHI reader on a pty."""
    serial_backend: str = "workers.nhi_reader:open_reader"
    """`module:factory` of the NHI dedicated reader's back-end: one worker per port the session opens."""
    hca_trust: Path | None = None
    """PEM bundle of the HCA roots (and issuing CAs) staff certificates must chain to; None: none is trusted."""
    hpc_authentication_seconds: float = 8 * 3600.0
    mobile_hca_window_seconds: float = 300.0
    vhc_issuer: Path | None = None
    """PEM certificate(s) of the virtual health card token issuers; None: no token verifies (1523)."""


@dataclass
class SimStart:
    readers: list[str]
    cards: dict[str, str]
    default_reader: str | None
    cloud_sam: Path | None = None
    """The bench's cloud SAM file (made by the DC simulator's `prepare`), imported at a fresh start."""
