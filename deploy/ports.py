"""Choosing a loopback port for a process that binds it a moment later, without a race.

The usual trick (bind port 0, read the port, close, hand it on) leaves the port free until its user binds it,
and the kernel hands out ports from the same ephemeral range to every other bind(0) and every outgoing
connection meanwhile: under a parallel test run one console's DC simulator took another console's HTTPS port
that way. Ports are therefore picked below the ephemeral range, in bands kept apart by who picks them (the
bench's DC simulator, the tests' consoles), where neither bind(0) nor a client connection ever lands.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
BAND_WIDTH = 6000


def ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_loopback_port(band: int, tries: int = 64) -> int:
    """A port of band `band` (0: just below the ephemeral range, 1: the band below that, ...) free on 127.0.0.1
    now; bind(0)'s choice where the bands do not fit."""
    high = ephemeral_low() - band * BAND_WIDTH
    low = high - BAND_WIDTH
    if low >= 1024:
        for _ in range(tries):
            port = random.randrange(low, high)
            if _bindable(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
