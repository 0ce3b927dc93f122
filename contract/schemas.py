"""JSON Schema for request and answer fields, as the OpenAPI document shows them: one builder per kind of field.

Here rather than in api/ because the commands' argument rules (`contract.arguments`) describe themselves with
these, so a rule's check and its documented schema are written side by side and cannot drift apart.
"""

from __future__ import annotations

import math
from typing import Any, Final

from contract.text import CONTROL_CHARACTERS

Schema = dict[str, Any]

BASE64_PATTERN: Final = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
"""Standard base64 with its padding, as Python's `b64decode(validate=True)` accepts it."""

NO_CONTROLS: Final = "^[^" + CONTROL_CHARACTERS.pattern[1:-1] + "]*$"
"""Request text: no C0, DEL or C1 character (contract.text), in a regex JSON Schema and Python read alike."""


def text(
    max_length: int | None = None,
    *,
    min_length: int = 0,
    pattern: str | None = None,
    nullable: bool = False,
    description: str = "",
) -> Schema:
    schema: Schema = {"type": ["string", "null"] if nullable else "string"}
    if min_length:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    if pattern is not None:
        schema["pattern"] = pattern
    if description:
        schema["description"] = description
    return schema


def name_text(max_length: int, *, nullable: bool = False, description: str = "") -> Schema:
    """A request's text field: 1 to `max_length` characters, no control character."""
    return text(max_length, min_length=1, pattern=NO_CONTROLS, nullable=nullable, description=description)


def digits(shortest: int, longest: int, description: str = "") -> Schema:
    return text(pattern=f"^[0-9]{{{shortest},{longest}}}$", description=description)


def base64_chars(longest_bytes: int) -> int:
    """The characters `longest_bytes` bytes take in padded base64."""
    return 4 * math.ceil(longest_bytes / 3)


def base64_text(longest_bytes: int, description: str = "") -> Schema:
    """At most the characters that `longest_bytes` bytes take in base64: the length the API checks."""
    return text(base64_chars(longest_bytes), min_length=4, pattern=BASE64_PATTERN, description=description)
