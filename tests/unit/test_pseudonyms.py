"""Card numbers reach the log only as the installation's keyed hash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker.core import ConsoleCore
from broker.domain.pseudonyms import Pseudonyms, load_or_create_key
from broker.runtime.clock import ManualClock
from contract.protocol import CardPresence, WorkerStatus
from eventlog.memory_store import MemoryEventStore


def test_stable_per_key_and_unlinkable_across_keys() -> None:
    one, other = Pseudonyms(b"k" * 32), Pseudonyms(b"j" * 32)
    assert one.card("900000000711") == one.card("900000000711")
    assert one.card("900000000711") != one.card("900000000712")
    assert one.card("900000000711") != other.card("900000000711")
    assert one.card("900000000711").startswith("card:") and "900000000711" not in one.card("900000000711")
    assert one.person("R88855084A") != one.card("R88855084A")  # domains kept apart


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Pseudonyms(b"short")


def test_the_key_file_is_made_once_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "pseudonym.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]


def test_the_card_number_becomes_a_card_ref_in_the_event() -> None:
    store = MemoryEventStore()
    pseudonyms = Pseudonyms(b"k" * 32)
    core = ConsoleCore(store, ManualClock(), pseudonyms=pseudonyms)
    card = CardPresence(atr="3B00", kind="hc", session=5, card_number="900000000711")
    core.worker_reported(WorkerStatus(reader="R", backend="b", pid=1, card=card))
    payloads = [event.payload for event in store.events()]
    assert any(pseudonyms.card("900000000711").encode() in payload for payload in payloads)
    assert not any(b"900000000711" in payload for payload in payloads)
