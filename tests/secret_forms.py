"""The shapes a secret takes once something renders bytes as text: itself, hex, base64. Pure.

A PIN that reaches a log through a hex dump or a base64 blob is as leaked as one written out, so the end-of-run
check looks for these forms too. Hex is searched in both cases, bare (`3132`) and spaced the way pyscard's
`toHexString` and most APDU dumps write it (`31 32`). Base64 is subtler: a secret inside a longer byte string
shows up differently depending on where it starts in base64's 3-byte groups, and the characters at its two ends
mix in the neighbouring bytes. So for each of the three alignments (the secret starting at offset 0, 1 or 2 of
a group) only the stretch of characters made from the secret's bits alone is searched, which is what every
encoding of any string holding the secret at that alignment contains, in the standard and the URL-safe alphabet.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass(frozen=True)
class Form:
    """One way the secret can appear in a file; `name` says which, so a finding is reported without the secret."""

    name: str
    pattern: bytes
    bits: int
    """How much the pattern says: the chance that text of its alphabet holds it by accident at a given place is
    2**-bits (8 per byte of text, 4 per hex digit, 6 per base64 character)."""


def hex_forms(data: bytes) -> list[Form]:
    lower = data.hex()
    candidates = [
        ("hex", lower),
        ("HEX", lower.upper()),
        ("spaced hex", data.hex(" ")),
        ("spaced HEX", data.hex(" ").upper()),
    ]
    return _distinct([Form(name, text.encode("ascii"), 4 * len(lower)) for name, text in candidates])


def base64_fragment(data: bytes, offset: int) -> bytes:
    """The base64 characters that depend only on `data`, when `data` starts `offset` (0-2) bytes into a group.

    Character i of an encoding holds bits 6i..6i+5 of the input; `data` holds bits 8*offset..8*(offset+len)-1,
    so the characters whose six bits all fall inside that range are the same whatever surrounds `data`.
    """
    if offset not in (0, 1, 2):
        raise ValueError("a secret starts at offset 0, 1 or 2 of base64's 3-byte groups")
    first_bit, end_bit = 8 * offset, 8 * (offset + len(data))
    first = -(-first_bit // 6)  # the first character starting at or after the secret's first bit
    end = end_bit // 6  # characters before this one end at or before the secret's last bit
    padded = bytes(offset) + data + bytes(2)
    return base64.b64encode(padded)[first:end]


def base64_forms(data: bytes) -> list[Form]:
    forms = []
    for offset in (0, 1, 2):
        fragment = base64_fragment(data, offset)
        url_safe = fragment.replace(b"+", b"-").replace(b"/", b"_")
        forms.append(Form(f"base64 at offset {offset}", fragment, 6 * len(fragment)))
        forms.append(Form(f"URL-safe base64 at offset {offset}", url_safe, 6 * len(fragment)))
    return _distinct(forms)


def every_form(data: bytes) -> list[Form]:
    """The bytes themselves (text, or binary in a binary file), their hex and their base64."""
    return _distinct([Form("text", data, 8 * len(data)), *hex_forms(data), *base64_forms(data)])


def _distinct(forms: list[Form]) -> list[Form]:
    """One form per pattern (digits' hex has no letters, so HEX is hex; most fragments have no + or /)."""
    seen: dict[bytes, Form] = {}
    for form in forms:
        seen.setdefault(form.pattern, form)
    return list(seen.values())
