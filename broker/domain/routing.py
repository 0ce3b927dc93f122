"""Which reader a card operation goes to (contract.md, "Devices, readers and the session"). Pure.

The default reader if it holds a card of the kind asked for; otherwise the one
other reader that holds one (the classic two-reader desk: staff card in one,
patient card in the other).  Two other candidates and no default holding
one is ambiguous: we refuse rather than guess whose card to read.  A session
on an NHI dedicated reader reads its cards in that reader's slots only.
"""

from __future__ import annotations

from broker.domain.state import SAM_PHYSICAL, ConsoleState
from contract.nhi_reader_slots import slot_readers
from contract.status_codes import StatusCode


def reader_for(state: ConsoleState, kind: str) -> str | StatusCode:
    if state.initialized and state.sam.type == SAM_PHYSICAL and state.device_name is not None:
        return _nhi_slot_for(state, state.device_name, kind)
    holding = sorted(
        name for name, reader in state.readers.items() if reader.card is not None and reader.card.kind == kind
    )
    default = state.default_reader
    if default is not None and default in holding:
        return default
    if len(holding) == 1:
        return holding[0]
    if default is None:
        return StatusCode.NO_DEFAULT_READER
    if default not in state.readers:
        return StatusCode.READER_IN_USE_GONE
    return StatusCode.NO_CARD


def _nhi_slot_for(state: ConsoleState, port: str, kind: str) -> str | StatusCode:
    """A session on an NHI dedicated reader reads its cards there: the card and the reader's SAM authenticate
    each other inside the reader, which a card in another reader cannot do."""
    name = slot_readers(port).get(kind)
    if name is None:
        return StatusCode.NO_CARD
    reader = state.readers.get(name)
    if reader is None:
        return StatusCode.NHI_READER_FAILED  # its worker is not (yet, or any more) reporting
    if reader.card is None or reader.card.kind != kind:
        return StatusCode.NO_CARD
    return name


def auto_detected_reader(state: ConsoleState) -> str | None:
    """`AutoDetected`: the first reader (by name) holding a health card, else one holding a staff card."""
    for kind in ("hc", "hpc"):
        for name in sorted(state.readers):
            card = state.readers[name].card
            if card is not None and card.kind == kind:
                return name
    return None
