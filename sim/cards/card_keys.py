"""The bench's card keys and its simulated mutual authentication.

SIMULATION ONLY. The real NHI cards authenticate with the SAM under a scheme
and keys that are secret; this module is the bench's own stand-in, published
on purpose so that the console's simulated SAM (and anyone testing against the
bench) can compute the same cryptograms. Nothing here protects anything.

Scheme (see docs/virtual-cards.md):
    card_key  = HMAC-SHA256(BENCH_CARD_MASTER_KEY, b"card" + card number ASCII)
    INTERNAL AUTHENTICATE answer = HMAC-SHA256(card_key, b"INT" + host challenge)
    EXTERNAL AUTHENTICATE data   = HMAC-SHA256(card_key, b"EXT" + card challenge)
"""

from __future__ import annotations

import hashlib
import hmac

BENCH_CARD_MASTER_KEY: bytes = bytes.fromhex("6e6869636f6e736f6c652d62656e63682d6d61737465722d6b65792d76312e30")
"""SIMULATION SECRET, public by design: the ASCII of `nhiconsole-bench-master-key-v1.0`.

It diversifies every bench card's key; the simulated SAM holds it the way a
real SAM holds the NHI's master keys. Never use it for anything real.
"""


def card_key(card_number: str) -> bytes:
    """One key per card, derived rather than stored, so a SAM needs only the master key and the card number."""
    return hmac.new(BENCH_CARD_MASTER_KEY, b"card" + card_number.encode("ascii"), hashlib.sha256).digest()


def internal_authenticate_response(key: bytes, challenge: bytes) -> bytes:
    """What the card answers to the host's challenge; the SAM recomputes it to authenticate the card."""
    return hmac.new(key, b"INT" + challenge, hashlib.sha256).digest()


def external_authenticate_cryptogram(key: bytes, challenge: bytes) -> bytes:
    """What the host sends back for the card's challenge. The "INT"/"EXT" labels keep one direction's
    answer from being replayed as the other's."""
    return hmac.new(key, b"EXT" + challenge, hashlib.sha256).digest()
