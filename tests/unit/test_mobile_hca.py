"""Mobile HCA logins: the bench's builder, and the console's verifier in the issue's order (1430,
1422/1423/1424, 1431, 1421)."""

from __future__ import annotations

import base64
import dataclasses
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.credentials.hca_trust import TrustStore
from broker.credentials.mobile_hca import parse_login_time, signed_text, verify_mobile_login
from contract.commands import MobileHcaLogin
from contract.status_codes import StatusCode
from sim.mobile_hca import format_login_time, login_body
from sim.pki import bench_pki
from sim.profiles import PROFILES

UTC = datetime.UTC
NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
HOSPITAL = "777777777"
TRUST = TrustStore.from_pem_bundle(
    bench_pki().root.certificate.public_bytes(serialization.Encoding.PEM)
    + bench_pki().issuing_ca.certificate.public_bytes(serialization.Encoding.PEM)
)


def from_body(body: dict[str, str]) -> MobileHcaLogin:
    """As the API layer will decode the JSON body."""
    return MobileHcaLogin(
        id_no=body["idNo"],
        birthday=body["birthday"],
        c_name=body["cName"],
        e_name=body["eName"],
        hospital_id=body["hospitalId"],
        med_id=body["medId"],
        login_date_time=body["loginDateTime"],
        certificate_der=base64.b64decode(body["signatureCertificate"], validate=True),
        signature=base64.b64decode(body["signature"], validate=True),
    )


def login(profile: str = "hpc-doctor", *, at: datetime.datetime = NOW, hospital: str = HOSPITAL) -> MobileHcaLogin:
    return from_body(login_body(profile, hospital, format_login_time(at)))


def verify(item: MobileHcaLogin, *, now: datetime.datetime = NOW, sam_hospital_id: str = HOSPITAL) -> StatusCode | None:
    return verify_mobile_login(item, now=now, trust=TRUST, crls=[bench_pki().crl], sam_hospital_id=sam_hospital_id)


DOCTOR = login()


# --- the builder -----------------------------------------------------------------------------------


def test_body_has_the_spec_shape() -> None:
    body = login_body("hpc-doctor", HOSPITAL, "2025-03-01T12:00:00Z")
    assert list(body) == [
        "idNo",
        "birthday",
        "cName",
        "eName",
        "hospitalId",
        "medId",
        "loginDateTime",
        "signatureCertificate",
        "signature",
    ]
    assert body["idNo"] == "E123456789"
    assert body["birthday"] == "1979-01-01"
    assert body["cName"] == "測試人員4"
    assert body["eName"] == ""
    assert body["hospitalId"] == HOSPITAL
    assert body["medId"] == "A"
    assert body["loginDateTime"] == "2025-03-01T12:00:00Z"
    assert len(base64.b64decode(body["signature"], validate=True)) == 256
    certificate = x509.load_der_x509_certificate(base64.b64decode(body["signatureCertificate"], validate=True))
    assert certificate == bench_pki().staff["hpc-doctor"].certificate


def test_other_staff_get_med_id_b() -> None:
    assert login_body("hpc-nurse", HOSPITAL, "2025-03-01T12:00:00Z")["medId"] == "B"


def test_unknown_profile_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        login_body("hpc-nobody", HOSPITAL, "2025-03-01T12:00:00Z")


@pytest.mark.parametrize("profile", [name for name, p in PROFILES.items() if p.kind == "hc"])
def test_health_card_profile_is_a_value_error(profile: str) -> None:
    with pytest.raises(ValueError):
        login_body(profile, HOSPITAL, "2025-03-01T12:00:00Z")


def test_format_login_time() -> None:
    taipei = datetime.timezone(datetime.timedelta(hours=8))
    assert (
        format_login_time(datetime.datetime(2024, 5, 28, 16, 44, 41, 999_999, tzinfo=taipei)) == "2024-05-28T08:44:41Z"
    )
    with pytest.raises(ValueError):
        format_login_time(datetime.datetime(2024, 5, 28, 8, 44, 41))


# --- pieces ----------------------------------------------------------------------------------------


def test_signed_text_has_no_separator() -> None:
    assert signed_text(1234, "E123456789", "2024-05-28T08:44:41Z") == b"1234E1234567892024-05-28T08:44:41Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-28T08:44:41Z", datetime.datetime(2024, 5, 28, 8, 44, 41, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime.datetime(2024, 2, 29, tzinfo=UTC)),
        ("2023-02-29T00:00:00Z", None),
        ("2024-05-28T08:44:41", None),
        ("2024-05-28T08:44:41.000Z", None),
        ("2024-05-28T08:44:41+00:00", None),
        ("2024-05-28 08:44:41Z", None),
        ("2024-5-28T08:44:41Z", None),
        ("2024-05-28T08:44:41z", None),
        ("2024-05-28T08:44:41Z\n", None),
        ("２０２４-05-28T08:44:41Z", None),
        ("2024-05-28T24:00:00Z", None),
        ("", None),
    ],
)
def test_parse_login_time(text: str, expected: datetime.datetime | None) -> None:
    assert parse_login_time(text) == expected


# --- verify_mobile_login ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["hpc-doctor", "hpc-nurse", "hpc-blocked"])
def test_valid_login_is_accepted(profile: str) -> None:
    assert verify(login(profile)) is None


def test_tampered_signature() -> None:
    signature = bytearray(DOCTOR.signature)
    signature[100] ^= 0x01
    assert verify(dataclasses.replace(DOCTOR, signature=bytes(signature))) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_truncated_or_empty_signature() -> None:
    assert (
        verify(dataclasses.replace(DOCTOR, signature=DOCTOR.signature[:-1])) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED
    )
    assert verify(dataclasses.replace(DOCTOR, signature=b"")) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_different_id_no() -> None:
    assert verify(dataclasses.replace(DOCTOR, id_no="B287654326")) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_non_ascii_id_no() -> None:
    assert verify(dataclasses.replace(DOCTOR, id_no="Ｅ123456789")) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_different_login_time() -> None:
    later = format_login_time(NOW + datetime.timedelta(seconds=1))
    assert verify(dataclasses.replace(DOCTOR, login_date_time=later)) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_someone_elses_certificate_and_signature_cannot_claim_this_id_no() -> None:
    # The nurse signs a text naming the doctor's idNo with her own (valid) certificate: the
    # signature verifies, but the certificate names another person.
    key, certificate = bench_pki().staff["hpc-nurse"]
    text = format_login_time(NOW)
    signature = key.sign(
        signed_text(certificate.serial_number, DOCTOR.id_no, text), padding.PKCS1v15(), hashes.SHA256()
    )
    forged = dataclasses.replace(
        DOCTOR, certificate_der=certificate.public_bytes(serialization.Encoding.DER), signature=signature
    )
    assert verify(forged) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_garbage_certificate() -> None:
    assert (
        verify(dataclasses.replace(DOCTOR, certificate_der=b"\x30\x03\x02\x01\x01"))
        == StatusCode.MOBILE_HCA_SIGNATURE_FAILED
    )
    assert verify(dataclasses.replace(DOCTOR, certificate_der=b"")) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_certificate_of_another_person_with_the_right_signature_fails() -> None:
    nurse_der = bench_pki().staff["hpc-nurse"].certificate.public_bytes(serialization.Encoding.DER)
    assert verify(dataclasses.replace(DOCTOR, certificate_der=nurse_der)) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


@pytest.mark.parametrize(
    ("profile", "code"),
    [
        ("hpc-expired", StatusCode.CERTIFICATE_NOT_VALID_NOW),
        ("hpc-untrusted", StatusCode.CERTIFICATE_ISSUER_UNTRUSTED),
        ("hpc-revoked", StatusCode.CERTIFICATE_REVOKED),
    ],
)
def test_certificate_problems(profile: str, code: StatusCode) -> None:
    assert verify(login(profile)) == code


def test_certificate_problems_come_after_the_signature() -> None:
    item = login("hpc-expired")
    assert verify(dataclasses.replace(item, signature=bytes(256))) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


def test_no_crl_fails_closed() -> None:
    code = verify_mobile_login(DOCTOR, now=NOW, trust=TRUST, crls=[], sam_hospital_id=HOSPITAL)
    assert code == StatusCode.CERTIFICATE_REVOKED


def test_wrong_hospital() -> None:
    assert verify(DOCTOR, sam_hospital_id="888888888") == StatusCode.MOBILE_HCA_WRONG_HOSPITAL
    assert verify(login(hospital="888888888")) == StatusCode.MOBILE_HCA_WRONG_HOSPITAL


def test_wrong_hospital_comes_before_staleness() -> None:
    old = login(at=NOW - datetime.timedelta(hours=1), hospital="888888888")
    assert verify(old) == StatusCode.MOBILE_HCA_WRONG_HOSPITAL


def test_certificate_problems_come_before_the_hospital() -> None:
    assert verify(login("hpc-revoked", hospital="888888888")) == StatusCode.CERTIFICATE_REVOKED


def test_stale_login() -> None:
    assert verify(login(at=NOW - datetime.timedelta(minutes=6))) == StatusCode.HCA_SIGNATURE_STALE


def test_future_login() -> None:
    assert verify(login(at=NOW + datetime.timedelta(minutes=2))) == StatusCode.HCA_SIGNATURE_STALE


def test_window_edges_are_accepted() -> None:
    assert verify(login(at=NOW - datetime.timedelta(seconds=300))) is None
    assert verify(login(at=NOW - datetime.timedelta(seconds=301))) == StatusCode.HCA_SIGNATURE_STALE
    assert verify(login(at=NOW + datetime.timedelta(seconds=60))) is None
    assert verify(login(at=NOW + datetime.timedelta(seconds=61))) == StatusCode.HCA_SIGNATURE_STALE


def test_unparsable_but_signed_login_time_is_stale() -> None:
    item = from_body(login_body("hpc-doctor", HOSPITAL, "2025-03-01 12:00:00"))
    assert verify(item) == StatusCode.HCA_SIGNATURE_STALE


def test_now_in_another_zone() -> None:
    taipei = datetime.timezone(datetime.timedelta(hours=8))
    assert verify(DOCTOR, now=NOW.astimezone(taipei)) is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        verify(DOCTOR, now=NOW.replace(tzinfo=None))


def test_repr_leaves_out_certificate_and_signature() -> None:
    text = repr(DOCTOR)
    assert "certificate_der" not in text and "signature" not in text


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0, max_value=255), change=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_to_the_signature_fails(position: int, change: int) -> None:
    signature = bytearray(DOCTOR.signature)
    signature[position] ^= change
    assert verify(dataclasses.replace(DOCTOR, signature=bytes(signature))) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED
