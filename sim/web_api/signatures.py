"""The signatures the twin checks: the bytes the console signed, rebuilt, and the SAM that must have signed them.

Why here, apart from the paths: every path checks the same things in the same order, and docs/web-api-twin.md
documents that order. The signed bytes are the console's own (`broker.flows.session.signature_input`, the
formulas of docs/decisions.md): `clientRandom ‖ samId ‖ hospitalId ‖ serviceType`, then `hcId ‖ hcIdNo` for an
HC signature, `hpcId ‖ hpcIdNo ‖ hcId ‖ hcIdNo` for an HpcHc one; RSASSA-PKCS1-v1_5 with SHA-256 by the SAM's
key, checked with the SAM's certificate as the DC simulator registered it.

What the twin knows of SAMs is the DC simulator's (`sim.dc.state.DcState`, read only): their certificates, their
hospital, revocation, and the hospital's contract; and its clock, which the bench moves.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509

from broker.credentials.cloud_sam_file import verify_signature
from broker.flows.session import signature_input
from sim.dc.state import Hospital, SamRecord
from sim.web_api.codes import Code, Refused

SIGNATURE_WINDOW_SECONDS = 8 * 3600
"""The seed: 簽章時效僅 8 小時. Counted from the first time the twin saw the signature, on the bench's clock."""
KNOWN_SERVICE_TYPES = ("01", "02", "03", "04", "05", "06", "11", "20", "21", "22", "30", "90")
"""Service types public sources name (web-api.md's five, the 2022 seed's VPN service table, public HIS code):
tried when a signature fails, only to say in the message that it was made for another one."""


class DcView(Protocol):
    """What the twin reads of the DC simulator's state (`DcState` is one)."""

    def now(self) -> datetime.datetime: ...

    def sam(self, sam_id: str) -> SamRecord | None: ...

    def hospital(self, hospital_id: str) -> Hospital | None: ...


class Kind(enum.Enum):
    """Whose signature a path takes (web-api.md's "signature" column)."""

    SAM = "SAM"
    HC = "HC"
    HPC_HC = "HpcHc"


@dataclass(frozen=True)
class Holder:
    """A card's id and its holder's ID number, as the signature covers them."""

    card_id: str
    id_no: str


@dataclass(frozen=True)
class SignatureBlock:
    """The fields every call carries, decoded; `hc` and `hpc` as the path's kind asks."""

    client_random: bytes = field(repr=False)
    hospital_id: str
    sam_id: str
    signature: bytes = field(repr=False)
    hc: Holder | None = None
    hpc: Holder | None = None

    def signed_bytes(self, service_type: str) -> bytes:
        """What the console signed for this block and `service_type`."""
        holders = [holder for holder in (self.hpc, self.hc) if holder is not None]
        fields = [text for holder in holders for text in (holder.card_id, holder.id_no)]
        return signature_input(self.client_random, self.sam_id, self.hospital_id, service_type, *fields)

    @property
    def digest(self) -> bytes:
        """What the twin keeps of a signature (to date its first sight): its SHA-256, never the signature."""
        return hashlib.sha256(self.signature).digest()


def check_signer(dc: DcView, block: SignatureBlock, service_type: str, today: datetime.date) -> SamRecord:
    """The SAM behind the block, after the checks in docs/web-api-twin.md's order; Refused at the first that fails.

    Known SAM (3302), the hospital named is the SAM's (3211), not revoked (1304), the hospital's contract covers
    the bench's today (1302) and it is not suspended (1303), then the signature verifies for `service_type`
    (3100; the message says so when it was made for another service type). The 8-hour window needs the twin's
    own memory of the signature: `check_window`.
    """
    sam = dc.sam(block.sam_id)
    if sam is None:
        raise Refused(Code.UNKNOWN_SAM, "the DC does not know this samId")
    if sam.hospital_id != block.hospital_id:
        raise Refused(Code.OTHER_HOSPITAL, "hospitalId is not the hospital of this SAM")
    if sam.revoked:
        raise Refused(Code.SAM_REVOKED, "the SAM is revoked")
    hospital = dc.hospital(sam.hospital_id)
    if hospital is None or not hospital.contract_covers(today):
        raise Refused(Code.CONTRACT_EXPIRED, "the hospital's contract period does not cover today")
    if hospital.suspended:
        raise Refused(Code.HOSPITAL_SUSPENDED, "the hospital is suspended")
    certificate = x509.load_pem_x509_certificate(sam.certificate_pem.encode("ascii"))
    if not verify_signature(certificate, block.signature, block.signed_bytes(service_type)):
        other = next(
            (
                kind
                for kind in KNOWN_SERVICE_TYPES
                if kind != service_type and verify_signature(certificate, block.signature, block.signed_bytes(kind))
            ),
            None,
        )
        if other is not None:
            raise Refused(
                Code.SIGNATURE_INVALID,
                f"the signature was made for service type {other}; this path needs {service_type}",
            )
        raise Refused(Code.SIGNATURE_INVALID, "the signature does not verify with the SAM's certificate")
    return sam


def check_window(first_seen: float | None, now: float) -> None:
    """3100 when the signature was first seen more than 8 hours ago (bench clock); a new one is in its window."""
    if first_seen is not None and now - first_seen > SIGNATURE_WINDOW_SECONDS:
        raise Refused(Code.SIGNATURE_INVALID, "the signature was first seen more than 8 hours ago: sign again")
