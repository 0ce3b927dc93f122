"""A bench card that runs a PIN VERIFY and then keeps its answer until the test lets it go.

Put in a vpcd reader, it holds the whole PC/SC stack in the middle of the command: pcscd waits on vpcd, the
worker waits on pcscd, the broker and the caller wait on the worker. That is the moment a crash is the
worst for a PIN: the card has spent the try, and nobody outside it knows the outcome.
"""

from __future__ import annotations

import threading

from sim.cards.base import Transcript
from sim.cards.staff_card import StaffCard
from sim.profiles import make_card

VERIFY = 0x20
HOLD_LIMIT = 30.0
"""Seconds an answer is held at most: a failed test must not leave the bridge's thread blocked forever."""


class StallingCard:
    """`profile`'s card; once `arm()`ed, the first VERIFY carrying a PIN is answered only after `release()`.

    It counts the VERIFYs it sees, never their content: a PIN must not reach a test's output either.
    """

    def __init__(self, profile: str) -> None:
        self._inner = make_card(profile)
        self.atr: bytes = self._inner.atr
        self.transcript: Transcript = self._inner.transcript
        self.pin_verify_arrived = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._armed = False
        self._pin_verifies = 0
        self._counter_reads = 0

    def arm(self) -> None:
        """Start counting from zero, and hold the next PIN VERIFY's answer."""
        with self._lock:
            self._armed = True
            self._pin_verifies = self._counter_reads = 0

    def respond(self, apdu: bytes) -> bytes:
        answer = self._inner.respond(apdu)
        if len(apdu) < 4 or apdu[1] != VERIFY:
            return answer
        carries_pin = len(apdu) > 4  # without data, VERIFY only reads the retry counter (ISO 7816-4)
        with self._lock:
            if carries_pin:
                self._pin_verifies += 1
            else:
                self._counter_reads += 1
            hold = carries_pin and self._armed and not self.pin_verify_arrived.is_set()
        if hold:
            self.pin_verify_arrived.set()
            self._released.wait(HOLD_LIMIT)
        return answer

    def release(self) -> None:
        self._released.set()

    def reset(self) -> None:
        self._inner.reset()

    @property
    def pin_verifies(self) -> int:
        """VERIFYs carrying a PIN since `arm()`: each one is a try the card may spend."""
        with self._lock:
            return self._pin_verifies

    @property
    def counter_reads(self) -> int:
        """VERIFYs without data since `arm()`: they read the retry counter and cost nothing."""
        with self._lock:
            return self._counter_reads

    @property
    def pin_tries_left(self) -> int:
        assert isinstance(self._inner, StaffCard), "only the staff card's tries are counted"
        return self._inner.pin_tries_left
