"""The twin's signing key: what signs a visit (SequelNumber/Next's `signature`) and each prescription
(Prescription/Write's `signatureItems`).

Why its own key: in the real system the NHI's side makes these signatures, with keys the NHI does not publish;
on the bench the twin plays that side, so it signs with a key of its own, made once (RSA-2048, so a signature is
256 bytes, as the real 安全簽章 is) and kept in its directory. A key per purpose: not the virtual card issuer's,
not a SAM's. The certificate is shown by the bench (`GET /api/sim/v1/WebApi/State`, `signerCertificate`) so a
HIS can check what it stored. What the signatures cover is ours (docs/web-api-twin.md): the NHI's is not public.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sim.dc.vhc_issuer import ensure_key_pair

COMMON_NAME = "nhi-console bench web-API twin signer (SIMULATION)"


@dataclass(frozen=True)
class Signer:
    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate

    @classmethod
    def ensure(cls, key_path: Path, cert_path: Path) -> Signer:
        """The signer in those files, made (key 0600, certificate 0644) when missing or not a pair."""
        key, certificate = ensure_key_pair(key_path, cert_path, COMMON_NAME)
        return cls(key, certificate)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256: 256 bytes."""
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def visit_signed_bytes(
    treatment_date_time: str, sequence_number: str, hospital_id: str, sam_id: str, card_id: str, id_no: str, number: str
) -> bytes:
    """A visit's signature covers, in ASCII: treatmentDateTime ‖ sequenceNumber ‖ hospitalId ‖ samId ‖ hcId ‖
    hcIdNo ‖ treatmentNumber."""
    return (treatment_date_time + sequence_number + hospital_id + sam_id + card_id + id_no + number).encode("ascii")


def prescription_signed_bytes(
    hospital_id: str, card_id: str, id_no: str, visit_date_time: str, item: dict[str, str]
) -> bytes:
    """A prescription's signature covers the UTF-8 of the compact JSON object (keys sorted) of hospitalId, hcId,
    hcIdNo, the visit's treatmentDateTime and the prescription as written."""
    document = {
        "hcId": card_id,
        "hcIdNo": id_no,
        "hospitalId": hospital_id,
        "prescription": item,
        "visitDateTime": visit_date_time,
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
