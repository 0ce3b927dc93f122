"""The `DataCenter` seam: everything the console asks the NHI data center (DC).

The NHI's DC protocol is not public. What ships behind this seam is an HTTPS
client (`broker.dc.client.HttpsDataCenter`) for our own documented protocol
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

from contract.status_codes import StatusCode


class DcError(Exception):
    """A DC call failed. `code` is the console's status code; `reason` the DC's error name (or ours).

    Messages never carry a session, a nonce, a signature, a card number, a
    transfer token or a card's data.
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


@dataclass(frozen=True)
class ImportedVirtualHc:
    """A virtual health card moved to this hospital's console with `VirtualHc/Import`.

    `token_id` is the card's new id at the DC (what `virtual_hc_verify` and a
    further `virtual_hc_export` take); `card` holds `cardId`, `name`, `idNo`,
    `birthday` (ROC `yyyMMdd`), `sex` and `identityStatus`, kept out of repr
    so a traceback or a debug print never shows whose card it is.
    """

    token_id: str
    card: dict[str, str] = field(repr=False)
    expires_at: int
    """Seconds since the epoch: the card's expiry, as the exported token had it."""
    max_uses: int


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

    def virtual_hc_verify(self, session: str, token_id: str, max_uses: int, expires_at: int) -> int:
        """Count one verification of a virtual card: how many so far (1..max_uses).

        1525 (verificationCountExceeded) past `max_uses`; 1531 (virtualCardVoid) once it was exported.
        """
        ...

    def virtual_hc_export(
        self, session: str, token_id: str, card: dict[str, str], expires_at: int, max_uses: int
    ) -> str:
        """Hand a virtual card over for another console of this hospital: the transfer token (a secret).

        The token id is void from then on (1531 virtualCardVoid).
        """
        ...

    def virtual_hc_import(self, session: str, transfer_token: str) -> ImportedVirtualHc:
        """Take over an exported card, under a new token id.

        1528 unknownTransfer, 1529 transferUsed, 1530 otherHospital, 1531 transferVoid (expired).
        """
        ...

    def card_notes(self, session: str, card_number: str) -> bytes:
        """A health card's updated notes (1 to 200 bytes) to write onto the card."""
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

    def virtual_hc_verify(self, session: str, token_id: str, max_uses: int, expires_at: int) -> int:
        raise self._fail()

    def virtual_hc_export(
        self, session: str, token_id: str, card: dict[str, str], expires_at: int, max_uses: int
    ) -> str:
        raise self._fail()

    def virtual_hc_import(self, session: str, transfer_token: str) -> ImportedVirtualHc:
        raise self._fail()

    def card_notes(self, session: str, card_number: str) -> bytes:
        raise self._fail()
