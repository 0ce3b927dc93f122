"""The bench's simulated SAM: it holds the bench's master card key, as a real SAM holds the NHI's.

SIMULATION ONLY (see sim/cards/card_keys.py): it authenticates the bench's
virtual cards and nothing else.
"""

from __future__ import annotations

import hmac
import secrets

from sim.cards.card_keys import card_key, external_authenticate_cryptogram, internal_authenticate_response


class BenchSam:
    def new_challenge(self) -> bytes:
        return secrets.token_bytes(8)

    def external_cryptogram(self, card_number: str, card_challenge: bytes) -> bytes:
        return external_authenticate_cryptogram(card_key(card_number), card_challenge)

    def verify_internal(self, card_number: str, challenge: bytes, response: bytes) -> bool:
        expected = internal_authenticate_response(card_key(card_number), challenge)
        return hmac.compare_digest(expected, response)
