"""The session's secrets: everything the console holds for a session that must never reach the log.

The state (a fold of the log) says what the session's levels are; what it takes to act on them lives only here,
in the broker's memory: the open SAM and its DC session token (`SamSession`), whoever holds the staff card's
level 3 (`StaffHolder`, for `GET /api/hpc/v1/Basic` after the card left its reader), the virtual health card in
use (`VirtualHolder`: its token id counts uses at the DC), and the HCA CRLs fetched from the DC. One object,
handed to the flows as `ctx.secrets`, so that what a flow keeps is visible in one place rather than set as
attributes on the core. A broker restart loses all of it, by design: the next call logs in or reads again.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from broker.credentials.sam_session import SamSession

STAFF_DATA_FIELDS = ("cardId", "idNo", "cName", "eName", "birthday")


@dataclass(frozen=True)
class StaffHolder:
    """The basic data of whoever holds HPC level 3, kept in memory (never logged) for `GET /api/hpc/v1/Basic`
    while the staff card is out of its reader (the 8-hour fast authentication) or was never a card (mobile HCA)."""

    card_ref: str | None
    data: dict[str, str]

    @classmethod
    def read_from(cls, card_ref: str | None, answer: dict[str, Any]) -> StaffHolder:
        """From a worker's `ReadHpcBasic` (or `VerifyPin`) answer."""
        return cls(card_ref, {name: answer[name] for name in STAFF_DATA_FIELDS})


@dataclass(frozen=True)
class VirtualHolder:
    """The virtual card in use: what the DC needs to count, export and transfer it, and the person's data."""

    token_id: str = field(repr=False)
    card: dict[str, Any] = field(repr=False)
    expires_at: int
    max_uses: int


@dataclass(frozen=True)
class FetchedCrls:
    """The HCA CRLs as the DC gave them, and when (they are fetched again after an hour, or once one is due)."""

    crls: list[x509.CertificateRevocationList]
    fetched: datetime.datetime


@dataclass
class SessionSecrets:
    sam: SamSession = field(default_factory=SamSession)
    hpc_holder: StaffHolder | None = None
    virtual_holder: VirtualHolder | None = None
    virtual_expired: bool = False
    """Set when a virtual card expired in use: the next health card call answers 1521 once."""
    crls: FetchedCrls | None = None

    def forget_cards(self) -> None:
        """The cards' holders are no longer authenticated (a SAM logout, the end of the session)."""
        self.hpc_holder = None
        self.virtual_holder = None

    def end_session(self) -> None:
        self.sam.close()
        self.forget_cards()
