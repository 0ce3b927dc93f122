"""The bench's mobile HCA app: builds signed bodies for `POST /api/hpc/v1/Verification/MobiliHca`.

Served by `POST /api/sim/v1/MobileHca/Login` (sim-control.md), so that HIS
developers and our tests can log in with a "phone" that does not exist. The
body is signed exactly as the real app signs (contract.md, "Field formats"),
with the staff profile's key and certificate from the bench PKI, so the
console's real verifier (`broker.credentials.mobile_hca`) checks it with no bench
special case.

The builder signs whatever `hospital_id` and `login_date_time` it is given,
unchecked: a stale, future, malformed or wrong-hospital login must be
producible too, or the console's 1421 and 1431 could not be tested.
"""

from __future__ import annotations

import base64
import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from broker.credentials.mobile_hca import LOGIN_TIME_FORMAT, signed_text
from sim.pki import bench_pki
from sim.profiles import PROFILES, StaffCardData

DOCTOR_MED_ID = "A"
"""The spec's only listed medId: "A: 醫師" (doctor), for a doctor card (card_type 1)."""
OTHER_STAFF_MED_ID = "B"
"""For every other staff card (card_type 2). The spec lists no other category letter (its sample
even shows "F"); the console does not interpret medId, so the bench uses "B" as a stand-in."""


def format_login_time(moment: datetime.datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` in UTC, fractions of a second dropped.

    Refuses a naive datetime (ValueError): whose local time it means would be a guess.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be a timezone-aware datetime")
    return moment.astimezone(datetime.UTC).strftime(LOGIN_TIME_FORMAT)


def login_body(profile_name: str, hospital_id: str, login_date_time: str) -> dict[str, str]:
    """The JSON body of a mobile HCA login by the staff member of `profile_name`, in the spec's shape.

    `medId` is "A" for a doctor card (card_type 1) and "B" otherwise (see
    OTHER_STAFF_MED_ID). Certificate and signature are standard Base64; the
    signature is RSA-2048 PKCS#1 v1.5 SHA-256, 256 bytes, over
    `signed_text(certificate serial, idNo, loginDateTime)`.

    Raises KeyError for an unknown profile (the control API's 404) and
    ValueError for a health-card profile (no certificate, no staff member;
    the control API's 400).
    """
    profile = PROFILES[profile_name]
    data = profile.data
    if not isinstance(data, StaffCardData):
        raise ValueError(f"profile {profile_name!r} is a health card, not a staff card")
    key, certificate = bench_pki().staff[profile_name]
    message = signed_text(certificate.serial_number, data.id_no, login_date_time)
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "idNo": data.id_no,
        "birthday": data.birthday,
        "cName": data.c_name,
        "eName": data.e_name,
        "hospitalId": hospital_id,
        "medId": DOCTOR_MED_ID if data.card_type == 1 else OTHER_STAFF_MED_ID,
        "loginDateTime": login_date_time,
        "signatureCertificate": base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii"),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
