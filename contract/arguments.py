"""The rules a command's arguments follow: each kind of argument (a PIN, a service type, a token, a reader's
name…) is written once here, with its check, its error message and its JSON Schema.

The API reads a request's JSON through `from_json` (a 400 on a `BadArguments`), the broker reads the wire
through `from_wire` (1704), and the OpenAPI document shows `schema()`: all three come from one rule, so they
cannot disagree. Messages name the field and what is wrong with it, never the value sent (it may be a PIN).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Final

from contract.host_names import MAX_HOST_LENGTH, NotAHostName, normalize_host
from contract.schemas import NO_CONTROLS, Schema, base64_chars, base64_text, digits, name_text, text
from contract.text import CONTROL_CHARACTERS


class BadArguments(ValueError):
    """A command whose arguments are missing or malformed; the message names the field, never its value."""


MISSING: Final = object()
"""An argument the request left out (as opposed to one sent as null)."""


@dataclass(frozen=True)
class Rule:
    """One kind of argument. `from_wire` is the broker's check of what came over ZeroMQ (msgpack types);
    `from_json` is the API's, of what came in the request body, and returns what goes on the wire."""

    description: str = ""
    secret: bool = False
    """A PIN, PUK, token or file: kept out of every repr (and so out of logs and tracebacks)."""
    null_is_absent: bool = True
    """An optional argument sent as null counts as left out (text); False: null is a wrong value (numbers)."""

    def from_wire(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def from_json(self, name: str, value: Any) -> Any:
        return self.from_wire(name, value)

    def schema(self) -> Schema:
        raise NotImplementedError


def _unicode(name: str, value: str) -> str:
    """JSON's `\\ud800` escape decodes to a lone surrogate, which no UTF-8 (nor msgpack) can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadArguments(f"{name} is not valid Unicode text (a lone surrogate)") from None
    return value


@dataclass(frozen=True)
class Text(Rule):
    """Text of 1 to `max_length` characters with no control character: names, ids, the file's base64."""

    max_length: int = 128
    nullable: bool = False
    """Documented as string-or-null: an optional argument the spec's callers send as null."""

    def from_wire(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value or len(value) > self.max_length:
            raise BadArguments(f"{name} must be a string of 1 to {self.max_length} characters")
        if CONTROL_CHARACTERS.search(value):
            raise BadArguments(f"{name} must not hold control characters")
        return _unicode(name, value)

    def schema(self) -> Schema:
        return name_text(self.max_length, nullable=self.nullable, description=self.description)


@dataclass(frozen=True)
class Pattern(Text):
    """Text that must match a regular expression whole (a SAM id, a hospital id)."""

    pattern: str = ""

    def from_wire(self, name: str, value: Any) -> str:
        checked = super().from_wire(name, value)
        if not re.fullmatch(self.pattern, checked):
            raise BadArguments(f"{name} must match {self.pattern}")
        return checked

    def schema(self) -> Schema:
        return text(pattern=self.pattern, nullable=self.nullable, description=self.description)


@dataclass(frozen=True)
class ServiceType(Rule):
    """The signatures' service type: exactly 2 ASCII letters or digits."""

    def from_wire(self, name: str, value: Any) -> str:
        checked = Text(max_length=2).from_wire(name, value)
        if len(checked) != 2 or not checked.isascii() or not checked.isalnum():
            raise BadArguments(f"{name} must be 2 ASCII letters or digits")
        return checked

    def schema(self) -> Schema:
        return text(pattern="^[A-Za-z0-9]{2}$", description=self.description)


@dataclass(frozen=True)
class Digits(Rule):
    """A PIN or a PUK: ASCII digits only, `shortest` to `longest` of them."""

    shortest: int = 4
    longest: int = 8
    secret: bool = True

    def from_wire(self, name: str, value: Any) -> str:
        if (
            not isinstance(value, str)
            or not value.isascii()
            or not value.isdigit()
            or not self.shortest <= len(value) <= self.longest
        ):
            raise BadArguments(f"{name} must be {self.shortest} to {self.longest} digits")
        return value

    def schema(self) -> Schema:
        return digits(self.shortest, self.longest, self.description)


@dataclass(frozen=True)
class HostName(Rule):
    """A CORS allow-list entry: a host name or an IP address, normalized (`contract.host_names`)."""

    def from_wire(self, name: str, value: Any) -> str:
        checked = Text(max_length=MAX_HOST_LENGTH + 2).from_wire(name, value)
        try:
            return normalize_host(checked)
        except NotAHostName as error:
            raise BadArguments(f"{name}: {error}") from None

    def from_json(self, name: str, value: Any) -> str:
        self.from_wire(name, value)  # a malformed one is a 400 that runs nothing; the broker normalizes it
        return str(value)

    def schema(self) -> Schema:
        return {
            "anyOf": [
                {"type": "string", "format": "hostname"},
                {"type": "string", "format": "ipv4"},
                {"type": "string", "format": "ipv6"},
            ],
            "maxLength": MAX_HOST_LENGTH,
            "description": "A host name or an IP address, as the browser's Origin names it",
        }


@dataclass(frozen=True)
class LooseText(Rule):
    """Text that may be empty or null (read as empty): the mobile HCA login's English name."""

    max_length: int = 64
    null_is_absent: bool = False

    def from_wire(self, name: str, value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > self.max_length:
            raise BadArguments(f"{name} must be a string of at most {self.max_length} characters")
        if CONTROL_CHARACTERS.search(value):
            raise BadArguments(f"{name} must not hold control characters")
        return _unicode(name, value)

    def schema(self) -> Schema:
        return text(self.max_length, pattern=NO_CONTROLS, nullable=True)


@dataclass(frozen=True)
class Base64Bytes(Rule):
    """Bytes: standard padded base64 in the request's JSON, raw bytes on the wire (a certificate, a signature)."""

    longest: int = 512

    def from_wire(self, name: str, value: Any) -> bytes:
        if not isinstance(value, bytes) or not 0 < len(value) <= self.longest:
            raise BadArguments(f"{name} must be 1 to {self.longest} bytes")
        return value

    def from_json(self, name: str, value: Any) -> bytes:
        encoded = Text(max_length=base64_chars(self.longest)).from_wire(name, value)
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadArguments(f"{name} is not valid base64") from None
        if not decoded:
            raise BadArguments(f"{name} must not be empty")
        return decoded

    def schema(self) -> Schema:
        return base64_text(self.longest, self.description)


@dataclass(frozen=True)
class Integer(Rule):
    """A whole number from `minimum` to `maximum`; `cap` silently lowers a larger one (Record's take)."""

    minimum: int = 0
    maximum: int | None = None
    cap: int | None = None
    null_is_absent: bool = False

    def from_wire(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadArguments(f"{name} must be an integer")
        if value < self.minimum:
            raise BadArguments(f"{name} must be {self.minimum} or more")
        if self.maximum is not None and value > self.maximum:
            raise BadArguments(f"{name} must be {self.minimum} to {self.maximum}")
        return value if self.cap is None else min(value, self.cap)

    def schema(self) -> Schema:
        schema: Schema = {"type": "integer", "minimum": self.minimum}
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Number(Rule):
    """A number (integer or float) from 0 to `maximum`, read as a float: the stream's wait."""

    maximum: float = 0.0
    null_is_absent: bool = False

    def from_wire(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= self.maximum:
            raise BadArguments(f"{name} must be 0 to {self.maximum:g}")
        return float(value)

    def schema(self) -> Schema:
        return {"type": "number", "minimum": 0, "maximum": self.maximum}


@dataclass(frozen=True)
class StreamPosition(Rule):
    """A live-stream position on the wire: `[seq, index]`, two integers of 0 or more."""

    def from_wire(self, name: str, value: Any) -> tuple[int, int]:
        if (
            not isinstance(value, list)
            or len(value) != 2
            or any(isinstance(part, bool) or not isinstance(part, int) or part < 0 for part in value)
        ):
            raise BadArguments(f"{name} must be [seq, index], two integers of 0 or more")
        return value[0], value[1]

    def schema(self) -> Schema:
        return {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}


@dataclass(frozen=True)
class Argument:
    """One argument of a command: its rule, its name on the wire and in the JSON body, and whether it may be
    left out (then `default`, and null counts as left out)."""

    rule: Rule
    wire: str
    optional: bool = False
    default: Any = None

    def _absent(self, value: Any) -> bool:
        return value is MISSING or (value is None and self.rule.null_is_absent)

    def from_wire(self, args: dict[str, Any]) -> Any:
        value = args.get(self.wire, MISSING)
        if self._absent(value):
            if self.optional:
                return self.default
            raise BadArguments(f"{self.wire} is required")
        return self.rule.from_wire(self.wire, value)

    def from_json(self, body: dict[str, Any]) -> Any:
        """The value to send on the wire, or MISSING where an optional argument was left out."""
        value = body.get(self.wire, MISSING)
        if self._absent(value):
            if self.optional:
                return MISSING
            raise BadArguments(f"{self.wire} is required")
        return self.rule.from_json(self.wire, value)


def argument(rule: Rule, wire: str, *, optional: bool = False, default: Any = None) -> Any:
    """A command dataclass's field that is one of its arguments (see `contract.commands.command`)."""
    kwargs: dict[str, Any] = {"default": default} if optional else {}
    return field(repr=not rule.secret, metadata={"argument": Argument(rule, wire, optional, default)}, **kwargs)
