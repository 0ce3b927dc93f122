"""`snapshot(state)` is what `log replay` and the crash tests compare: two states that differ must not look alike."""

from __future__ import annotations

from dataclasses import fields, replace
from types import MappingProxyType
from typing import Any

import pytest

from broker.domain.state import (
    CardInReader,
    ConsoleState,
    HcState,
    HpcState,
    PhysicalSamIdentity,
    ReaderState,
    SamState,
    snapshot,
)

OTHER_VALUES: dict[type, dict[str, Any]] = {
    ConsoleState: {
        "readers": MappingProxyType({"R": ReaderState("R", "sim", CardInReader("3B00", "hc", 7, "ref", 1))}),
        "default_reader": "R",
        "initialized": True,
        "device_name": "901000000047",
        "reader_in_use": "R",
        "record_cleared_through": 12,
        "sim_readers": MappingProxyType({"R": "hc-basic"}),
        "cloud_sams": MappingProxyType({"901000000047": "777777777"}),
        "last_device": "901000000047",
        "clock_offset_seconds": 60,
        "cors_hosts": ("localhost",),
        "agents": MappingProxyType({"desk-2": "ab" * 32}),
        "departed_cards": MappingProxyType({"desk-2/R": CardInReader("3B00", "hpc", 9, "ref", 2)}),
    },
    SamState: {
        "status": 2,
        "type": 1,
        "expire_time": "2030-01-01T00:00:00+00:00",
        "physical": PhysicalSamIdentity("/dev/ttyUSB0", "1", "2", "name", "short"),
    },
    HpcState: {
        "status": 3,
        "type": 1,
        "expire_time": "2030-01-01T00:00:00+00:00",
        "reader": "R",
        "session": 3,
        "card_ref": "ref",
        "pin_session": 3,
    },
    HcState: {
        "status": 2,
        "type": 1,
        "expire_time": "2030-01-01T00:00:00+00:00",
        "has_pin": True,
        "verified_pin": False,
        "reader": "R",
        "session": 3,
        "card_ref": "ref",
    },
}
NESTED = {"sam": SamState, "hpc": HpcState, "hc": HcState}


def _one_field_changed() -> list[tuple[str, ConsoleState]]:
    base = ConsoleState()
    changed = []
    for field in fields(ConsoleState):
        if field.name in NESTED:
            part = getattr(base, field.name)
            for inner in fields(NESTED[field.name]):
                value = OTHER_VALUES[NESTED[field.name]][inner.name]  # a new field needs a value here, and a key
                nested = replace(part, **{inner.name: value})
                changed.append((f"{field.name}.{inner.name}", replace(base, **{field.name: nested})))
        else:
            changed.append((field.name, replace(base, **{field.name: OTHER_VALUES[ConsoleState][field.name]})))
    return changed


@pytest.mark.parametrize(("name", "state"), _one_field_changed(), ids=[name for name, _ in _one_field_changed()])
def test_every_field_of_the_state_shows_in_its_snapshot(name: str, state: ConsoleState) -> None:
    assert snapshot(state) != snapshot(ConsoleState()), f"{name} is missing from snapshot()"
