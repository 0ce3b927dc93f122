"""Whether `serve --host` puts the console within reach of other machines. Pure.

The console answers card reads to whoever can connect: on loopback that is this machine only (web pages are held
off by api/callers.py). An address any other machine can reach makes the `Host` check the only wall between the
clinic's network and the patients' cards, so `serve` refuses one unless the operator says, with
`--expose-cards-to-network`, that this is meant; `doctor` warns while a console is serving that way.
"""

from __future__ import annotations

import ipaddress

EXPOSE_FLAG = "--expose-cards-to-network"
"""The flag's name says what it does: the cards in this machine's readers become reachable from the network."""

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def exposes_beyond_loopback(host: str | None) -> bool:
    """None (the default, 127.0.0.1 and ::1) and loopback addresses or names keep the console on this machine;
    anything else (0.0.0.0, ::, a LAN address, a host name) may not. `[::1]` may come bracketed."""
    if host is None:
        return False
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(text).is_loopback
    except ValueError:
        return True  # a name that could resolve anywhere: not provably loopback


def exposure_refusal(host: str) -> str:
    """The one line `serve` prints when it will not start (it names the address and the flag, nothing else)."""
    return (
        f"nhi-console: not starting: --host {host} would let other machines read the cards in this machine's "
        f"readers; give {EXPOSE_FLAG} if that is what you mean (see docs/security.md)"
    )
