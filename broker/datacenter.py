"""The `DataCenter` seam: everything the console asks the NHI data center (DC).

The NHI's DC protocol is not public. What ships behind this seam is an HTTPS
client (`broker.dc_client.HttpsDataCenter`) for our own documented protocol
(docs/dc-protocol.md), which the bench's DC simulator serves; a licensed
implementation of the real protocol would plug in here instead.

Every method blocks (the broker calls them from a thread pool, never from its
loop) and raises `DcError` carrying the console status code it maps to, so no
caller ever sees an `OSError`, an HTTP status or a JSON error.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from broker.status_codes import StatusCode


class DcError(Exception):
    """A DC call failed. `code` is the console's status code; `reason` the DC's error name (or ours).

    Messages never carry a session, a nonce, a signature or a card number.
    """

    def __init__(self, code: StatusCode, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class DcSession:
    token: str = field(repr=False)
    expires_at: datetime.datetime
    hospital_id: str
    hospital_name: str
    hospital_short_name: str


@dataclass(frozen=True)
class CardCryptogram:
    auth_id: str = field(repr=False)
    cryptogram: bytes = field(repr=False)
    """The answer to the card's challenge (EXTERNAL AUTHENTICATE data, 32 bytes)."""
    host_challenge: bytes = field(repr=False)
    """The SAM's challenge for the card (INTERNAL AUTHENTICATE data, 8 bytes)."""


class DataCenter(Protocol):
    def sam_challenge(self, sam_id: str) -> bytes:
        """A fresh nonce (16 bytes) for the SAM to sign in `sam_login`."""
        ...

    def sam_login(self, sam_id: str, nonce: bytes, signature: bytes) -> DcSession:
        """Verify the SAM with the DC: contract (1302), suspension (1303), revocation (1304)."""
        ...

    def server_time(self, session: str) -> datetime.datetime:
        """The DC's clock, with its UTC offset."""
        ...

    def card_challenge(self, session: str, card_number: str, card_challenge: bytes) -> CardCryptogram:
        """The SAM's side of a card's mutual authentication, first half."""
        ...

    def card_verify(self, session: str, auth_id: str, card_response: bytes) -> None:
        """The second half: raises DcError(reason="authenticationFailed") if the card's answer is wrong."""
        ...

    def hca_crls(self) -> list[bytes]:
        """The CRLs (DER) of the HCA issuing CAs the DC knows, checked only to parse; needs no session."""
        ...


class NoDataCenter:
    """What a console without a configured DC uses: every call fails with 1700 and says why."""

    MESSAGE = "no data center is configured (serve --dc-url); the NHI's DC protocol is not public"

    def _fail(self) -> DcError:
        return DcError(StatusCode.DC_CONNECTION_FAILED, "notConfigured", self.MESSAGE)

    def sam_challenge(self, sam_id: str) -> bytes:
        raise self._fail()

    def sam_login(self, sam_id: str, nonce: bytes, signature: bytes) -> DcSession:
        raise self._fail()

    def server_time(self, session: str) -> datetime.datetime:
        raise self._fail()

    def card_challenge(self, session: str, card_number: str, card_challenge: bytes) -> CardCryptogram:
        raise self._fail()

    def card_verify(self, session: str, auth_id: str, card_response: bytes) -> None:
        raise self._fail()

    def hca_crls(self) -> list[bytes]:
        raise self._fail()
