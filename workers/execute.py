"""The worker's pure core: what a request to a reader is answered, and which card a new insertion is.

`execute(request, slots) -> Reply` is the whole dispatch of a worker: the session commands on the card
of one insertion, the health card's public data, the NHI reader's own commands, the bench's controls,
and the translation of a reader's failures into the console's status codes. It holds no socket and
starts no thread, so the worker's loop (`workers/loop.py`) stays a thin shell of sockets, heartbeats
and the keypad's thread around it, and the tests' stand-in for the broker's loop runs this very code
against the bench's virtual cards and readers instead of a copy of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from contract.protocol import CardPresence, Reply, Request
from contract.status_codes import StatusCode
from workers.apdu import HC_AID, READ_HC_PUBLIC_DATA, parse_response, select_aid
from workers.card_kind import identify, read_card_identity
from workers.health_card import DataBlockError, parse_public_data
from workers.seam import CardAbsent, CardReader, PresenceChanged, ReaderError, ReaderFault, ReaderGone, SlotDevice
from workers.session_commands import SESSION_COMMANDS, run_session_command

BENCH_CONTROL = "ControlBackend"
"""The bench's command (insert or remove a virtual card), which only a reader with `control()` takes."""

log = logging.getLogger(__name__)

Outcome = tuple[int, dict[str, Any]]


@dataclass
class Slots:
    """What one worker serves and what is in it now.

    A worker serves one reader (`name`), or one device whose card slots it serves as readers of their own
    (the NHI dedicated reader, `device`); `cards` is the insertion each slot holds, as last reported, which
    is how a command meant for one insertion is refused when another card has taken its place.
    """

    name: str
    """The worker's reader: the one a request that names none is for."""
    backend: CardReader | SlotDevice
    """What the worker opened; a bench reader's `control()` is on it."""
    readers: dict[str, CardReader]
    device: SlotDevice | None = None
    cards: dict[str, CardPresence | None] = field(default_factory=dict)

    @classmethod
    def of(
        cls, name: str, backend: CardReader | SlotDevice, cards: dict[str, CardPresence | None] | None = None
    ) -> Slots:
        """The slots of what `load_backend` opened for reader `name`; every slot empty unless `cards` says."""
        device: SlotDevice | None = backend if _is_slot_device(backend) else None
        readers: dict[str, CardReader] = (
            device.slot_readers() if device is not None else {name: backend}  # type: ignore[dict-item]  # not a SlotDevice: a CardReader
        )
        return cls(
            name=name,
            backend=backend,
            readers=readers,
            device=device,
            cards=cards if cards is not None else dict.fromkeys(readers),
        )

    def is_long_command(self, request: Request) -> bool:
        """A command that may wait for the holder at the device's keypad, for a minute or two."""
        return self.device is not None and request.command in self.device.long_commands

    def take_change(self, change: PresenceChanged, new_session: Callable[[], int]) -> None:
        """Note a card's departure, or its arrival: identified now, as the insertion numbered `new_session()`."""
        slot = change.reader or self.name
        if change.atr is None:
            self.cards[slot] = None
        else:
            self.cards[slot] = identify_card(self.readers[slot], change.atr, new_session(), worker=self.name)


def _is_slot_device(backend: object) -> TypeGuard[SlotDevice]:
    return callable(getattr(backend, "slot_readers", None))


def identify_card(reader: CardReader, atr: bytes, session: int, *, worker: str) -> CardPresence:
    """Which card just arrived, by SELECTing its application, with its number and type for the broker.

    A card that cannot be read is still reported (as `unknown`): the holder sees it in, and the
    broker can tell it is there. Only the error's type is logged, never what the card answered."""
    try:
        with reader.transaction():
            kind = identify(reader.transmit)
            number, card_type = read_card_identity(reader.transmit, kind)
    except ReaderError as error:
        log.warning("reader %r: could not identify the card: %s", worker, type(error).__name__)
        kind, number, card_type = "unknown", None, None
    return CardPresence(atr=atr.hex().upper(), kind=kind, session=session, card_number=number, card_type=card_type)


def execute(request: Request, slots: Slots, *, device_held: bool = False) -> Reply:
    """Run one command; every request gets exactly one reply, whatever the card or the reader does.

    `device_held`: a keypad command is running aside and the device is the holder's, so anything
    else is answered at once (the keypad command itself runs with it False)."""
    name = request.reader or slots.name
    try:
        if name not in slots.readers:
            code, body = int(StatusCode.BAD_PARAMETER), {"message": "this worker does not serve that reader"}
        elif device_held:
            code, body = int(StatusCode.NHI_READER_FAILED), {"message": "the reader is waiting for its keypad"}
        elif request.command == "ReadPublicData":
            code, body = read_public_data(slots.readers[name])
        elif request.command == BENCH_CONTROL:
            code, body = _control_backend(slots.backend, request.args)
        elif request.command in SESSION_COMMANDS:
            code, body = _run_on_session_card(slots, name, request)
        elif slots.device is not None and request.command in slots.device.device_commands():
            code, body = _run_device_command(slots, name, request)
        else:
            code, body = int(StatusCode.BAD_PARAMETER), {"message": f"unknown worker command {request.command!r}"}
    except CardAbsent:
        code, body = int(StatusCode.NO_CARD), {"message": "no card in the reader"}
    except ReaderGone:
        code, body = int(StatusCode.READER_IN_USE_GONE), {"message": "the reader is gone"}
    except ReaderFault as fault:
        code, body = fault.code, {"message": fault.message}
    except ReaderError as error:
        code, body = int(StatusCode.PCSC_OTHER_ERROR), {"message": f"PC/SC error: {type(error).__name__}"}
    return Reply(id=request.id, code=code, body=body)


def bench_card_expected(request: Request, reply: Reply) -> bool | None:
    """After a bench control that worked: whether the reader is about to report a card in (True) or out (False).

    The worker waits for that report before it answers, so the caller's next request already sees the
    change; None for every other command and for a control that failed (no change is coming)."""
    if request.command != BENCH_CONTROL or reply.code != int(StatusCode.OK):
        return None
    return request.args.get("action") == "insert"


def _session_card_problem(slots: Slots, name: str, request: Request) -> Outcome | None:
    card = slots.cards.get(name)
    if card is None:
        return int(StatusCode.NO_CARD), {"message": "no card in the reader"}
    if request.args.get("session") != card.session:
        return int(StatusCode.NO_CARD), {"message": "a different card is in the reader"}
    return None


def _run_on_session_card(slots: Slots, name: str, request: Request) -> Outcome:
    """Commands for the card of one insertion (`session`): another card in the reader is not that card."""
    problem = _session_card_problem(slots, name, request)
    if problem is not None:
        return problem
    reader = slots.readers[name]
    with reader.transaction():
        return run_session_command(request.command, request.args, reader.transmit)


def _run_device_command(slots: Slots, name: str, request: Request) -> Outcome:
    """The device's own commands; those that carry a `session` are for that card in that slot."""
    assert slots.device is not None
    if "session" in request.args:
        problem = _session_card_problem(slots, name, request)
        if problem is not None:
            return problem
    return slots.device.run_device_command(name, request.command, request.args)


def read_public_data(reader: CardReader) -> Outcome:
    """The health card's public data block: public, so it needs no session, only a health card in the reader."""
    with reader.transaction():
        if not parse_response(reader.transmit(select_aid(HC_AID))).ok:
            return int(StatusCode.SELECT_APPLICATION_FAILED), {"message": "not a health card"}
        answer = parse_response(reader.transmit(READ_HC_PUBLIC_DATA))
    try:
        data = parse_public_data(answer)
    except DataBlockError as error:
        return int(StatusCode.PCSC_OTHER_ERROR), {"message": f"unreadable data block: {error}"}
    return int(StatusCode.OK), {
        "cardId": data.card_id,
        "name": data.name,
        "idNo": data.id_no,
        "birthday": data.birthday,
        "sex": data.sex,
        "dateIssue": data.date_issue,
    }


def _control_backend(backend: object, args: dict[str, Any]) -> Outcome:
    """A bench command (insert/remove a virtual card); the worker's loop then waits for the change to come back."""
    control = getattr(backend, "control", None)
    if control is None:
        return int(StatusCode.BAD_PARAMETER), {"message": "this reader is not a bench reader"}
    action = args.get("action")
    try:
        control(action, {key: value for key, value in args.items() if key != "action"})
    except ValueError as error:
        return int(StatusCode.BAD_PARAMETER), {"message": str(error)}
    return int(StatusCode.OK), {}
