"""Loopback ports picked below the kernel's ephemeral range, in bands (deploy/ports.py)."""

from __future__ import annotations

import socket

import pytest

from deploy import ports


def test_a_port_of_each_band_lies_in_that_band_below_the_ephemeral_range() -> None:
    low = ports.ephemeral_low()
    for band in (0, 1):
        port = ports.free_loopback_port(band)
        assert low - (band + 1) * ports.BAND_WIDTH <= port < low - band * ports.BAND_WIDTH


def test_a_taken_port_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports.free_loopback_port(0)))
        taken = holder.getsockname()[1]
        picks = iter([taken, taken, taken + 1 if taken + 1 < ports.ephemeral_low() else taken - 1])
        monkeypatch.setattr(ports.random, "randrange", lambda low, high: next(picks))
        assert ports.free_loopback_port(0) != taken


def test_where_the_bands_do_not_fit_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_low", lambda: 5000)  # 5000 - 6000 < 1024
    port = ports.free_loopback_port(0)
    assert 0 < port < 65536
