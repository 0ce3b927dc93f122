"""Every PIN, PUK and token the integration tests type, in one place, and what the end-of-run check looks for, so
that none of them reaches a log line, an event, a record or the test output unseen (contract.md, "Never"), written
out, hex-dumped or base64-encoded (tests/secret_forms.py says which forms and why).

Long secrets (8 digits and up, and the tokens of the run) are chosen to be unlikely to occur by chance and are
searched for bare, in every form. Short ones (the 4-6 digit PINs) are digit runs that timestamps, session numbers
and hashes hold by chance, and their hex and base64 are short enough to turn up by chance in certificates,
signatures and hash chains (every PEM of the bench holds base64 of `000000`, from the `...000000Z` of its
certificates' dates, and one console's data dir holds a 4-character base64 fragment of `1234` in four files);
so, as for text before, they are searched only in the contexts a leak would put them
in: quoted or assigned (`"1234"`, `'1234'`, `=1234` with no digit after it, as a JSON body, a repr or a key=value
log line would put them; so `port=1234` is a finding too, there is no telling it from `pin=1234`), and
inside the APDUs that carry them, encoded as the workers encode them (ASCII digits as VERIFY's or CHANGE REFERENCE
DATA's data, workers/apdu.py; no BCD, no padding), in case an APDU is ever dumped. Each context is searched as
text, and as hex and base64 where those carry at least MIN_BITS: a 42-bit pattern turns up by accident in random
text of its alphabet about once in 4*10**12 places, so even if all of a run's data dirs, logs and output (tens of MB)
were random hex or base64, its few hundred patterns would raise a false alarm about once in 500 runs (and most of it
is not: logs, SQLite pages, JSON); `=1234`'s 10 hex digits (40 bits) and 6 base64 characters (36 bits) are left
out, `"1234"`'s 12 and 7-8 are in. A bare short PIN, or its hex or base64 alone, is not searched for: that is the
price of no false alarms, paid where a leak has no context around it (`verify 1234`).

Findings name the secret and the form, never the secret itself: the report goes to the test output, which is
searched too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.secret_forms import every_form
from workers.apdu import HC_PIN_P2, STAFF_PIN_P2, change_reference_data, verify

PROFILE_PIN = "000000"
PROFILE_PUK = "12345678"
WRONG_PIN = "93817264"
WRONG_PUK = "55511199"
NEW_PIN = "75312468"
CHANGED_PIN = "86420975"

HC_PROFILE_PIN = "1234"
"""hc-pin's PIN (sim-control.md)."""
WRONG_HC_PIN = "5791"
NEW_HC_PIN = "864213"

LONG = {
    "PROFILE_PUK": PROFILE_PUK,
    "WRONG_PIN": WRONG_PIN,
    "WRONG_PUK": WRONG_PUK,
    "NEW_PIN": NEW_PIN,
    "CHANGED_PIN": CHANGED_PIN,
}
SHORT = {
    "PROFILE_PIN": PROFILE_PIN,
    "HC_PROFILE_PIN": HC_PROFILE_PIN,
    "WRONG_HC_PIN": WRONG_HC_PIN,
    "NEW_HC_PIN": NEW_HC_PIN,
}
MIN_BITS = 42
"""The least a hex or base64 pattern must say to be searched (see the module docstring)."""


@dataclass(frozen=True)
class Needle:
    label: str
    """Which secret, in which context and form; safe to print."""
    pattern: bytes
    digit_bounded: bool = False
    """Counts only where no digit follows: `=1234` is not in `port=12345`."""

    def in_(self, content: bytes) -> bool:
        start = content.find(self.pattern)
        while start >= 0 and self.digit_bounded:
            end = start + len(self.pattern)
            if end == len(content) or not content[end : end + 1].isdigit():
                return True
            start = content.find(self.pattern, start + 1)
        return start >= 0


def short_contexts(pin: bytes) -> dict[str, bytes]:
    """Where a short PIN would be if it leaked: a quoted or assigned value, or the APDU data that carries it."""
    return {
        "in double quotes": b'"' + pin + b'"',
        "in single quotes": b"'" + pin + b"'",
        "after =": b"=" + pin,
        "in a health card VERIFY": verify(HC_PIN_P2, pin),
        "in a health card CHANGE REFERENCE DATA": change_reference_data(HC_PIN_P2, pin),
        "in a staff card VERIFY": verify(STAFF_PIN_P2, pin),
        "in a staff card CHANGE REFERENCE DATA": change_reference_data(STAFF_PIN_P2, pin),
    }


def needles_for(name: str, secret: bytes) -> list[Needle]:
    return [
        Needle(f"{name} as {form.name}", form.pattern)
        for form in every_form(secret)
        if form.name == "text" or form.bits >= MIN_BITS
    ]


def short_needles_for(name: str, pin: bytes) -> list[Needle]:
    return [
        Needle(f"{name} {context}, as {form.name}", form.pattern, digit_bounded=context == "after =")
        for context, data in short_contexts(pin).items()
        for form in every_form(data)
        if form.name == "text" or form.bits >= MIN_BITS
    ]


TYPED: tuple[Needle, ...] = (
    *(needle for name, secret in LONG.items() for needle in needles_for(name, secret.encode())),
    *(needle for name, pin in SHORT.items() for needle in short_needles_for(name, pin.encode())),
)
"""What the check looks for, for the secrets the tests type."""


REMEMBERED: list[bytes] = []
"""Secrets made during the run (virtual card tokens, transfer tokens), searched for too."""


def remember(secret: str) -> str:
    """Note a token a test handles, so the end-of-run check looks for it; returns it unchanged."""
    REMEMBERED.append(secret.encode())
    return secret


def needles(remembered: Sequence[bytes]) -> list[Needle]:
    """The typed secrets' needles and those of the tokens made during the run (long: searched bare)."""
    made = [
        needle
        for index, token in enumerate(dict.fromkeys(remembered), start=1)
        for needle in needles_for(f"token #{index} of the run", token)
    ]
    return [*TYPED, *made]


def files_holding_secrets(roots: Sequence[Path], remembered: Sequence[bytes] | None = None) -> list[str]:
    """`path: which secret, as what` for every file under `roots` (or the file itself) holding a secret a test typed
    or a token it remembered (by default the ones `remember` noted in this process)."""
    searched = needles(REMEMBERED if remembered is None else remembered)
    found = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
        for path in paths:
            try:
                content = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {needle.label}" for needle in searched if needle.in_(content)]
    return found
