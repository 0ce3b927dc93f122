"""Virtual health card tokens: the bench's issuer (sim.virtual_hc) and the console's verifier
(broker.credentials.virtual_hc_token), codes in the doc's order: 1520, 1522, 1523, 1524."""

from __future__ import annotations

import base64
import functools
import json
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.credentials.virtual_hc_token import (
    MAX_TOKEN_LENGTH,
    TokenRefused,
    VirtualHcToken,
    card_data,
    load_issuers,
    verify_token,
)
from contract.status_codes import StatusCode
from sim.profiles import PROFILES, HealthCardData
from sim.virtual_hc import card_of_profile, issue_token, make_issuer, new_token_id

NOW = 1_740_830_400  # 2025-03-01T12:00:00Z
IAT = NOW - 60
EXP = NOW + 3600
HOSPITAL = "3501200000"
TOKEN_ID = "vhc-TEST_token-0001"
HC_PROFILES = [name for name, profile in PROFILES.items() if profile.kind == "hc"]

_FIELDS = [
    "tokenId",
    "cardId",
    "name",
    "idNo",
    "birthday",
    "sex",
    "identityStatus",
    "hospitalId",
    "iat",
    "exp",
    "maxUses",
]

MALFORMED = StatusCode.VIRTUAL_HC_TOKEN_MALFORMED
WRONG_STRUCTURE = StatusCode.VIRTUAL_HC_TOKEN_WRONG_STRUCTURE
BAD_SIGNATURE = StatusCode.VIRTUAL_HC_TOKEN_BAD_SIGNATURE
EXPIRED = StatusCode.VIRTUAL_HC_TOKEN_EXPIRED
VERIFIER_CODES = {MALFORMED, WRONG_STRUCTURE, BAD_SIGNATURE, EXPIRED}


# --- one issuer per module (RSA key generation is slow) ----------------------------------------------


@functools.cache
def issuer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return make_issuer()


@functools.cache
def other_issuer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return make_issuer("somebody else's virtual card issuer")


def issuers() -> list[rsa.RSAPublicKey]:
    return load_issuers(issuer()[1].public_bytes(serialization.Encoding.PEM))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@functools.cache
def valid_token() -> str:
    return token_for()


def token_for(profile: str = "hc-basic", **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "token_id": TOKEN_ID,
        "card": card_of_profile(profile),
        "hospital_id": HOSPITAL,
        "issued_at": IAT,
        "expires_at": EXP,
        "max_uses": 5,
    }
    arguments.update(overrides)
    return issue_token(issuer()[0], **arguments)


def payload_of(token: str = "") -> dict[str, Any]:
    """The payload of a bench token, to change and sign again."""
    part = (token or token_for()).split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


HEADER = {"alg": "RS256", "typ": "NHI-VHC"}


def signed(header: object = HEADER, payload: object = None, *, key: rsa.RSAPrivateKey | None = None) -> str:
    """A token built by hand and signed properly: so that a refusal is for the shape, not the signature.

    `header`/`payload` are JSON-encoded unless they are bytes already.
    """

    def part(value: object) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode("ascii")
        return b64url(raw)

    text = part(header) + "." + part(payload_of() if payload is None else payload)
    signature = (key or issuer()[0]).sign(text.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return text + "." + b64url(signature)


def refused(token: str, *, now: int = NOW, keys: list[rsa.RSAPublicKey] | None = None) -> TokenRefused:
    with pytest.raises(TokenRefused) as caught:
        verify_token(token, issuers=issuers() if keys is None else keys, now=now)
    assert_no_leak(caught.value, token)
    return caught.value


def assert_no_leak(error: TokenRefused, token: str) -> None:
    """The message (and anything a traceback would print) holds neither the token nor a part of it."""
    message = str(error)
    assert error.args == (message,)
    assert error.__cause__ is None and error.__context__ is None
    if token:  # "" is in every string
        assert token not in message and token not in repr(error)
    for piece in token.split("."):
        if len(piece) >= 8:
            assert piece not in message


# --- the bench's issuer ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", HC_PROFILES)
def test_a_bench_token_verifies_and_gives_the_profiles_data(profile: str) -> None:
    token = token_for(profile, token_id=new_token_id())
    result = verify_token(token, issuers=issuers(), now=NOW)
    data = PROFILES[profile].data
    assert isinstance(data, HealthCardData)
    assert result.card_id == data.card_id and result.name == data.name and result.id_no == data.id_no
    assert result.birthday == data.birthday and result.sex == data.sex
    assert result.identity_status == data.identity_status
    assert (result.hospital_id, result.issued_at, result.expires_at, result.max_uses) == (HOSPITAL, IAT, EXP, 5)
    assert card_data(result) == {
        "cardId": data.card_id,
        "name": data.name,
        "idNo": data.id_no,
        "birthday": data.birthday,
        "sex": data.sex,
        "dateIssue": None,
        "identityStatus": data.identity_status,
    }


def test_a_token_is_unpadded_base64url_with_the_docs_header() -> None:
    token = token_for(token_id=TOKEN_ID)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    part = token.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) == HEADER
    assert payload_of(token)["tokenId"] == TOKEN_ID
    assert verify_token(token, issuers=issuers(), now=NOW).token_id == TOKEN_ID


def test_the_repr_shows_nobody() -> None:
    result = verify_token(token_for("hc-pin"), issuers=issuers(), now=NOW)
    assert isinstance(result, VirtualHcToken)
    shown = repr(result)
    data = PROFILES["hc-pin"].data
    assert isinstance(data, HealthCardData)
    for secret in (data.name, data.id_no, data.birthday):
        assert secret not in shown
    assert TOKEN_ID in shown


def test_card_of_profile_refuses_unknown_and_staff_profiles() -> None:
    with pytest.raises(KeyError):
        card_of_profile("hc-nobody")
    with pytest.raises(ValueError):
        card_of_profile("hpc-doctor")
    assert set(card_of_profile("hc-veteran")) == {"cardId", "name", "idNo", "birthday", "sex", "identityStatus"}


def test_new_token_ids_are_22_url_safe_characters_and_distinct() -> None:
    ids = {new_token_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", item) for item in ids)


def test_make_issuer_gives_a_self_signed_rsa_2048_certificate_for_the_key() -> None:
    key, certificate = issuer()
    assert key.key_size == 2048
    assert certificate.public_key() == key.public_key()
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)
    assert certificate.not_valid_before_utc.year == 2020 and certificate.not_valid_after_utc.year == 2049


# --- load_issuers -----------------------------------------------------------------------------------


def test_load_issuers_reads_a_bundle_and_any_key_of_it_verifies() -> None:
    pem = other_issuer()[1].public_bytes(serialization.Encoding.PEM) + issuer()[1].public_bytes(
        serialization.Encoding.PEM
    )
    keys = load_issuers(pem + issuer()[1].public_bytes(serialization.Encoding.PEM))
    assert len(keys) == 2  # the duplicate counted once
    assert verify_token(token_for(), issuers=keys, now=NOW).token_id == TOKEN_ID


def _ec_certificate_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(issuer()[1].not_valid_before_utc)
        .not_valid_after(issuer()[1].not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    "pem",
    [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "ec"],
)
def test_load_issuers_refuses_empty_unparsable_and_non_rsa_bundles(pem: bytes | str) -> None:
    with pytest.raises(ValueError):
        load_issuers(_ec_certificate_pem() if isinstance(pem, str) else pem)  # the one str is "ec"


# --- 1520: the token's form --------------------------------------------------------------------------


def _malformed_variants() -> dict[str, str]:
    header, payload, signature = token_for().split(".")
    return {
        "two parts": header + "." + payload,
        "four parts": header + "." + payload + "." + signature + "." + signature,
        "empty header": "." + payload + "." + signature,
        "empty payload": header + ".." + signature,
        "empty signature": header + "." + payload + ".",
        "nothing": "",
        "only dots": "..",
        "padding": header + "." + payload + "." + signature + "=" * (-len(signature) % 4 or 4),
        "padded header": header + "==." + payload + "." + signature,
        "plus": header + "." + payload + "." + "+" + signature[1:],
        "slash": header + "." + "/" + payload[1:] + "." + signature,
        "space": header + " ." + payload + "." + signature,
        "newline": header + "." + payload + "." + signature + "\n",
        "non-ASCII": header + "." + payload + "." + signature[:-1] + "é",
        "full-width letter": header + "." + "Ａ" + payload[1:] + "." + signature,
        "impossible length": header + "." + payload + "." + signature + "A" * ((1 - len(signature)) % 4 or 4),
        "non-canonical last character": header + "." + payload + "." + _non_canonical(signature),
        "oversized": header + "." + payload + "A" * MAX_TOKEN_LENGTH + "." + signature,
    }


def _non_canonical(part: str) -> str:
    """The same bytes, spelled with unused low bits set in the last character."""
    assert len(part) % 4 in (2, 3), "an RSA-2048 signature (256 bytes) encodes to 342 characters"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return part[:-1] + alphabet[alphabet.index(part[-1]) | 1]


@pytest.mark.parametrize("variant", list(_malformed_variants()))
def test_1520_a_token_not_of_three_unpadded_base64url_parts(variant: str) -> None:
    assert refused(_malformed_variants()[variant]).code == MALFORMED


def test_1520_comes_before_every_other_check() -> None:
    # Signed by nobody trusted, expired, and with a header of another algorithm, but four parts.
    token = signed({"alg": "none"}, key=other_issuer()[0]) + ".AAAA"
    assert refused(token, now=EXP + 10, keys=[]).code == MALFORMED


def test_1520_for_something_that_is_not_a_string() -> None:
    with pytest.raises(TokenRefused) as caught:
        verify_token(b"a.b.c", issuers=issuers(), now=NOW)  # type: ignore[arg-type]  # deliberately off-type
    assert caught.value.code == MALFORMED


def test_a_token_of_exactly_the_maximum_length_is_not_refused_for_its_length() -> None:
    header, payload, signature = token_for().split(".")
    filler = MAX_TOKEN_LENGTH - len(header + payload + signature) - 2
    # "A" is six zero bits, so appended As keep a part canonical base64url, if its length is not 4n+1.
    for in_payload in (filler, filler - 1, filler - 2):
        p, s = len(payload) + in_payload, len(signature) + filler - in_payload
        if p % 4 != 1 and s % 4 != 1:
            break
    exact = header + "." + payload + "A" * in_payload + "." + signature + "A" * (filler - in_payload)
    assert len(exact) == MAX_TOKEN_LENGTH
    assert refused(exact).code != MALFORMED  # NULs after the JSON: 1522, but not for its length
    assert refused(exact + "AA").code == MALFORMED


def test_extra_card_keys_are_not_copied_into_the_token() -> None:
    assert token_for(card={**card_of_profile("hc-basic"), "extra": "x"}) == token_for()


# --- 1522: the shape -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b" ",
        b'["RS256"]',
        b'"RS256"',
        b"\xff\xfe{}",
        {"alg": "HS256", "typ": "NHI-VHC"},
        {"alg": "none", "typ": "NHI-VHC"},
        {"alg": "rs256", "typ": "NHI-VHC"},
        {"typ": "NHI-VHC"},
        {"alg": "RS256"},
        {"alg": "RS256", "typ": "JWT"},
        {"alg": ["RS256"], "typ": "NHI-VHC"},
        b'{"alg": "RS256", "typ": "NHI-VHC", "alg": "none"}',
    ],
)
def test_1522_a_header_that_is_not_the_docs(header: object) -> None:
    assert refused(signed(header)).code == WRONG_STRUCTURE


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b"[]", b'"text"', b"42", b"null", b"\xc3\x28{}", b'{"a": NaN}', b"[" * 3000],
)
def test_1522_a_payload_that_is_not_a_json_object(payload: bytes) -> None:
    assert refused(signed(payload=payload)).code == WRONG_STRUCTURE


_WRONG_FIELDS: list[tuple[str, object]] = [
    ("tokenId", ""),
    ("tokenId", "x" * 65),
    ("tokenId", "has.dot"),
    ("tokenId", "has space"),
    ("tokenId", 12),
    ("tokenId", None),
    ("cardId", "90000000071"),
    ("cardId", "9000000007111"),
    ("cardId", "90000000071X"),
    ("cardId", "９００００００００７１１"),
    ("cardId", 900000000711),
    ("name", ""),
    ("name", "名" * 21),
    ("name", "\ud800"),
    ("name", ["測試資料"]),
    ("idNo", "R8885508"),
    ("idNo", "R88855084AB"),
    ("idNo", "R8885508-A"),
    ("idNo", "Ｒ88855084A"),
    ("idNo", 1234567890),
    ("birthday", "741201"),
    ("birthday", "20000101"),
    ("birthday", "074120a"),
    ("birthday", 741201),
    ("sex", "X"),
    ("sex", "m"),
    ("sex", ""),
    ("sex", 1),
    ("identityStatus", "5"),
    ("identityStatus", "0"),
    ("identityStatus", "33"),
    ("identityStatus", 3),
    ("hospitalId", ""),
    ("hospitalId", "12345678901"),
    ("hospitalId", "350-120000"),
    ("hospitalId", 3501200000),
    ("iat", str(IAT)),
    ("iat", IAT + 0.5),
    ("iat", float(IAT)),
    ("iat", -1),
    ("iat", True),
    ("iat", None),
    ("exp", str(EXP)),
    ("exp", float(EXP)),
    ("exp", 2**63),
    ("exp", False),
    ("maxUses", 0),
    ("maxUses", 1001),
    ("maxUses", -1),
    ("maxUses", "5"),
    ("maxUses", 5.0),
    ("maxUses", True),
    ("maxUses", None),
]


@pytest.mark.parametrize(("name", "value"), _WRONG_FIELDS, ids=[f"{n}={v!r}"[:40] for n, v in _WRONG_FIELDS])
def test_1522_a_payload_field_wrongly_typed_or_formatted(name: str, value: object) -> None:
    payload = payload_of()
    payload[name] = value
    error = refused(signed(payload=payload))
    assert error.code == WRONG_STRUCTURE
    assert name in str(error)  # says which field, not what it held


@pytest.mark.parametrize("name", _FIELDS)
def test_1522_a_payload_field_missing(name: str) -> None:
    payload = payload_of()
    del payload[name]
    error = refused(signed(payload=payload))
    assert error.code == WRONG_STRUCTURE
    assert name in str(error)


@pytest.mark.parametrize("exp", [IAT, IAT - 1])
def test_1522_exp_not_after_iat(exp: int) -> None:
    payload = payload_of()
    payload["exp"] = exp
    assert refused(signed(payload=payload)).code == WRONG_STRUCTURE


def test_1522_a_duplicate_payload_key() -> None:
    text = json.dumps(payload_of())[:-1] + ', "cardId": "900000000728"}'
    assert refused(signed(payload=text.encode())).code == WRONG_STRUCTURE


def test_the_field_limits_themselves_are_accepted_and_extra_fields_ignored() -> None:
    payload = payload_of()
    payload.update(
        tokenId="x" * 64, name="名" * 20, hospitalId="A" * 10, maxUses=1000, iat=0, exp=NOW + 1, extra={"any": [1]}
    )
    result = verify_token(signed(payload=payload), issuers=issuers(), now=NOW)
    assert (result.token_id, result.max_uses, result.issued_at) == ("x" * 64, 1000, 0)
    payload.update(tokenId="A", hospitalId="1", maxUses=1, identityStatus="8", sex="M")
    assert verify_token(signed(payload=payload), issuers=issuers(), now=NOW).max_uses == 1


def test_1522_comes_before_the_signature_and_the_expiry() -> None:
    payload = payload_of()
    payload["maxUses"] = True
    assert refused(signed(payload=payload, key=other_issuer()[0]), now=EXP + 10, keys=[]).code == WRONG_STRUCTURE


# --- 1523: the signature -----------------------------------------------------------------------------


def test_1523_a_byte_of_the_signature_flipped() -> None:
    header, payload, signature = token_for().split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    for position in (0, 100, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        assert refused(header + "." + payload + "." + b64url(bytes(flipped))).code == BAD_SIGNATURE


def test_1523_a_signature_of_the_wrong_length() -> None:
    header, payload, signature = token_for().split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert refused(header + "." + payload + "." + b64url(raw[:-1])).code == BAD_SIGNATURE
    assert refused(header + "." + payload + "." + b64url(raw + b"\0")).code == BAD_SIGNATURE
    assert refused(header + "." + payload + ".AAAA").code == BAD_SIGNATURE


def test_1523_the_payload_changed_after_signing() -> None:
    header, _, signature = token_for().split(".")
    changed = payload_of()
    changed["maxUses"] = 1000
    changed_part = b64url(json.dumps(changed).encode())
    assert refused(header + "." + changed_part + "." + signature).code == BAD_SIGNATURE
    # Another token's payload under this one's signature.
    other_payload = token_for("hc-veteran").split(".")[1]
    assert refused(header + "." + other_payload + "." + signature).code == BAD_SIGNATURE


def test_1523_the_same_json_spelled_differently_is_not_what_was_signed() -> None:
    header, payload, signature = token_for().split(".")
    respelled = b64url(json.dumps(payload_of(), indent=1, ensure_ascii=False).encode())
    assert respelled != payload
    assert refused(header + "." + respelled + "." + signature).code == BAD_SIGNATURE


def test_1523_signed_by_another_issuer() -> None:
    token = issue_token(
        other_issuer()[0],
        token_id=TOKEN_ID,
        card=card_of_profile("hc-basic"),
        hospital_id=HOSPITAL,
        issued_at=IAT,
        expires_at=EXP,
        max_uses=5,
    )
    assert refused(token).code == BAD_SIGNATURE
    both = issuers() + load_issuers(other_issuer()[1].public_bytes(serialization.Encoding.PEM))
    assert verify_token(token, issuers=both, now=NOW).token_id == TOKEN_ID


def test_1523_no_issuer_configured() -> None:
    error = refused(token_for(), keys=[])
    assert error.code == BAD_SIGNATURE


def test_1523_comes_before_the_expiry() -> None:
    assert refused(token_for(), now=EXP + 10, keys=[]).code == BAD_SIGNATURE


# --- 1524: the expiry --------------------------------------------------------------------------------


@pytest.mark.parametrize("now", [EXP, EXP + 1, EXP + 86_400 * 365])
def test_1524_at_and_after_exp(now: int) -> None:
    assert refused(token_for(), now=now).code == EXPIRED


def test_a_second_before_exp_is_accepted_and_iat_in_the_future_is_not_checked() -> None:
    assert verify_token(token_for(), issuers=issuers(), now=EXP - 1).expires_at == EXP
    assert verify_token(token_for(), issuers=issuers(), now=IAT - 3600).issued_at == IAT


# --- properties --------------------------------------------------------------------------------------

_MUTATION_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é\x00\n"


def _outcome(token: str) -> VirtualHcToken | TokenRefused:
    """Either a result or a TokenRefused with one of this module's codes; anything else fails the test."""
    try:
        return verify_token(token, issuers=issuers(), now=NOW)
    except TokenRefused as error:
        assert error.code in VERIFIER_CODES
        return error


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_string_is_refused_with_a_code_or_accepted(text: str) -> None:
    result = _outcome(text)
    assert isinstance(result, TokenRefused)
    # Prefixed, so that the token cannot be a substring of a fixed message by chance (a random "e" is in
    # every English sentence); "eyJ" is how a JSON object's base64 begins, so structure is still explored.
    token = "eyJ" + text
    result = _outcome(token)
    assert isinstance(result, TokenRefused)
    assert_no_leak(result, token)


@st.composite
def mutated_tokens(draw: st.DrawFn) -> str:
    token = valid_token()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "swap parts"]))
        position = draw(st.integers(0, max(len(token) - 1, 0)))
        character = draw(st.sampled_from(_MUTATION_ALPHABET))
        if kind == "replace":
            token = token[:position] + character + token[position + 1 :]
        elif kind == "delete":
            token = token[:position] + token[position + 1 :]
        elif kind == "insert":
            token = token[:position] + character + token[position:]
        elif kind == "truncate":
            token = token[:position]
        else:
            parts = token.split(".")
            token = ".".join(draw(st.permutations(parts)))
    return token


@settings(max_examples=300, deadline=None)
@given(mutated_tokens())
def test_a_mutated_token_is_refused_with_a_code_and_never_quoted(token: str) -> None:
    result = _outcome(token)
    if isinstance(result, TokenRefused):
        if len(token) >= 8:  # a truncation can leave "e", which any sentence contains
            assert_no_leak(result, token)
    else:
        # Only a mutation that changes nothing (e.g. replacing a character by itself) may pass.
        assert token == valid_token()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["alg", "typ", "kid"]), _JSON, max_size=2),
    st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=10), _JSON, max_size=3) | _JSON,
)
def test_random_signed_json_is_accepted_or_refused_with_a_code(header_extra: dict[str, Any], changes: Any) -> None:
    """Properly signed random JSON: the verifier never trips over a value it does not expect."""
    header = {**HEADER, **header_extra}
    payload = payload_of()
    if isinstance(changes, dict):
        payload.update(changes)
    else:
        payload = changes
    result = _outcome(signed(header, payload))
    if isinstance(result, TokenRefused):
        assert result.code in (WRONG_STRUCTURE, EXPIRED)  # signed by the trusted issuer: never 1520 or 1523
