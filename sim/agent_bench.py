"""A reader agent's bench readers (`reader-agent --sim-reader NAME=PROFILE`): SIMULATION ONLY.

The console's bench readers get their cards from the console (the bench's control API puts and takes them); an
agent's are on another machine, which the console's bench does not drive. So an agent's bench reader starts with
the card of its profile in it, named by the agent in its workers' environment (`CARDS_ENV`, JSON
`{"reader": "profile"}`), and keeps it. It is the same `VirtualReader` as the console's, with the same card lab
(`NHI_CONSOLE_SIM_CARD_LAB`: slow cards that count their PIN VERIFYs) and the same count of APDUs
(`NHI_CONSOLE_SIM_CARD_COUNTS`), which is how the tests hold a command in flight across a network cut and count
what reached the card.
"""

from __future__ import annotations

import json
import os

from sim.card_commands import counter_from_environment
from sim.card_lab import lab_dir
from sim.profiles import make_card
from sim.virtual_reader import VirtualReader

CARDS_ENV = "NHI_CONSOLE_AGENT_SIM_CARDS"


def cards_from_environment() -> dict[str, str]:
    try:
        cards = json.loads(os.environ.get(CARDS_ENV) or "{}")
    except ValueError:
        return {}
    if not isinstance(cards, dict):
        return {}
    return {str(reader): str(profile) for reader, profile in cards.items()}


def open_reader(name: str) -> VirtualReader:
    """The worker's back-end factory (`sim.agent_bench:open_reader`)."""
    reader = VirtualReader(name, lab_dir(), counter_from_environment(name))
    profile = cards_from_environment().get(name)
    if profile:
        reader.insert(make_card(profile))
    return reader
