"""Fuzzing the two credentials a HIS hands the console: the virtual health card token (`NHI-VHC`, from
`POST /api/hc/v1/Verification/VirtualHc` and `.../ReadBasic`) and the cloud SAM file (`cloudSamContext` of
`POST /api/settings/v1/CloudSam`), plus the issuer bundle the token is checked with.

Why it matters: both arrive in a request body from any program on the machine, and both are secrets (a
token is a bearer credential; a SAM file holds the SAM's private key). A parser that raises anything but its
documented error takes the broker's command down with it (the broker catches `TokenRefused` and
`CloudSamFileInvalid`, nothing else); a message that quotes its input puts the secret into the call record,
the log and the HIS's answer. So, on any input and on valid inputs with bytes flipped, cut or inserted:
  - the outcome is a well-typed value or the documented error, of exactly that type;
  - a tampered token is always refused; a tampered SAM file is refused or, where the bytes changed lie
    outside what the file's identity rests on (a hospital's display name, a certificate field the console
    does not read), accepted with the same samId, the same key and a certificate for that key;
  - the error's message holds no 8-character run of the input.
Valid inputs round-trip through the bench's builders.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import string
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import assume, example, given
from hypothesis import strategies as st

from broker.credentials import cloud_sam_file, virtual_hc_token
from broker.credentials.cloud_sam_file import (
    FORMAT,
    MAGIC,
    CloudSamFile,
    CloudSamFileInvalid,
    decode_context,
    parse_cloud_sam_file,
)
from broker.credentials.virtual_hc_token import (
    MAX_TOKEN_LENGTH,
    TokenRefused,
    VirtualHcToken,
    load_issuers,
    verify_token,
)
from contract.protocol import Reply, build
from contract.status_codes import StatusCode
from contract.text import CONTROL_CHARACTERS
from sim.virtual_hc import issue_token, make_issuer
from tests.fuzzing import fuzz
from tests.mutations import leaked_pieces, mutated, own_words

NOW = 1_740_830_400  # 2025-03-01T12:00:00Z

# A corrupted certificate may have a serial number of 0, which the library still loads with a deprecation
# warning; that is the input, not a finding.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning"
)

# --- the virtual health card token ------------------------------------------------------------------------

TOKEN_CODES = {
    StatusCode.VIRTUAL_HC_TOKEN_MALFORMED,
    StatusCode.VIRTUAL_HC_TOKEN_WRONG_STRUCTURE,
    StatusCode.VIRTUAL_HC_TOKEN_BAD_SIGNATURE,
    StatusCode.VIRTUAL_HC_TOKEN_EXPIRED,
}
TOKEN_VOCABULARY = own_words(virtual_hc_token)
B64URL = string.ascii_letters + string.digits + "-_"


@functools.cache
def issuer() -> tuple[rsa.RSAPrivateKey, list[rsa.RSAPublicKey]]:
    key, certificate = make_issuer()
    return key, load_issuers(certificate.public_bytes(serialization.Encoding.PEM))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


CARD = {
    "cardId": "900000000711",
    "name": "測試資料",
    "idNo": "R88855084A",
    "birthday": "0741201",
    "sex": "F",
    "identityStatus": "3",
}


@functools.cache
def valid_token() -> str:
    return issue_token(
        issuer()[0],
        token_id="vhc-fuzz-0001",
        card=CARD,
        hospital_id="3501200000",
        issued_at=NOW - 60,
        expires_at=NOW + 3600,
        max_uses=5,
    )


def token_outcome(token: str) -> VirtualHcToken | TokenRefused:
    """The verifier's answer, checked against its contract; anything but these two fails the test."""
    try:
        return verify_token(token, issuers=issuer()[1], now=NOW)
    except TokenRefused as error:
        message = str(error)
        assert error.code in TOKEN_CODES
        assert error.args == (message,), "only the message: no argument may carry the token"
        assert error.__cause__ is None and error.__context__ is None, "a chained decoder error can quote bytes"
        assert leaked_pieces(message, token, vocabulary=TOKEN_VOCABULARY) == []
        assert leaked_pieces(repr(error), token, vocabulary=TOKEN_VOCABULARY) == []
        return error


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _json_part(value: Any) -> str:
    return b64url(json.dumps(value).encode("utf-8"))


TOKEN_SHAPED = st.builds(
    lambda header, payload, signature: ".".join((header, payload, signature)),
    st.text(B64URL, max_size=60) | JSON_VALUES.map(_json_part),
    st.text(B64URL, max_size=200) | JSON_VALUES.map(_json_part),
    st.text(B64URL, max_size=400) | st.binary(max_size=300).map(b64url),
)


@fuzz()
@given(st.text(max_size=400) | TOKEN_SHAPED | st.text(B64URL + ".", max_size=600))
@example("a" * (MAX_TOKEN_LENGTH + 1))
@example("..")
def test_fuzz_any_text_is_refused_with_a_code_and_never_quoted(token: str) -> None:
    assert isinstance(token_outcome(token), TokenRefused), "only the issuer's key can make an accepted token"


@st.composite
def tampered_tokens(draw: st.DrawFn) -> str:
    """The valid token with the decoded bytes of one of its parts changed, then re-encoded canonically: the
    tampering a forger would do (change the payload, keep the signature; or forge the signature)."""
    parts = valid_token().split(".")
    index = draw(st.sampled_from([0, 1, 2]))
    original = b64url_decode(parts[index])
    changed = draw(mutated(original))
    assume(changed != original)
    parts[index] = b64url(changed)
    return ".".join(parts)


@fuzz()
@given(tampered_tokens())
def test_fuzz_a_tampered_token_is_always_refused(token: str) -> None:
    outcome = token_outcome(token)
    assert isinstance(outcome, TokenRefused), "a tampered token was accepted"
    assert outcome.code != StatusCode.VIRTUAL_HC_TOKEN_EXPIRED, "1524 is checked after the signature verified"


@fuzz()
@given(st.deferred(lambda: mutated(valid_token().encode("ascii"))))
def test_fuzz_a_token_with_its_text_mutated_is_refused(raw: bytes) -> None:
    token = raw.decode("latin-1")
    outcome = token_outcome(token)
    if not isinstance(outcome, TokenRefused):
        assert token == valid_token()


TOKEN_IDS = st.text(B64URL, min_size=1, max_size=64)
NAMES = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)
TOKEN_CARDS = st.fixed_dictionaries(
    {
        "cardId": st.text(string.digits, min_size=12, max_size=12),
        "name": NAMES,
        "idNo": st.text(string.ascii_letters + string.digits, min_size=10, max_size=10),
        "birthday": st.text(string.digits, min_size=7, max_size=7),
        "sex": st.sampled_from(["M", "F"]),
        "identityStatus": st.sampled_from(["1", "2", "3", "4", "8"]),
    }
)


@fuzz(share=0.3)
@given(
    TOKEN_IDS,
    TOKEN_CARDS,
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=10),
    st.integers(0, NOW),
    st.integers(1, 2**40),
    st.integers(1, 1000),
)
def test_fuzz_a_bench_token_round_trips(
    token_id: str, card: dict[str, str], hospital_id: str, issued_at: int, lifetime: int, max_uses: int
) -> None:
    token = issue_token(
        issuer()[0],
        token_id=token_id,
        card=card,
        hospital_id=hospital_id,
        issued_at=issued_at,
        expires_at=NOW + lifetime,
        max_uses=max_uses,
    )
    verified = verify_token(token, issuers=issuer()[1], now=NOW)
    assert verified == VirtualHcToken(
        token_id,
        card["cardId"],
        card["name"],
        card["idNo"],
        card["birthday"],
        card["sex"],
        card["identityStatus"],
        hospital_id,
        issued_at,
        NOW + lifetime,
        max_uses,
    )


@functools.cache
def issuer_pem() -> bytes:
    return make_issuer()[1].public_bytes(serialization.Encoding.PEM)


def _pem_of_der(der: bytes, label: str = "CERTIFICATE") -> bytes:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode("ascii")


def _der_of_pem(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@fuzz(share=0.5)
@given(
    st.binary(max_size=300)
    | st.deferred(lambda: mutated(issuer_pem()))
    | st.deferred(lambda: mutated(_der_of_pem(issuer_pem())).map(_pem_of_der))
)
@example(b"")
def test_fuzz_issuer_bundle_gives_rsa_keys_or_value_error(pem: bytes) -> None:
    """`serve --vhc-issuer FILE`: a bad file is a ValueError at start, with a message quoting nothing."""
    try:
        keys = load_issuers(pem)
    except ValueError as error:
        assert type(error) is ValueError
        assert leaked_pieces(str(error), pem, vocabulary=TOKEN_VOCABULARY) == []
        return
    assert keys and all(isinstance(key, rsa.RSAPublicKey) for key in keys)


# --- the cloud SAM file -----------------------------------------------------------------------------------

SAM_FIELDS = ("format", "samId", "hospitalId", "hospitalName", "hospitalShortName", "privateKey", "certificate")
SAM_VOCABULARY = own_words(cloud_sam_file)
SAM_ID = "901000000047"


@functools.cache
def sam_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def sam_certificate_pem(sam_id: str) -> str:
    """Self-signed, CN = samId: the console checks the key and the CN; the DC checks the issuer."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sam_id)])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(sam_key().public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(sam_key(), hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


@functools.cache
def other_certificate_pem(which: str) -> str:
    """A certificate that is not this SAM's: for another key (RSA or EC), or naming another samId or two."""
    new_keys: dict[str, Callable[[], Any]] = {
        "another RSA key": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "an EC key": lambda: ec.generate_private_key(ec.SECP256R1()),
    }
    key = new_keys[which]() if which in new_keys else sam_key()
    names = {"another samId": ["901000000048"], "two samIds": [SAM_ID, "901000000048"], "no samId": []}
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in names.get(which, [SAM_ID])])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


OTHER_CERTIFICATES = ("another RSA key", "an EC key", "another samId", "two samIds", "no samId")


@functools.cache
def sam_key_pem() -> str:
    return (
        sam_key()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode("ascii")
    )


def sam_document(
    sam_id: str = SAM_ID, hospital_id: str = "777777777", hospital_name: str = "測試機構", short_name: str = "測試"
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "samId": sam_id,
        "hospitalId": hospital_id,
        "hospitalName": hospital_name,
        "hospitalShortName": short_name,
        "privateKey": sam_key_pem(),
        "certificate": sam_certificate_pem(sam_id),
    }


def sam_file(document: Any) -> bytes:
    """As the bench's DC issues them (sim.dc.sam_files): the magic line, then UTF-8 JSON."""
    return MAGIC + json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


@functools.cache
def valid_sam_file() -> bytes:
    return sam_file(sam_document())


def _public_numbers(certificate: x509.Certificate) -> object:
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key.public_numbers()


def sam_outcome(raw: bytes, *secrets: str | bytes) -> CloudSamFile | CloudSamFileInvalid:
    """The parser's answer against its contract: a usable file, or CloudSamFileInvalid quoting nothing."""
    try:
        parsed = parse_cloud_sam_file(raw)
    except CloudSamFileInvalid as error:
        assert type(error) is CloudSamFileInvalid
        assert error.__cause__ is None, "a chained library error can quote the file"
        assert leaked_pieces(str(error), raw, *secrets, vocabulary=SAM_VOCABULARY) == []
        return error
    assert isinstance(parsed, CloudSamFile)
    assert len(parsed.sam_id) == 12 and parsed.sam_id.isascii() and parsed.sam_id.isdigit()
    assert parsed.private_key.key_size == 2048
    assert _public_numbers(parsed.certificate) == parsed.private_key.public_key().public_numbers()
    for secret_field in ("private_key", "certificate"):
        assert secret_field not in repr(parsed)
    names = (parsed.sam_id, parsed.hospital_id, parsed.hospital_name, parsed.hospital_short_name)
    assert not any(CONTROL_CHARACTERS.search(name) for name in names), "the one rule for text from outside"
    build(Reply(id="r", code=0, body={"sam": names}))  # ImportCloudSam's reply carries them: they must encode
    return parsed


def assert_same_identity(parsed: CloudSamFile) -> None:
    """What a tampered file may not change while still being accepted: whose SAM it is, and its key."""
    assert parsed.sam_id == SAM_ID
    assert parsed.private_key.private_numbers() == sam_key().private_numbers()
    assert _public_numbers(parsed.certificate) == sam_key().public_key().public_numbers()


@fuzz()
@given(st.binary(max_size=600) | st.binary(max_size=600).map(lambda body: MAGIC + body))
@example(MAGIC + b"[" * 20_000)
@example(MAGIC + b"\xef\xbb\xbf{}")
@example(b"x" * (48 * 1024 + 1))
def test_fuzz_sam_file_of_any_bytes(raw: bytes) -> None:
    assert isinstance(sam_outcome(raw), CloudSamFileInvalid)


def _replace_fields(changes: dict[str, Any]) -> bytes:
    document = sam_document()
    document.update(changes)
    return sam_file(document)


def _without_fields(names: set[str]) -> bytes:
    return sam_file({name: value for name, value in sam_document().items() if name not in names})


LONE_SURROGATES = st.builds(
    lambda text, surrogate: text + surrogate,
    st.text(max_size=8),
    st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]),
)
"""What JSON's `\\ud800` escape decodes to: a str no UTF-8 (nor msgpack) can carry."""

SAM_DOCUMENTS = st.one_of(
    JSON_VALUES.map(sam_file),
    st.dictionaries(st.sampled_from(SAM_FIELDS), LONE_SURROGATES, min_size=1, max_size=2).map(
        lambda changes: MAGIC + json.dumps({**sam_document(), **changes}).encode("ascii")
    ),
    st.sets(st.sampled_from(SAM_FIELDS), min_size=1).map(_without_fields),
    st.sampled_from(OTHER_CERTIFICATES).map(
        lambda which: _replace_fields({"certificate": other_certificate_pem(which)})
    ),
    st.dictionaries(st.sampled_from(SAM_FIELDS), JSON_VALUES, min_size=1, max_size=3).map(_replace_fields),
    st.dictionaries(st.sampled_from(SAM_FIELDS), st.text(max_size=80), min_size=1, max_size=3).map(_replace_fields),
)


@fuzz(share=0.5)
@given(SAM_DOCUMENTS)
def test_fuzz_sam_file_with_fields_of_any_type(raw: bytes) -> None:
    """The right magic and JSON, with fields missing, of the wrong type, of any text, or with the certificate of
    another key or another samId."""
    outcome = sam_outcome(raw, sam_key_pem())
    if isinstance(outcome, CloudSamFile):
        assert_same_identity(outcome)


@fuzz(share=0.07)
@given(st.deferred(lambda: mutated(valid_sam_file())))
def test_fuzz_a_tampered_sam_file_is_refused_or_keeps_its_identity(raw: bytes) -> None:
    outcome = sam_outcome(raw, sam_key_pem())
    if isinstance(outcome, CloudSamFile):
        assert_same_identity(outcome)


def _with_certificate_der(der: bytes) -> bytes:
    return _replace_fields({"certificate": _pem_of_der(der).decode("ascii")})


def _with_key_der(der: bytes) -> bytes:
    return _replace_fields({"privateKey": _pem_of_der(der, "PRIVATE KEY").decode("ascii")})


@functools.cache
def certificate_der() -> bytes:
    return _der_of_pem(sam_certificate_pem(SAM_ID).encode("ascii"))


@functools.cache
def key_der() -> bytes:
    return sam_key().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@fuzz(share=0.07)
@given(st.deferred(lambda: mutated(certificate_der())))
def test_fuzz_a_sam_file_with_its_certificate_corrupted(der: bytes) -> None:
    """Mutations of the certificate's DER (not its base64) reach the ASN.1 inside: version, key algorithm,
    subject. The file is refused, or the certificate still names the SAM and holds its key."""
    outcome = sam_outcome(_with_certificate_der(der), sam_key_pem())
    if isinstance(outcome, CloudSamFile):
        assert_same_identity(outcome)


@fuzz(share=0.5)
@given(st.deferred(lambda: mutated(key_der()[:64]).map(lambda head: head + key_der()[64:])))
def test_fuzz_a_sam_file_with_its_key_corrupted(der: bytes) -> None:
    """Mutations of the PKCS#8 key's first bytes: its structure and algorithm identifier (a change deeper in
    is a different number, which the key's own consistency check or the certificate comparison refuses)."""
    outcome = sam_outcome(_with_key_der(der), sam_key_pem())
    if isinstance(outcome, CloudSamFile):
        assert_same_identity(outcome)


# --- inputs the fuzzing found, pinned (each escaped parse_cloud_sam_file as a library exception before) ---

RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")
"""1.2.840.113549.1.1.1 as DER; its last arc changed to 5 names sha1WithRSAEncryption, which is no key type."""
UNKNOWN_KEY_OID = RSA_ENCRYPTION_OID[:-1] + b"\x05"
CERTIFICATE_VERSION_3 = bytes.fromhex("a003020102")
COMMON_NAME_UTF8 = bytes.fromhex("0603550403") + b"\x0c\x0c" + SAM_ID.encode("ascii")


FOUND_BY_FUZZING: dict[str, Callable[[], bytes]] = {
    "certificate version 103 (x509.InvalidVersion)": lambda: _with_certificate_der(
        certificate_der().replace(CERTIFICATE_VERSION_3, bytes.fromhex("a003020166"))
    ),
    "certificate key of an unknown algorithm (UnsupportedAlgorithm from public_key())": lambda: _with_certificate_der(
        certificate_der().replace(RSA_ENCRYPTION_OID, UNKNOWN_KEY_OID)
    ),
    "certificate subject with a BOOLEAN for the CN's string (ValueError from .subject)": lambda: _with_certificate_der(
        certificate_der().replace(COMMON_NAME_UTF8, COMMON_NAME_UTF8[:5] + b"\x01" + COMMON_NAME_UTF8[6:])
    ),
    "private key of an unknown algorithm (UnsupportedAlgorithm from load_pem_private_key)": lambda: _with_key_der(
        key_der().replace(RSA_ENCRYPTION_OID, UNKNOWN_KEY_OID)
    ),
    "body nested 20 000 deep (RecursionError from json.loads)": lambda: MAGIC + b"[" * 20_000,
    "hospitalName a lone surrogate (accepted, then ImportCloudSam's reply could not be encoded)": lambda: (
        MAGIC + json.dumps({**sam_document(), "hospitalName": "\ud800"}).encode("ascii")
    ),
    "samId of ARABIC-INDIC DIGIT NINE, and a certificate naming it (accepted by `\\d`)": lambda: sam_file(
        sam_document("\u0669" * 12)
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND_BY_FUZZING))
def test_a_sam_file_the_fuzzing_broke_is_invalid(case: str) -> None:
    raw = FOUND_BY_FUZZING[case]()
    with pytest.raises(CloudSamFileInvalid) as caught:
        parse_cloud_sam_file(raw)
    assert caught.value.__cause__ is None
    assert leaked_pieces(str(caught.value), raw, vocabulary=SAM_VOCABULARY) == []


def test_an_issuer_bundle_with_a_certificate_of_version_103_is_a_value_error() -> None:
    """Found by the fuzzing: `load_pem_x509_certificates` raises x509.InvalidVersion, not a ValueError."""
    corrupted = _der_of_pem(issuer_pem()).replace(CERTIFICATE_VERSION_3, bytes.fromhex("a003020166"), 1)
    with pytest.raises(ValueError, match="cannot be parsed"):
        load_issuers(_pem_of_der(corrupted))


HOSPITAL_NAMES = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=64)
"""Any text without a control character (contract.text) or a lone surrogate (which is no text)."""


@fuzz(share=0.05)
@given(
    st.text(string.digits, min_size=12, max_size=12),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=10),
    HOSPITAL_NAMES,
    HOSPITAL_NAMES,
)
def test_fuzz_sam_file_round_trip(sam_id: str, hospital_id: str, name: str, short_name: str) -> None:
    parsed = parse_cloud_sam_file(sam_file(sam_document(sam_id, hospital_id, name, short_name)))
    assert (parsed.sam_id, parsed.hospital_id, parsed.hospital_name, parsed.hospital_short_name) == (
        sam_id,
        hospital_id,
        name,
        short_name,
    )


@fuzz(share=0.1)
@given(
    st.text(st.characters(categories=["Nd"]), min_size=12, max_size=12).filter(lambda text: not text.isascii()),
    st.text(st.characters(categories=["Nd", "Lu", "Ll", "Lo"]), min_size=1, max_size=10),
)
@example("\u0669" * 12, "777777777")  # ARABIC-INDIC DIGIT NINE: `\d` matches it, `[0-9]` does not
def test_fuzz_a_sam_file_with_non_ascii_digits_or_letters_in_its_ids_is_invalid(sam_id: str, hospital_id: str) -> None:
    """samId is 12 ASCII digits and hospitalId 1 to 10 ASCII letters or digits: the samId goes into the DC login's
    signed bytes as ASCII, and both into the DC's URLs. The certificate here names the samId, as a crafted file's
    would (the console checks the CN, not who issued the certificate)."""
    outcome = sam_outcome(sam_file(sam_document(sam_id, "777777777")))
    assert isinstance(outcome, CloudSamFileInvalid), "a samId of non-ASCII digits was accepted"
    assume(not hospital_id.isascii())
    assert isinstance(sam_outcome(sam_file(sam_document(SAM_ID, hospital_id))), CloudSamFileInvalid)


@fuzz()
@given(st.text(max_size=300) | st.text(string.ascii_letters + string.digits + "+/= \n", max_size=300))
def test_fuzz_cloud_sam_context_of_any_text(text: str) -> None:
    """`cloudSamContext`: strict base64 (whitespace allowed) of a non-empty file, else CloudSamFileInvalid."""
    try:
        raw = decode_context(text)
    except CloudSamFileInvalid as error:
        assert type(error) is CloudSamFileInvalid and error.__cause__ is None
        assert leaked_pieces(str(error), text, vocabulary=SAM_VOCABULARY) == []
        return
    assert raw == base64.b64decode("".join(text.split()), validate=True)


@fuzz()
@given(
    st.binary(min_size=1, max_size=300),
    st.lists(st.tuples(st.sampled_from([" ", "\n", "\r\n", "\t"]), st.integers(0, 1000)), max_size=5),
)
def test_fuzz_cloud_sam_context_round_trip(raw: bytes, spaces: list[tuple[str, int]]) -> None:
    """Any file's bytes in base64, line-wrapped or spaced as a mail client or a text field would, decode back."""
    text = base64.b64encode(raw).decode("ascii")
    for space, position in spaces:
        position %= len(text) + 1
        text = text[:position] + space + text[position:]
    assert decode_context(text) == raw
