"""Every PIN, PUK and token the integration tests type, in one place, so that the end of the run can check that none
of them reached a log line, an event or a record (contract.md, "Never").

They are chosen to be unlikely to occur by chance in timestamps, hashes or session numbers. The bench
profiles' own PIN, `000000`, could occur by chance, so it is searched for only as a JSON string value.
"""

from __future__ import annotations

from pathlib import Path

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

_SHORT = (PROFILE_PIN, HC_PROFILE_PIN, WRONG_HC_PIN, NEW_HC_PIN)
"""Too short to search for bare (timestamps and hashes hold such digit runs): searched as a quoted or assigned value."""

SEARCHED: tuple[bytes, ...] = (
    PROFILE_PUK.encode(), WRONG_PIN.encode(), WRONG_PUK.encode(), NEW_PIN.encode(), CHANGED_PIN.encode(),
    *(form.format(pin).encode() for pin in _SHORT for form in ('"{}"', "'{}'", "={}")),
)


REMEMBERED: list[bytes] = []
"""Secrets made during the run (virtual card tokens, transfer tokens), searched for too."""


def remember(secret: str) -> str:
    """Note a token a test handles, so the end-of-run check looks for it; returns it unchanged."""
    REMEMBERED.append(secret.encode())
    return secret


def files_holding_secrets(roots: list[Path]) -> list[str]:
    """`path: secret` for every file under `roots` (or the file itself) that holds a secret a test typed."""
    found = []
    for root in roots:
        paths = [root] if root.is_file() else [path for path in root.rglob("*") if path.is_file()]
        for path in paths:
            try:
                content = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {secret[:16]!r}..." if len(secret) > 16 else f"{path}: {secret!r}"
                      for secret in (*SEARCHED, *REMEMBERED) if secret in content]
    return found
