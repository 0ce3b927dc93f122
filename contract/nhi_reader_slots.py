"""How the console names the NHI dedicated reader's two card slots. Pure.

The reader is one serial device with a health-card slot and a staff-card slot. Everywhere else in the
console a reader holds one card, so each slot is a reader of its own: the health-card slot is named by the
port itself (so `status.readerName` is the port, as the official console shows it) and the staff-card slot
by the port with `#hpc`. One worker process owns the port and serves both.
"""

from __future__ import annotations

STAFF_SLOT_SUFFIX = "#hpc"


def staff_slot_reader(port: str) -> str:
    return port + STAFF_SLOT_SUFFIX


def slot_readers(port: str) -> dict[str, str]:
    """The reader name of each slot, by the kind of card it is for."""
    return {"hc": port, "hpc": staff_slot_reader(port)}


def port_of(reader: str) -> str:
    return reader[: -len(STAFF_SLOT_SUFFIX)] if reader.endswith(STAFF_SLOT_SUFFIX) else reader
