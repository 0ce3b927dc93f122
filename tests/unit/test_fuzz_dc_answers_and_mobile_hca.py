"""Fuzzing three inputs that come from outside the console: the DC's HTTP answers (`broker.dc.answers`), the
mobile HCA login (`broker.credentials.mobile_hca`, the body of `POST /api/hpc/v1/Verification/MobiliHca` as the broker
receives it), and the HCA certificates both a login and a staff card present (`broker.credentials.hca_trust`).

Why it matters: the DC is a server on the internet, reached through proxies and captive portals that answer
whatever they like; the mobile HCA body comes from any program on the machine, with a certificate and a
signature chosen by the sender (who needs no HCA to sign: any key in a certificate of their making will do);
a staff card's certificate is read from the card. The broker runs all three inside its one event loop and
catches only `DcError` from the first; `verify_mobile_login` and `check_certificate` answer with a status
code. Any other exception is a broker command that never answers. A DC answer carries sessions and card
data, and a login names a person, so an error's message must quote none of it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import json
import string
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import assume, event, example, given
from hypothesis import strategies as st

from broker.credentials.hca_trust import TrustStore, check_certificate
from broker.credentials.mobile_hca import parse_login_time, verify_mobile_login
from broker.dc import answers as dc_answers
from broker.dc.answers import (
    DC_ERRORS,
    MAX_ANSWER_BYTES,
    interpret_answer,
    parse_card_cryptogram,
    parse_card_notes,
    parse_crls,
    parse_imported_virtual_hc,
    parse_nonce,
    parse_server_time,
    parse_session,
    parse_transfer_token,
    parse_verification_count,
    parse_verified,
)
from broker.dc.seam import CardCryptogram, DcError, DcSession, ImportedVirtualHc
from contract.commands import MobileHcaLogin
from contract.status_codes import StatusCode
from sim.mobile_hca import format_login_time, login_body
from sim.pki import bench_pki
from tests.fuzzing import fuzz
from tests.mutations import leaked_pieces, mutated, own_words
from tests.unit.session_harness import Harness

pytestmark = pytest.mark.filterwarnings(
    "ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning"
)

# --- the DC's answers -------------------------------------------------------------------------------------

DC_REASONS = {reason for _, reason in DC_ERRORS} | {"badAnswer", "httpStatus", "authenticationFailed"}
MAX_USES = 5


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclasses.dataclass(frozen=True)
class AnswerParser:
    """One success answer's parser and what it returns when the answer is as documented."""

    parse: Callable[[str, dict[str, Any]], object]
    well_typed: Callable[[object], bool]
    fields: tuple[str, ...]


def _aware(value: object) -> bool:
    return isinstance(value, datetime.datetime) and value.utcoffset() is not None


PARSERS: dict[str, AnswerParser] = {
    "Sam/Challenge": AnswerParser(parse_nonce, lambda v: isinstance(v, bytes) and len(v) == 16, ("nonce",)),
    "Sam/Login": AnswerParser(
        parse_session,
        lambda v: isinstance(v, DcSession) and _aware(v.expires_at),
        ("session", "expiresAt", "hospitalId", "hospitalName", "hospitalShortName"),
    ),
    "Time": AnswerParser(parse_server_time, _aware, ("serverTime",)),
    "Cards/Challenge": AnswerParser(
        parse_card_cryptogram,
        lambda v: isinstance(v, CardCryptogram) and len(v.cryptogram) == 32 and len(v.host_challenge) == 8,
        ("authId", "cryptogram", "hostChallenge"),
    ),
    "Cards/Verify": AnswerParser(parse_verified, lambda v: v is None, ("authenticated",)),
    "Crl": AnswerParser(parse_crls, lambda v: isinstance(v, list) and all(isinstance(i, bytes) for i in v), ("crls",)),
    "VirtualHc/Verify": AnswerParser(
        lambda e, a: parse_verification_count(e, a, MAX_USES),
        lambda v: isinstance(v, int) and 1 <= v <= MAX_USES,
        ("uses",),
    ),
    "VirtualHc/Export": AnswerParser(
        parse_transfer_token, lambda v: isinstance(v, str) and len(v) <= 512, ("transferToken",)
    ),
    "VirtualHc/Import": AnswerParser(
        parse_imported_virtual_hc,
        lambda v: isinstance(v, ImportedVirtualHc),
        ("tokenId", "card", "expiresAt", "maxUses"),
    ),
    "RealHc/Notes": AnswerParser(parse_card_notes, lambda v: isinstance(v, bytes) and 1 <= len(v) <= 200, ("notes",)),
}


DC_VOCABULARY = (*DC_REASONS, *PARSERS, *own_words(dc_answers))
"""Messages name the endpoint and the HTTP status: an answer may spell those too."""


def _texts_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in _texts_in(item)]
    return []


def assert_documented_dc_error(error: DcError, *answer: str | bytes) -> None:
    assert type(error) is DcError
    assert isinstance(error.code, StatusCode) and error.reason in DC_REASONS
    assert error.__cause__ is None
    assert leaked_pieces(str(error), *answer, vocabulary=DC_VOCABULARY) == []


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(sorted(DC_REASONS)),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = sorted({name for parser in PARSERS.values() for name in parser.fields} | {"error", "message"})
BASE64_TEXT = (
    st.binary(max_size=40).map(b64)
    | st.binary(min_size=16, max_size=16).map(b64)
    | st.binary(min_size=32, max_size=32).map(b64)
    | st.text(string.ascii_letters + string.digits + "+/=", max_size=48)
)
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    BASE64_TEXT,
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda moment: moment.isoformat()),
    st.lists(BASE64_TEXT, max_size=3),
)
ANSWERS = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), FIELD_VALUES, max_size=6)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    ANSWERS.map(lambda value: json.dumps(value).encode()),
    st.sampled_from(sorted(DC_REASONS)).map(lambda reason: json.dumps({"error": reason}).encode()),
)
STATUSES = st.sampled_from(sorted({200, *(status for status, _ in DC_ERRORS), 204, 301, 500, 503})) | st.integers(
    100, 599
)
TABLE_ERRORS = st.builds(
    lambda row, message, extra: (row[0], json.dumps({"error": row[1], "message": message, **extra}).encode()),
    st.sampled_from(sorted(DC_ERRORS)),
    st.text(min_size=8, max_size=60),
    ANSWERS,
)
"""A listed error exactly as the table has it, with the free text and fields a DC may add (never repeated)."""


@fuzz()
@given(st.sampled_from(sorted(PARSERS)), st.tuples(STATUSES, BODIES) | TABLE_ERRORS)
@example("Time", (200, b"[" * 50_000))  # nested deeper than json takes
@example("Time", (401, b" " * MAX_ANSWER_BYTES + b"{}"))
def test_fuzz_any_http_answer_is_a_json_object_or_a_dc_error(endpoint: str, answer_of: tuple[int, bytes]) -> None:
    status, body = answer_of
    try:
        answer = interpret_answer(endpoint, status, body)
    except DcError as error:
        event(f"refused: {error.reason}")
        assert_documented_dc_error(error, body)
        return
    assert status == 200 and isinstance(answer, dict)


def check_answer_parser(endpoint: str, answer: dict[str, Any]) -> None:
    event(f"endpoint: {endpoint}")
    parser = PARSERS[endpoint]
    try:
        value = parser.parse(endpoint, answer)
    except DcError as error:
        assert_documented_dc_error(error, *_texts_in(answer))
        return
    assert parser.well_typed(value), f"{endpoint}: not a documented value: {value!r}"


@fuzz()
@given(st.sampled_from(sorted(PARSERS)), ANSWERS)
def test_fuzz_each_answer_parser_gives_its_value_or_a_dc_error(endpoint: str, answer: dict[str, Any]) -> None:
    check_answer_parser(endpoint, answer)


@fuzz(share=0.3)
@given(
    st.sampled_from(sorted(PARSERS)).flatmap(
        lambda endpoint: st.tuples(
            st.just(endpoint), st.fixed_dictionaries(dict.fromkeys(PARSERS[endpoint].fields, FIELD_VALUES))
        )
    )
)
def test_fuzz_each_answer_parser_with_every_field_present(case: tuple[str, dict[str, Any]]) -> None:
    """Every field there, each of any type: the checks behind the first missing field are reached too."""
    check_answer_parser(*case)


SESSION_TOKENS = st.text(string.ascii_letters + string.digits + "-._~+/", min_size=1, max_size=60).flatmap(
    lambda token: st.sampled_from(["", "=", "=="]).map(lambda pad: token + pad)
)
AWARE_TIMES = st.datetimes(
    timezones=st.integers(-1439, 1439).map(lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes)))
)
"""Fixed offsets, as ISO 8601 text carries them (a named zone's ambiguous hour compares unequal to itself)."""


@fuzz(share=0.5)
@given(
    SESSION_TOKENS,
    AWARE_TIMES,
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=40),
    st.text(min_size=1, max_size=20),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=1, max_size=200),
    st.integers(1, MAX_USES),
)
def test_fuzz_documented_answers_round_trip(
    token: str,
    expires: datetime.datetime,
    hospital_id: str,
    name: str,
    short_name: str,
    nonce: bytes,
    cryptogram: bytes,
    challenge: bytes,
    notes: bytes,
    uses: int,
) -> None:
    """What the DC simulator sends (docs/dc-protocol.md), the parsers give back exactly."""
    session = parse_session(
        "Sam/Login",
        {
            "session": token,
            "expiresAt": expires.isoformat(),
            "hospitalId": hospital_id,
            "hospitalName": name,
            "hospitalShortName": short_name,
        },
    )
    assert session == DcSession(token, expires, hospital_id, name, short_name)
    assert parse_server_time("Time", {"serverTime": expires.isoformat()}) == expires
    assert parse_nonce("Sam/Challenge", {"nonce": b64(nonce)}) == nonce
    assert parse_card_cryptogram(
        "Cards/Challenge", {"authId": name, "cryptogram": b64(cryptogram), "hostChallenge": b64(challenge)}
    ) == CardCryptogram(name, cryptogram, challenge)
    assert parse_card_notes("RealHc/Notes", {"notes": b64(notes)}) == notes
    assert parse_verification_count("VirtualHc/Verify", {"uses": uses}, MAX_USES) == uses


@functools.cache
def bench_crl_der() -> bytes:
    return bench_pki().crl.public_bytes(serialization.Encoding.DER)


@fuzz(share=0.2)
@given(st.deferred(lambda: mutated(bench_crl_der())))
@example(b"")
def test_fuzz_a_corrupted_crl_is_a_bad_answer_or_still_a_crl(der: bytes) -> None:
    try:
        crls = parse_crls("Crl", {"crls": [b64(der)]})
    except DcError as error:
        assert_documented_dc_error(error, der)
        return
    assert crls == [der]
    x509.load_der_x509_crl(der)  # accepted means the library can read it


# --- the mobile HCA login ---------------------------------------------------------------------------------

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
HOSPITAL = "777777777"

LOGIN_MOMENTS = st.datetimes(min_value=datetime.datetime(1000, 1, 1), timezones=st.just(datetime.UTC))
"""From year 1000: the format has four digits of year (and the bench's formatter writes fewer before that)."""


@functools.cache
def trust() -> TrustStore:
    return TrustStore.from_pem_bundle(
        bench_pki().root.certificate.public_bytes(serialization.Encoding.PEM)
        + bench_pki().issuing_ca.certificate.public_bytes(serialization.Encoding.PEM)
    )


@functools.cache
def valid_login() -> MobileHcaLogin:
    body = login_body("hpc-doctor", HOSPITAL, format_login_time(NOW))
    return MobileHcaLogin(
        id_no=body["idNo"],
        birthday=body["birthday"],
        c_name=body["cName"],
        e_name=body["eName"],
        hospital_id=body["hospitalId"],
        med_id=body["medId"],
        login_date_time=body["loginDateTime"],
        certificate_der=base64.b64decode(body["signatureCertificate"]),
        signature=base64.b64decode(body["signature"]),
    )


def login_outcome(login: MobileHcaLogin) -> StatusCode | None:
    """None (accepted) or one of the console's codes; never an exception."""
    code = verify_mobile_login(login, now=NOW, trust=trust(), crls=[bench_pki().crl], sam_hospital_id=HOSPITAL)
    assert code is None or isinstance(code, StatusCode)
    return code


def test_the_valid_login_is_accepted() -> None:
    """The fuzz targets below start from this login: it must be one the console accepts."""
    assert login_outcome(valid_login()) is None


@fuzz()
@given(
    st.text(max_size=30)
    | LOGIN_MOMENTS.map(format_login_time)
    .flatmap(lambda text: mutated(text.encode("ascii"), most=2))
    .map(lambda raw: raw.decode("latin-1"))
)
def test_fuzz_login_time_of_any_text(text: str) -> None:
    moment = parse_login_time(text)
    if moment is not None:  # the one spelling of that moment, and no other
        assert moment.tzinfo is datetime.UTC
        assert text == (
            f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
        )


@fuzz()
@given(LOGIN_MOMENTS)
def test_fuzz_login_time_round_trip(moment: datetime.datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert parse_login_time(format_login_time(moment)) == moment


@fuzz(share=0.3)
@given(
    st.sampled_from(["id_no", "login_date_time", "hospital_id", "signature", "certificate_der"]),
    st.text(max_size=30),
    st.binary(max_size=300),
)
def test_fuzz_a_login_with_any_field(name: str, text: str, raw: bytes) -> None:
    """Any text where a text field is, any bytes where the certificate or the signature is: a code, no raise."""
    changes: dict[str, Any] = {name: raw if name in ("signature", "certificate_der") else text}  # a field by name
    login = dataclasses.replace(valid_login(), **changes)
    assume(login != valid_login())
    code = login_outcome(login)
    event(f"{name}: {code!r}")
    if name == "hospital_id":
        assert code == StatusCode.MOBILE_HCA_WRONG_HOSPITAL
    else:
        assert code == StatusCode.MOBILE_HCA_SIGNATURE_FAILED, "the signature covers this field"


@fuzz(share=0.3)
@given(
    st.sampled_from(["signature", "certificate_der"]).flatmap(
        lambda name: st.tuples(st.just(name), st.deferred(lambda: mutated(getattr(valid_login(), name))))
    )
)
def test_fuzz_a_login_with_its_signature_or_certificate_corrupted(case: tuple[str, bytes]) -> None:
    """Bit flips, cuts and insertions in the DER reach the certificate's lazily parsed parts (its version,
    key, names, extensions, dates), which the checks behind the signature read."""
    name, corrupted = case
    assume(corrupted != getattr(valid_login(), name))
    changes: dict[str, Any] = {name: corrupted}  # a field by name
    code = login_outcome(dataclasses.replace(valid_login(), **changes))
    event(f"{name}: {code!r}")
    assert code is not None, "a changed certificate or signature was accepted"
    if name == "signature":
        assert code == StatusCode.MOBILE_HCA_SIGNATURE_FAILED


# --- HCA certificates: the staff card's and the mobile login's --------------------------------------------

STAFF_PROFILES = ("hpc-doctor", "hpc-nurse")


@functools.cache
def staff_certificate_der(profile: str) -> bytes:
    return bench_pki().staff[profile].certificate.public_bytes(serialization.Encoding.DER)


@fuzz()
@given(
    st.sampled_from(STAFF_PROFILES).flatmap(
        lambda profile: st.tuples(st.just(profile), st.deferred(lambda: mutated(staff_certificate_der(profile))))
    )
)
def test_fuzz_a_corrupted_staff_certificate_is_unreadable_or_refused(case: tuple[str, bytes]) -> None:
    """What `ConsoleCore.staff_certificate_problem` does with a card's certificate: load it (ValueError or
    InvalidVersion mean unreadable), then `check_certificate`, which must answer with a code, never raise, and
    never accept a certificate whose signed bytes changed."""
    profile, der = case
    assume(der != staff_certificate_der(profile))
    try:
        certificate = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        event("unreadable")
        return
    code = check_certificate(certificate, now=NOW, trust=trust(), crls=[bench_pki().crl])
    event(f"checked: {code!r}")
    assert isinstance(code, StatusCode), "a changed certificate was accepted"


def _corrupted(der: bytes, find: bytes, replace: bytes) -> bytes:
    assert der.count(find) >= 1
    return der.replace(find, replace, 1)


def _issuer_name_corrupted(der: bytes) -> bytes:
    """The issuer's first attribute value with the tag of a BOOLEAN: the certificate loads, its issuer does not."""
    issuer = x509.load_der_x509_certificate(der).issuer.public_bytes()
    value_tag = issuer.index(bytes.fromhex("0603550406")) + 5  # countryName's OID, then the value's tag
    return _corrupted(der, issuer, issuer[:value_tag] + b"\x01" + issuer[value_tag + 1 :])


def test_a_login_certificate_of_version_103_fails_the_signature_check() -> None:
    """Found by the fuzzing: `load_der_x509_certificate` raised x509.InvalidVersion out of verify_mobile_login."""
    der = _corrupted(valid_login().certificate_der, bytes.fromhex("a003020102"), bytes.fromhex("a003020166"))
    assert (
        login_outcome(dataclasses.replace(valid_login(), certificate_der=der)) == StatusCode.MOBILE_HCA_SIGNATURE_FAILED
    )


def test_a_login_certificate_with_an_unreadable_issuer_is_untrusted() -> None:
    """Found by the fuzzing: the signature still verifies (the key is intact), then reading the lazily parsed
    issuer name raised ValueError out of check_certificate's path building."""
    der = _issuer_name_corrupted(valid_login().certificate_der)
    assert (
        login_outcome(dataclasses.replace(valid_login(), certificate_der=der))
        == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED
    )


def test_a_staff_card_certificate_of_version_103_is_untrusted() -> None:
    """Found by the fuzzing (the same library behaviour): ConsoleCore.staff_certificate_problem caught only
    ValueError around `load_der_x509_certificate`, so a card answering such a certificate raised in the broker."""
    der = _corrupted(staff_certificate_der("hpc-doctor"), bytes.fromhex("a003020102"), bytes.fromhex("a003020166"))
    problem = Harness().core.context.staff_certificate_problem(der)
    with pytest.raises(StopIteration) as stopped:  # decided before any DC call is needed
        next(problem)
    assert stopped.value.value == StatusCode.CERTIFICATE_ISSUER_UNTRUSTED


def test_a_trust_bundle_with_a_certificate_of_version_103_is_a_value_error() -> None:
    """Found by the fuzzing: `load_pem_x509_certificates` raised x509.InvalidVersion out of from_pem_bundle."""
    der = _corrupted(
        bench_pki().root.certificate.public_bytes(serialization.Encoding.DER),
        bytes.fromhex("a003020102"),
        bytes.fromhex("a003020166"),
    )
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError, match="cannot be parsed"):
        TrustStore.from_pem_bundle(pem)
