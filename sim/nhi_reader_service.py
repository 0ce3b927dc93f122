"""The bench's virtual NHI dedicated reader as its own process, with a control socket.

SIMULATION ONLY. `python -m sim.nhi_reader_service --link PATH --sam-file FILE --control ENDPOINT
[--card hc=PROFILE] [--card hpc=PROFILE]` puts `sim.nhi_reader.VirtualNhiReader` (its physical SAM loaded from
FILE, a SAM file the DC simulator issued) on a real pseudo-terminal reachable at the symlink PATH, and answers
the bench's controls on a ZeroMQ REP socket bound at ENDPOINT (an `ipc://` path). A process of its own, so the
console's serial worker meets it exactly as it would a real reader: a port that may be pulled out, whose
owner it does not share memory with.

The control protocol: one msgpack map per request, one per answer.

| request | answer after `{"ok": true}` |
|---|---|
| `{"op": "describe"}` | `"port"`: the link, `"plugged"`: bool, `"slots"`: `{"hc": {"profile"} or nil, "hpc": ...}`, `"cardCommands"`: how many commands reached its cards or its SAM so far |
| `{"op": "frames"}` | `"repeated"`: frames it answered without running them (retransmissions, answered from its cache) |
| `{"op": "insert", "slot": "hc"\\|"hpc", "profile": name}` | — (a fresh card; any kind in any slot: a clerk can put the wrong card in) |
| `{"op": "remove", "slot": "hc"\\|"hpc"}` | — |
| `{"op": "keypad", "keys": "1-16 digits"}` or `{"op": "keypad", "cancel": true}` | — (queued for the next PIN prompt) |
| `{"op": "unplug"}` / `{"op": "replug"}` | — (replug restarts the reader: a new pty, its answer cache and typed-ahead keys gone) |

A refusal is `{"ok": false, "error": message, "status": 400|404}` (404: no such slot), and changes nothing;
`"status": 500` says the reader itself failed (its pty thread did not unplug in time, say).
Keys typed on the keypad are PINs: they are never logged and never put in a message.

The process stops cleanly on SIGTERM or SIGINT (the pty closed, the link removed, the socket closed), and on
its own when its parent (the console's supervisor) is gone.
"""  # noqa: E501 - a Markdown table's rows cannot be wrapped

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import msgpack
import zmq

from broker.credentials.cloud_sam_file import CloudSamFileInvalid
from sim.card_lab import LabCard, lab_dir
from sim.cards.base import VirtualCard
from sim.nhi_control import SLOT_NAMES, valid_keys
from sim.nhi_reader import KEYPAD_MAX_DIGITS, PtyNhiReader, VirtualNhiReader
from sim.profiles import PROFILES, make_card
from workers.serial_protocol import CMD_CLOCK, CMD_INFO, CMD_STATUS, SLOT_HC, SLOT_HPC

SLOTS: dict[str, int] = dict(zip(SLOT_NAMES, (SLOT_HC, SLOT_HPC), strict=True))
"""The slots by the names the controls use: the health card's and the staff card's."""

POLL_INTERVAL = 0.2
"""How often the loop looks up from the socket: a stop signal or a lost parent is noticed this quickly."""

PLUG_TIMEOUT = 3.0
"""Shorter than the client's 5 s, so a stuck pty thread is reported as such rather than as silence."""

MAX_REQUEST_BYTES = 64 * 1024

log = logging.getLogger("sim.nhi_reader_service")


class ControlRefused(Exception):
    """A control the reader will not carry out; nothing was changed. The message never holds a keypad key."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BenchNhiReader:
    """The bench's hands on the reader: cards in and out, the keypad, the cable. No sockets, so it is testable.

    It remembers which profile it put in each slot (the device knows cards, not profiles); a slot reports
    its profile only while that very card is still in it.
    """

    def __init__(self, reader: PtyNhiReader) -> None:
        self._reader = reader
        self._inserted: dict[int, tuple[str, VirtualCard]] = {}

    def insert(self, slot: object, profile: object) -> None:
        number = _slot(slot)
        if not isinstance(profile, str) or profile not in PROFILES:
            raise ControlRefused(400, "unknown profile; GET /api/sim/v1/Profiles lists them")
        card: VirtualCard = make_card(profile)
        lab = lab_dir()
        if lab is not None:  # the liveness tests' slow cards (sim/card_lab.py)
            card = LabCard(card, lab)
        self._reader.insert(number, card)
        self._inserted[number] = (profile, card)
        log.info("card %s put in the %s slot", profile, slot)

    def remove(self, slot: object) -> None:
        number = _slot(slot)
        self._reader.remove(number)
        self._inserted.pop(number, None)
        log.info("the %s slot emptied", slot)

    def describe(self) -> dict[str, Any]:
        slots: dict[str, dict[str, str] | None] = {}
        for name, number in SLOTS.items():
            inserted = self._inserted.get(number)
            if inserted is not None and self._reader.device.card(number) is inserted[1]:
                slots[name] = {"profile": inserted[0]}
            else:
                slots[name] = None
        runs = self._reader.device.runs
        card_commands = sum(count for cmd, count in runs.items() if cmd not in (CMD_STATUS, CMD_INFO, CMD_CLOCK))
        return {
            "port": str(self._reader.link_path),
            "plugged": self._reader.plugged,
            "slots": slots,
            "cardCommands": card_commands,
        }

    def repeated_frames(self) -> int:
        """Frames the device got but did not run: the host's retransmissions (or frames refused busy)."""
        return max(0, len(self._reader.received) - sum(self._reader.device.runs.values()))

    def keypad(self, keys: object, cancel: object) -> None:
        """One keypad entry (digits, then Enter) or Cancel; exactly one of the two. Logs neither the keys nor
        how many there were: both would tell something about a PIN."""
        if (keys is None) == (cancel is None):
            raise ControlRefused(400, f"give either keys (1 to {KEYPAD_MAX_DIGITS} digits) or cancel: true")
        if cancel is not None:
            if cancel is not True:
                raise ControlRefused(400, "cancel must be true")
            self._reader.device.cancel()
            return
        if not valid_keys(keys):
            raise ControlRefused(400, f"keys must be 1 to {KEYPAD_MAX_DIGITS} digits")
        self._reader.device.press(keys)

    def unplug(self) -> None:
        self._plug("unplug")

    def replug(self) -> None:
        self._plug("replug")

    def _plug(self, what: str) -> None:
        try:
            (self._reader.unplug if what == "unplug" else self._reader.replug)(PLUG_TIMEOUT)
        except TimeoutError:
            raise ControlRefused(500, f"the reader did not {what} in time") from None
        log.info("%s: the reader is %s", what, "plugged in" if self._reader.plugged else "unplugged")

    def handle(self, request: object) -> dict[str, Any]:
        """One control request to its answer map; every refusal is an answer, never an exception."""
        try:
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ControlRefused(400, "a request is a map with an op")
            op = request["op"]
            if op == "describe":
                return {"ok": True, **self.describe()}
            if op == "frames":
                return {"ok": True, "repeated": self.repeated_frames()}
            if op == "insert":
                self.insert(request.get("slot"), request.get("profile"))
            elif op == "remove":
                self.remove(request.get("slot"))
            elif op == "keypad":
                self.keypad(request.get("keys"), request.get("cancel"))
            elif op == "unplug":
                self.unplug()
            elif op == "replug":
                self.replug()
            else:
                raise ControlRefused(400, "unknown op; describe, insert, remove, keypad, unplug or replug")
        except ControlRefused as refusal:
            return {"ok": False, "error": refusal.message, "status": refusal.status}
        except Exception as error:  # the REP socket must answer, or the next control finds it stuck
            # The type only: a message or a traceback's repr could carry a request's values, keys included.
            log.error("a control failed: %s", type(error).__name__)
            return {"ok": False, "error": "the bench NHI reader failed", "status": 500}
        return {"ok": True}


def _slot(name: object) -> int:
    if not isinstance(name, str) or name not in SLOTS:
        raise ControlRefused(404, "no such slot; the bench NHI reader has hc and hpc")
    return SLOTS[name]


def _decode(frames: list[bytes]) -> object:
    """The request map, or None for anything else (several frames, not msgpack): `handle` refuses None."""
    if len(frames) != 1:
        return None
    try:
        return msgpack.unpackb(frames[0], raw=False)
    except Exception:  # msgpack raises several unrelated types on garbage
        return None


class _Stop:
    """Set by SIGTERM/SIGINT; the loop looks at it between polls (a handler that raised could cut a reply)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def serve(bench: BenchNhiReader, socket: zmq.Socket, stop: _Stop, parent: int) -> None:
    """Answer controls until asked to stop or until `parent`, the process that started us, is gone.

    The parent check compares with the parent at start rather than with 1 (init): a subreaper (a user's
    systemd) adopts orphans too, and a reader nobody controls must not linger holding its link.
    """
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    while not stop.requested:
        if os.getppid() != parent:
            log.warning("the console is gone; the bench NHI reader stops")
            return
        if not dict(poller.poll(int(POLL_INTERVAL * 1000))):
            continue
        request = _decode(socket.recv_multipart())
        socket.send(msgpack.packb(bench.handle(request), use_bin_type=True))


def _remove_ipc_file(endpoint: str) -> None:
    """libzmq leaves a bound ipc:// socket's file behind on close; a stopped reader leaves nothing."""
    if endpoint.startswith("ipc://"):
        try:
            Path(endpoint[len("ipc://") :]).unlink(missing_ok=True)
        except OSError:
            pass  # best effort: the next bind replaces a leftover file anyway


def _card_option(text: str) -> tuple[str, str]:
    slot, _, profile = text.partition("=")
    if slot not in SLOTS:
        raise argparse.ArgumentTypeError("a card is hc=PROFILE or hpc=PROFILE")
    if profile not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {profile!r}")
    return slot, profile


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim.nhi_reader_service",
        description="The bench's virtual NHI dedicated reader (SIMULATION ONLY).",
    )
    parser.add_argument("--link", type=Path, required=True, help="the symlink to the reader's pseudo-terminal")
    parser.add_argument("--sam-file", type=Path, required=True, help="the physical SAM's file (issued by sim.dc)")
    parser.add_argument("--control", required=True, help="the control socket's endpoint (ipc://PATH)")
    parser.add_argument(
        "--card",
        type=_card_option,
        action="append",
        default=[],
        metavar="SLOT=PROFILE",
        help="a card in the reader at start (hc=hc-basic, hpc=hpc-doctor)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parent = os.getppid()  # first thing: the later it is read, the likelier an orphan takes its adopter for it
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("NHI_CONSOLE_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s nhi-reader %(levelname)s %(name)s: %(message)s",
    )
    try:
        device = VirtualNhiReader(args.sam_file.read_bytes())
    except OSError as error:
        log.error("the SAM file %s cannot be read (%s)", args.sam_file, type(error).__name__)
        return 1
    except CloudSamFileInvalid:
        log.error("the SAM file %s is not a SAM file", args.sam_file)  # never its content
        return 1
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    context = zmq.Context()
    socket = context.socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
    reader = PtyNhiReader(args.link, device)
    try:
        socket.bind(args.control)  # before the link appears: whoever waits for the link may control at once
        bench = BenchNhiReader(reader)
        for slot, profile in args.card:
            bench.insert(slot, profile)
        reader.start()
        log.info("serving %s (control %s)", args.link, args.control)
        serve(bench, socket, stop, parent)
    finally:
        reader.stop()
        socket.close(linger=0)
        context.term()
        _remove_ipc_file(args.control)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
