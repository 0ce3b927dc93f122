"""Tests for broker.dc.answers (the protocol's table, pure) and broker.dc.client (against a real local HTTPS server)."""

from __future__ import annotations

import base64
import datetime as dt
import inspect
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.dc.answers import (
    DC_ERRORS,
    MAX_ANSWER_BYTES,
    MAX_CRL_ANSWER_BYTES,
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
    virtual_hc_card,
)
from broker.dc.client import HttpsDataCenter
from broker.dc.seam import CardCryptogram, DataCenter, DcError, DcSession, ImportedVirtualHc, NoDataCenter
from contract.status_codes import StatusCode

pytestmark = pytest.mark.timeout(10)

TOKEN = "s3cr3t-Session.Token_0123456789"
CARD_NUMBER = "000012345678"
SAM_ID = "901000000047"
TAIPEI = dt.timezone(dt.timedelta(hours=8))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def body(value: object) -> bytes:
    return json.dumps(value).encode()


# --------------------------------------------------------------------------- #
# the pure mapping: every row of the table
# --------------------------------------------------------------------------- #


TABLE = [
    (400, "badRequest", StatusCode.BAD_PARAMETER_1705),
    (401, "sessionExpired", StatusCode.DC_SESSION_EXPIRED),
    (403, "contractExpired", StatusCode.CONTRACT_EXPIRED),
    (403, "hospitalSuspended", StatusCode.HOSPITAL_SUSPENDED),
    (403, "samRevoked", StatusCode.SAM_REVOKED),
    (403, "authenticationFailed", StatusCode.DC_UNDEFINED_ERROR),
    (404, "unknownSam", StatusCode.SAM_LEVEL2_FAILED),
    (404, "unknownCommand", StatusCode.DC_COMMAND_UNKNOWN),
    (403, "verificationCountExceeded", StatusCode.VIRTUAL_HC_TOKEN_OVERUSED),
    (410, "virtualCardVoid", StatusCode.TRANSFER_DONE_OR_VOID),
    (404, "unknownTransfer", StatusCode.TRANSFER_NOT_FOUND),
    (409, "transferUsed", StatusCode.TRANSFER_USED_ELSEWHERE),
    (403, "otherHospital", StatusCode.TRANSFER_OTHER_HOSPITAL),
    (410, "transferVoid", StatusCode.TRANSFER_DONE_OR_VOID),
]


def test_the_table_is_the_docs_table() -> None:
    assert dict(DC_ERRORS) == {(status, error): code for status, error, code in TABLE}


@pytest.mark.parametrize(("status", "error", "code"), TABLE)
def test_each_listed_error_maps_to_its_code_and_names_itself(status: int, error: str, code: StatusCode) -> None:
    with pytest.raises(DcError) as raised:
        interpret_answer("Sam/Login", status, body({"error": error, "message": f"leaks {TOKEN}"}))
    assert raised.value.code == code
    assert raised.value.reason == error
    assert str(raised.value) == f"DC Sam/Login: HTTP {status}"


def test_a_200_is_its_json_object() -> None:
    assert interpret_answer("Time", 200, body({"serverTime": "x", "extra": [1]})) == {"serverTime": "x", "extra": [1]}


@pytest.mark.parametrize(
    "status", [201, 204, 301, 302, 304, 402, 405, 408, 411, 418, 422, 429, 500, 502, 503, 504, 599]
)
def test_5xx_and_unlisted_statuses_are_1702_whatever_the_body(status: int) -> None:
    for content in (b"", b"<html>", body({"error": "sessionExpired"}), body({"nonce": b64(bytes(16))})):
        with pytest.raises(DcError) as raised:
            interpret_answer("Time", status, content)
        assert (raised.value.code, raised.value.reason) == (StatusCode.DC_HTTP_ERROR, "httpStatus")
        assert str(raised.value) == f"DC Time: HTTP {status}"


MALFORMED_BODIES = [
    b"",
    b"not json",
    b"\xff\xfe{}",
    b"[]",
    b'"badRequest"',
    b"null",
    b"{",
    b"[" * 100_000 + b"]" * 100_000,
    body({"error": "x" * MAX_ANSWER_BYTES}),
]


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 409, 410])
@pytest.mark.parametrize("content", MALFORMED_BODIES, ids=range(len(MALFORMED_BODIES)))
def test_a_body_that_is_not_a_json_object_is_1799(status: int, content: bytes) -> None:
    with pytest.raises(DcError) as raised:
        interpret_answer("Time", status, content)
    assert (raised.value.code, raised.value.reason) == (StatusCode.DC_UNDEFINED_ERROR, "badAnswer")


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (400, {}),
        (400, {"message": "no error field"}),
        (400, {"error": 400}),
        (400, {"error": None}),
        (400, {"error": ["badRequest"]}),
        (400, {"error": "BadRequest"}),
        (400, {"error": "sessionExpired"}),  # a listed name under another status is not the table
        (401, {"error": "badRequest"}),
        (403, {"error": "unknownSam"}),
        (403, {"error": "somethingNew"}),
        (404, {"error": "samRevoked"}),
        (404, {"error": ""}),
        (409, {"error": "badRequest"}),
        (409, {"error": "transferVoid"}),
        (410, {"error": "transferUsed"}),
        (410, {}),
        (403, {"error": "transferVoid"}),
        (404, {"error": "otherHospital"}),
    ],
)
def test_a_listed_status_without_its_listed_error_is_1799(status: int, content: dict[str, Any]) -> None:
    with pytest.raises(DcError) as raised:
        interpret_answer("Time", status, body(content))
    assert (raised.value.code, raised.value.reason) == (StatusCode.DC_UNDEFINED_ERROR, "badAnswer")
    assert str(raised.value) == f"DC Time: HTTP {status}, answer not as documented"


# --------------------------------------------------------------------------- #
# the pure mapping: each success answer's fields
# --------------------------------------------------------------------------- #


GOOD_SESSION = {
    "session": TOKEN,
    "expiresAt": "2024-01-01T13:34:56+08:00",
    "hospitalId": "777777777",
    "hospitalName": "測試機構",
    "hospitalShortName": "測試",
}
GOOD_CRYPTOGRAM = {"authId": "auth-1", "cryptogram": b64(bytes(range(32))), "hostChallenge": b64(bytes(range(8)))}


def expect_bad_answer(parse: Callable[[str, dict[str, Any]], object], answer: dict[str, Any]) -> None:
    with pytest.raises(DcError) as raised:
        parse("X", answer)
    assert (raised.value.code, raised.value.reason) == (StatusCode.DC_UNDEFINED_ERROR, "badAnswer")


def test_parse_nonce() -> None:
    assert parse_nonce("X", {"nonce": b64(b"\x01" * 16)}) == b"\x01" * 16


@pytest.mark.parametrize(
    "nonce",
    [
        None,
        16,
        "",
        b64(bytes(15)),
        b64(bytes(17)),
        b64(bytes(16)).rstrip("="),  # missing padding
        b64(bytes(16)) + "=",  # surplus padding
        b64(bytes(16))[:21] + "B==",  # non-zero spare bits: not the canonical encoding
        b64(bytes(16))[:8] + "\n" + b64(bytes(16))[8:],  # whitespace
        base64.urlsafe_b64encode(b"\xff" * 16).decode(),  # the other alphabet
        "ÿ" * 24,
        [b64(bytes(16))],
    ],
)
def test_parse_nonce_refuses_anything_but_strict_base64_of_16_bytes(nonce: object) -> None:
    expect_bad_answer(parse_nonce, {"nonce": nonce})
    expect_bad_answer(parse_nonce, {})


def test_parse_session() -> None:
    session = parse_session("X", GOOD_SESSION)
    assert session == DcSession(
        TOKEN, dt.datetime(2024, 1, 1, 13, 34, 56, tzinfo=TAIPEI), "777777777", "測試機構", "測試"
    )
    assert TOKEN not in repr(session)


@pytest.mark.parametrize("name", sorted(GOOD_SESSION))
def test_parse_session_refuses_a_missing_empty_or_mistyped_field(name: str) -> None:
    for value in (None, "", 1, ["x"]):
        expect_bad_answer(parse_session, {**GOOD_SESSION, name: value})
    expect_bad_answer(parse_session, {k: v for k, v in GOOD_SESSION.items() if k != name})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("expiresAt", "2024-01-01T13:34:56"),  # naive
        ("expiresAt", "2024-01-01"),  # a date is a naive midnight
        ("expiresAt", "tomorrow"),
        ("expiresAt", "2024-13-01T00:00:00+08:00"),
        ("session", "two words"),
        ("session", "line\r\nX-Injected: 1"),
        ("session", "tökén"),
    ],
)
def test_parse_session_refuses_a_naive_or_bad_time_and_a_token_unfit_for_a_header(name: str, value: str) -> None:
    expect_bad_answer(parse_session, {**GOOD_SESSION, name: value})


def test_parse_server_time() -> None:
    assert parse_server_time("X", {"serverTime": "2024-01-01T12:34:56+08:00"}) == dt.datetime(
        2024, 1, 1, 12, 34, 56, tzinfo=TAIPEI
    )
    assert parse_server_time("X", {"serverTime": "2024-01-01T04:34:56Z"}).utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("value", [None, 1704083696, "", "2024-01-01T12:34:56", "2024-01-01", "noon"])
def test_parse_server_time_refuses_anything_but_an_aware_iso_time(value: object) -> None:
    expect_bad_answer(parse_server_time, {"serverTime": value})


def test_parse_card_cryptogram() -> None:
    assert parse_card_cryptogram("X", GOOD_CRYPTOGRAM) == CardCryptogram("auth-1", bytes(range(32)), bytes(range(8)))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("authId", None),
        ("authId", ""),
        ("authId", 7),
        ("cryptogram", b64(bytes(31))),
        ("cryptogram", b64(bytes(33))),
        ("cryptogram", None),
        ("cryptogram", "***"),
        ("hostChallenge", b64(bytes(7))),
        ("hostChallenge", b64(bytes(9))),
        ("hostChallenge", 12345678),
    ],
)
def test_parse_card_cryptogram_refuses_wrong_sizes_and_types(name: str, value: object) -> None:
    expect_bad_answer(parse_card_cryptogram, {**GOOD_CRYPTOGRAM, name: value})
    expect_bad_answer(parse_card_cryptogram, {k: v for k, v in GOOD_CRYPTOGRAM.items() if k != name})


def test_parse_verified() -> None:
    parse_verified("X", {"authenticated": True})  # returns (None) rather than raising
    with pytest.raises(DcError) as raised:
        parse_verified("X", {"authenticated": False})
    assert (raised.value.code, raised.value.reason) == (StatusCode.DC_UNDEFINED_ERROR, "authenticationFailed")


@pytest.mark.parametrize("answer", [{}, {"authenticated": "true"}, {"authenticated": 1}, {"authenticated": None}])
def test_parse_verified_takes_only_a_literal_true(answer: dict[str, Any]) -> None:
    expect_bad_answer(parse_verified, answer)


def make_crl(revoked_serials: tuple[int, ...] = (), name: str = "test HCA issuing CA") -> bytes:
    """A throwaway CRL, DER (EC P-256: fast to sign); its content is the DC's business, not the client's."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def crls() -> tuple[bytes, bytes]:
    return make_crl((7, 11)), make_crl(name="another issuing CA")


def test_parse_crls_gives_each_crls_der_bytes_in_order(crls: tuple[bytes, bytes]) -> None:
    assert parse_crls("X", {"crls": [b64(crls[0]), b64(crls[1])]}) == list(crls)
    assert parse_crls("X", {"crls": [b64(crls[1])], "extra": 1}) == [crls[1]]
    assert parse_crls("X", {"crls": []}) == []  # a DC that knows no HCA CRL
    assert parse_crls("X", {"crls": [b64(crls[0])] * 16}) == [crls[0]] * 16


@pytest.mark.parametrize(
    "value",
    [
        None,
        "not a list",
        {"0": "x"},
        [None],
        [7],
        [""],  # no bytes at all
        [[]],
        ["AAAA"],  # three zero bytes: not a CRL
        [b64(b"not a CRL at all")],
        ["MIIB"],  # the start of a DER SEQUENCE, cut short
    ],
)
def test_parse_crls_refuses_a_malformed_list_or_bytes_that_are_not_a_crl(value: object) -> None:
    expect_bad_answer(parse_crls, {"crls": value})


def test_parse_crls_refuses_a_crl_of_an_unknown_version(crls: tuple[bytes, bytes]) -> None:
    """`load_der_x509_crl` raises InvalidVersion, not a ValueError, for these: still 1799, not a crash."""
    version = crls[0].index(b"\x02\x01\x01")  # TBSCertList's version, v2
    unknown = crls[0][:version] + b"\x02\x01\x05" + crls[0][version + 3 :]
    with pytest.raises(x509.InvalidVersion):
        x509.load_der_x509_crl(unknown)
    expect_bad_answer(parse_crls, {"crls": [b64(unknown)]})


def test_parse_crls_refuses_anything_but_strict_base64(crls: tuple[bytes, bytes]) -> None:
    good = b64(crls[0])
    for bad in (
        good.rstrip("=") if good.endswith("=") else good + "=",  # wrong padding
        good[:8] + "\n" + good[8:],  # whitespace
        base64.urlsafe_b64encode(crls[0]).decode() + "_-",  # the other alphabet
        "ÿ" * 24,
    ):
        expect_bad_answer(parse_crls, {"crls": [bad]})
    expect_bad_answer(parse_crls, {"crls": [good, bad]})  # one bad CRL spoils the answer
    expect_bad_answer(parse_crls, {})


def test_parse_crls_refuses_more_than_16_and_a_crl_over_1_mib(crls: tuple[bytes, bytes]) -> None:
    expect_bad_answer(parse_crls, {"crls": [b64(crls[0])] * 17})
    # Valid DER framing of a CRL-shaped SEQUENCE just over 1 MiB: refused for its size, before parsing.
    oversized = b"\x30\x83" + (1024 * 1024).to_bytes(3, "big") + bytes(1024 * 1024)
    expect_bad_answer(parse_crls, {"crls": [b64(oversized)]})


def test_a_crl_answer_may_be_larger_than_64_kib_but_not_than_2_mib() -> None:
    big = body({"crls": [], "pad": "x" * MAX_ANSWER_BYTES})
    assert interpret_answer("Crl", 200, big, MAX_CRL_ANSWER_BYTES)["crls"] == []
    expect(StatusCode.DC_UNDEFINED_ERROR, lambda: interpret_answer("Crl", 200, big), "badAnswer")
    huge = body({"crls": [], "pad": "x" * MAX_CRL_ANSWER_BYTES})
    expect(StatusCode.DC_UNDEFINED_ERROR, lambda: interpret_answer("Crl", 200, huge, MAX_CRL_ANSWER_BYTES), "badAnswer")


CARD = {
    "cardId": "900000000711",
    "name": "王小明",
    "idNo": "A123456789",
    "birthday": "0800101",
    "sex": "M",
    "identityStatus": "1",
}
TRANSFER_TOKEN = "dHJhbnNmZXItaWQtMTIzNA.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"
GOOD_IMPORT = {"tokenId": "new_Token-id01", "card": CARD, "expiresAt": 1_900_000_000, "maxUses": 3}


def test_parse_verification_count() -> None:
    assert parse_verification_count("X", {"uses": 1}, 3) == 1
    assert parse_verification_count("X", {"uses": 3}, 3) == 3
    assert parse_verification_count("X", {"uses": 1000}, 1000) == 1000


@pytest.mark.parametrize("uses", [None, 0, -1, 4, True, 1.0, "1", [1]])
def test_parse_verification_count_refuses_anything_but_1_to_max_uses(uses: object) -> None:
    with pytest.raises(DcError) as raised:
        parse_verification_count("X", {"uses": uses}, 3)
    assert (raised.value.code, raised.value.reason) == (StatusCode.DC_UNDEFINED_ERROR, "badAnswer")
    with pytest.raises(DcError):
        parse_verification_count("X", {}, 3)


def test_parse_transfer_token() -> None:
    assert parse_transfer_token("X", {"transferToken": TRANSFER_TOKEN}) == TRANSFER_TOKEN
    assert parse_transfer_token("X", {"transferToken": "a.b"}) == "a.b"


@pytest.mark.parametrize(
    "token",
    [None, "", 7, "onlyonepart", "a.b.c", ".b", "a.", "a b.c", "a=.b", "a+/.b", "a.b\n", "ä.b", "a." + "b" * 600],
)
def test_parse_transfer_token_refuses_anything_but_two_base64url_parts(token: object) -> None:
    expect_bad_answer(parse_transfer_token, {"transferToken": token})


def test_parse_imported_virtual_hc() -> None:
    imported = parse_imported_virtual_hc("X", {**GOOD_IMPORT, "extra": True, "card": {**CARD, "photo": "x"}})
    assert imported == ImportedVirtualHc("new_Token-id01", CARD, 1_900_000_000, 3)
    assert imported.card == CARD  # only the six fields: the extra key is dropped
    for personal in ("王小明", "A123456789", "0800101"):
        assert personal not in repr(imported)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tokenId", None),
        ("tokenId", ""),
        ("tokenId", "x" * 65),
        ("tokenId", "has space"),
        ("tokenId", "a.b"),
        ("expiresAt", None),
        ("expiresAt", "1900000000"),
        ("expiresAt", 1.9e9),
        ("expiresAt", -1),
        ("expiresAt", True),
        ("expiresAt", 2**63),
        ("maxUses", 0),
        ("maxUses", 1001),
        ("maxUses", False),
        ("maxUses", "3"),
        ("card", None),
        ("card", [CARD]),
        ("card", "card"),
    ],
)
def test_parse_imported_virtual_hc_refuses_a_malformed_field(name: str, value: object) -> None:
    expect_bad_answer(parse_imported_virtual_hc, {**GOOD_IMPORT, name: value})
    expect_bad_answer(parse_imported_virtual_hc, {k: v for k, v in GOOD_IMPORT.items() if k != name})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cardId", "90000000071"),
        ("cardId", "９００００００００７１１"),  # full-width digits are not [0-9]
        ("cardId", 900000000711),
        ("name", ""),
        ("name", "x" * 21),
        ("name", "\ud800"),
        ("idNo", "A12345678"),
        ("idNo", "A12345678!"),
        ("birthday", "19900101"),
        ("birthday", "080010a"),
        ("sex", "X"),
        ("sex", "m"),
        ("identityStatus", "5"),
        ("identityStatus", 1),
        ("identityStatus", "12"),
    ],
)
def test_a_virtual_card_field_out_of_format_is_refused(name: str, value: object) -> None:
    assert virtual_hc_card({**CARD, name: value}) is None
    assert virtual_hc_card({k: v for k, v in CARD.items() if k != name}) is None
    expect_bad_answer(parse_imported_virtual_hc, {**GOOD_IMPORT, "card": {**CARD, name: value}})


def test_a_virtual_card_keeps_the_six_fields_only() -> None:
    assert virtual_hc_card({**CARD, "extra": "x"}) == CARD
    assert virtual_hc_card({**CARD, "name": "x" * 20}) is not None
    assert virtual_hc_card(None) is None


def test_parse_card_notes() -> None:
    assert parse_card_notes("X", {"notes": b64(b"NHI notes")}) == b"NHI notes"
    assert parse_card_notes("X", {"notes": b64(bytes(200))}) == bytes(200)


@pytest.mark.parametrize("notes", [None, "", b64(bytes(201)), "not base64!", b64(b"ab").rstrip("="), 7, [b64(b"x")]])
def test_parse_card_notes_refuses_anything_but_strict_base64_of_1_to_200_bytes(notes: object) -> None:
    expect_bad_answer(parse_card_notes, {"notes": notes})


# --------------------------------------------------------------------------- #
# a real local HTTPS DC with a scriptable handler
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class TlsIdentity:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_identity(directory: Path, name: str) -> TlsIdentity:
    """A throwaway self-signed certificate for 127.0.0.1 (EC P-256: fast to make)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test DC {name}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    identity = TlsIdentity(directory / f"{name}.pem", directory / f"{name}.key")
    identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    identity.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return identity


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsIdentity, TlsIdentity]:
    """The trusted DC's identity, and another one nobody trusts."""
    directory = tmp_path_factory.mktemp("dc-tls")
    return make_identity(directory, "trusted"), make_identity(directory, "stranger")


CLOSE = object()
"""Close the connection without answering."""
HANG = object()
"""Never answer (until the test is over)."""


@dataclass(frozen=True)
class Raw:
    """Send these bytes as they are, instead of an HTTP answer."""

    data: bytes


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    """What the test DC answers, queued per path, and every request it saw (recorded before it answers)."""

    queues: dict[str, deque[object]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def on(self, endpoint: str, *answers: object) -> None:
        """Queue answers for `/dc/v1/<endpoint>`: (status, JSON value or bytes), CLOSE, HANG or Raw."""
        with self.lock:
            self.queues.setdefault(f"/dc/v1/{endpoint}", deque()).extend(answers)

    def take(self, request: Seen) -> object:
        with self.lock:
            self.seen.append(request)
            queue = self.queues.get(request.path)
            return queue.popleft() if queue else (404, {"error": "unknownCommand", "message": "not scripted"})

    def requests(self, endpoint: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == f"/dc/v1/{endpoint}"]


class ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        content = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.script.take(Seen(self.command, self.path, headers, content))
        self.close_connection = True
        if answer is CLOSE:
            return
        if answer is HANG:
            self.server.script.release.wait(10)
            return
        if isinstance(answer, Raw):
            self.wfile.write(answer.data)
            return
        assert isinstance(answer, tuple), answer
        status, value = answer
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script, identity: TlsIdentity) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.script = script
        self.socket = identity.server_context().wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up (timeout tests) is expected here


@dataclass(frozen=True)
class Dc:
    script: Script
    url: str
    ca_file: Path

    def client(self, **timeouts: float) -> HttpsDataCenter:
        return HttpsDataCenter(self.url, self.ca_file, **timeouts)


@pytest.fixture()
def start_dc(identities: tuple[TlsIdentity, TlsIdentity]) -> Iterator[Callable[[TlsIdentity], Dc]]:
    """Start a scripted DC serving `identity`; the client side always trusts only the trusted identity."""
    started: list[tuple[ScriptedServer, threading.Thread]] = []

    def start(identity: TlsIdentity) -> Dc:
        script = Script()
        server = ScriptedServer(script, identity)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        started.append((server, thread))
        return Dc(script, f"https://127.0.0.1:{server.server_address[1]}", identities[0].cert)

    yield start
    for server, thread in started:
        server.script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def dc(start_dc: Callable[[TlsIdentity], Dc], identities: tuple[TlsIdentity, TlsIdentity]) -> Dc:
    return start_dc(identities[0])


def expect(code: StatusCode, call: Callable[[], object], reason: str | None = None) -> DcError:
    with pytest.raises(DcError) as raised:
        call()
    assert raised.value.code == code
    if reason is not None:
        assert raised.value.reason == reason
    return raised.value


# --------------------------------------------------------------------------- #
# the client against it
# --------------------------------------------------------------------------- #


SEAM_METHODS = [
    "sam_challenge",
    "sam_login",
    "server_time",
    "card_challenge",
    "card_verify",
    "hca_crls",
    "virtual_hc_verify",
    "virtual_hc_export",
    "virtual_hc_import",
    "card_notes",
]


@pytest.mark.parametrize("method", SEAM_METHODS)
def test_it_has_the_seams_signatures(method: str) -> None:
    assert inspect.signature(getattr(HttpsDataCenter, method)) == inspect.signature(getattr(DataCenter, method))
    assert inspect.signature(getattr(NoDataCenter, method)) == inspect.signature(getattr(DataCenter, method))


def test_the_seam_has_no_method_the_tests_do_not_know() -> None:
    assert sorted(name for name in vars(DataCenter) if not name.startswith("_")) == sorted(SEAM_METHODS)


def test_no_data_center_fails_the_new_calls_with_1700() -> None:
    calls: list[Callable[[], object]] = [
        lambda: NoDataCenter().virtual_hc_verify(TOKEN, "tok", 3, 1_900_000_000),
        lambda: NoDataCenter().virtual_hc_export(TOKEN, "tok", CARD, 1_900_000_000, 3),
        lambda: NoDataCenter().virtual_hc_import(TOKEN, TRANSFER_TOKEN),
        lambda: NoDataCenter().card_notes(TOKEN, CARD_NUMBER),
    ]
    for call in calls:
        expect(StatusCode.DC_CONNECTION_FAILED, call, "notConfigured")


def test_happy_path_of_every_method(dc: Dc) -> None:
    nonce, signature, challenge, response = b"\x11" * 16, b"\x22" * 256, b"\x33" * 8, b"\x44" * 32
    dc.script.on("Sam/Challenge", (200, {"nonce": b64(nonce)}))
    dc.script.on("Sam/Login", (200, GOOD_SESSION))
    dc.script.on("Time", (200, {"serverTime": "2024-01-01T12:34:56+08:00"}))
    dc.script.on("Cards/Challenge", (200, GOOD_CRYPTOGRAM))
    dc.script.on("Cards/Verify", (200, {"authenticated": True}))
    client = dc.client()

    assert client.sam_challenge(SAM_ID) == nonce
    session = client.sam_login(SAM_ID, nonce, signature)
    assert session.token == TOKEN and session.hospital_name == "測試機構"
    assert session.expires_at == dt.datetime(2024, 1, 1, 13, 34, 56, tzinfo=TAIPEI)
    assert client.server_time(session.token) == dt.datetime(2024, 1, 1, 12, 34, 56, tzinfo=TAIPEI)
    assert client.card_challenge(session.token, CARD_NUMBER, challenge) == CardCryptogram(
        "auth-1", bytes(range(32)), bytes(range(8))
    )
    client.card_verify(session.token, "auth-1", response)  # returns (None) rather than raising

    (sam_challenge,) = dc.script.requests("Sam/Challenge")
    (sam_login,) = dc.script.requests("Sam/Login")
    (server_time,) = dc.script.requests("Time")
    (card_challenge,) = dc.script.requests("Cards/Challenge")
    (card_verify,) = dc.script.requests("Cards/Verify")
    assert [r.method for r in dc.script.seen] == ["POST", "POST", "GET", "POST", "POST"]
    assert sam_challenge.json() == {"samId": SAM_ID}
    assert sam_login.json() == {"samId": SAM_ID, "nonce": b64(nonce), "signature": b64(signature)}
    assert server_time.body == b""
    assert card_challenge.json() == {"cardNumber": CARD_NUMBER, "cardChallenge": b64(challenge)}
    assert card_verify.json() == {"authId": "auth-1", "cardResponse": b64(response)}
    for request in (sam_challenge, sam_login, card_challenge, card_verify):
        assert request.headers["content-type"] == "application/json"
    assert "content-type" not in server_time.headers


def test_the_session_goes_in_a_bearer_authorization_header_and_only_where_needed(dc: Dc) -> None:
    dc.script.on("Sam/Challenge", (200, {"nonce": b64(bytes(16))}))
    dc.script.on("Sam/Login", (200, GOOD_SESSION))
    dc.script.on("Time", (200, {"serverTime": "2024-01-01T12:34:56+08:00"}))
    dc.script.on("Cards/Challenge", (200, GOOD_CRYPTOGRAM))
    dc.script.on("Cards/Verify", (200, {"authenticated": True}))
    client = dc.client()
    client.sam_challenge(SAM_ID)
    client.sam_login(SAM_ID, bytes(16), bytes(256))
    client.server_time(TOKEN)
    client.card_challenge(TOKEN, CARD_NUMBER, bytes(8))
    client.card_verify(TOKEN, "auth-1", bytes(32))
    authorization = {s.path.removeprefix("/dc/v1/"): s.headers.get("authorization") for s in dc.script.seen}
    assert authorization == {
        "Sam/Challenge": None,
        "Sam/Login": None,
        "Time": f"Bearer {TOKEN}",
        "Cards/Challenge": f"Bearer {TOKEN}",
        "Cards/Verify": f"Bearer {TOKEN}",
    }


def test_hca_crls_gets_the_crls_without_a_session(dc: Dc, crls: tuple[bytes, bytes]) -> None:
    dc.script.on("Crl", (200, {"crls": [b64(crls[0]), b64(crls[1])]}))
    assert dc.client().hca_crls() == list(crls)
    (request,) = dc.script.requests("Crl")
    assert request.method == "GET" and request.body == b""
    assert "authorization" not in request.headers and "content-type" not in request.headers


def test_hca_crls_takes_an_answer_over_64_kib_up_to_2_mib(dc: Dc, crls: tuple[bytes, bytes]) -> None:
    many = make_crl(tuple(range(1, 4001)))  # 4000 revocations: a CRL of about 84 KiB
    assert len(many) > MAX_ANSWER_BYTES
    dc.script.on("Crl", (200, {"crls": [b64(many), b64(crls[0])]}))
    dc.script.on("Crl", (200, {"crls": [], "pad": "x" * MAX_CRL_ANSWER_BYTES}))
    client = dc.client()
    assert client.hca_crls() == [many, crls[0]]
    expect(StatusCode.DC_UNDEFINED_ERROR, client.hca_crls, "badAnswer")


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"crls": "not a list"}),
        (200, {"crls": [{"der": "AAAA"}]}),
        (200, {"crls": [b64(b"not a CRL")]}),
        (200, {"crl": []}),
        (200, b"[]"),
    ],
)
def test_hca_crls_refuses_a_malformed_answer_with_1799_and_no_retry(dc: Dc, answer: object) -> None:
    dc.script.on("Crl", answer, (200, {"crls": []}))
    expect(StatusCode.DC_UNDEFINED_ERROR, dc.client().hca_crls, "badAnswer")
    assert len(dc.script.requests("Crl")) == 1


def test_hca_crls_refuses_a_certificate_in_place_of_a_crl(dc: Dc, identities: tuple[TlsIdentity, TlsIdentity]) -> None:
    certificate = x509.load_pem_x509_certificate(identities[0].cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    dc.script.on("Crl", (200, {"crls": [b64(certificate)]}))
    expect(StatusCode.DC_UNDEFINED_ERROR, dc.client().hca_crls, "badAnswer")


@pytest.mark.parametrize(
    ("first", "code"), [((503, b""), StatusCode.DC_HTTP_ERROR), (CLOSE, StatusCode.DC_CONNECTION_FAILED)]
)
def test_hca_crls_is_retried_once_after_1700_or_1702(
    dc: Dc, crls: tuple[bytes, bytes], first: object, code: StatusCode
) -> None:
    dc.script.on("Crl", first, (200, {"crls": [b64(crls[0])]}))
    dc.script.on("Crl", first, first, (200, {"crls": [b64(crls[0])]}))
    client = dc.client()
    assert client.hca_crls() == [crls[0]]
    assert len(dc.script.requests("Crl")) == 2
    expect(code, client.hca_crls)
    assert len(dc.script.requests("Crl")) == 4  # the second call: one try, one retry, then the error


def test_hca_crls_is_not_retried_after_a_listed_error(dc: Dc) -> None:
    dc.script.on("Crl", (404, {"error": "unknownCommand", "message": "no such DC command"}), (200, {"crls": []}))
    expect(StatusCode.DC_COMMAND_UNKNOWN, dc.client().hca_crls, "unknownCommand")
    assert len(dc.script.requests("Crl")) == 1


def test_a_base_url_path_is_kept_in_front_of_dc_v1(dc: Dc) -> None:
    dc.script.queues["/prefix/dc/v1/Time"] = deque([(200, {"serverTime": "2024-01-01T12:34:56+08:00"})])
    HttpsDataCenter(dc.url + "/prefix/", dc.ca_file).server_time(TOKEN)
    assert [s.path for s in dc.script.seen] == ["/prefix/dc/v1/Time"]


def test_server_time_after_a_503_is_retried_once_and_succeeds(dc: Dc) -> None:
    dc.script.on("Time", (503, b"busy"), (200, {"serverTime": "2024-01-01T12:34:56+08:00"}))
    assert dc.client().server_time(TOKEN).year == 2024
    assert len(dc.script.requests("Time")) == 2


def test_sam_challenge_after_a_closed_connection_is_retried_once_and_succeeds(dc: Dc) -> None:
    dc.script.on("Sam/Challenge", CLOSE, (200, {"nonce": b64(bytes(16))}))
    assert dc.client().sam_challenge(SAM_ID) == bytes(16)
    assert len(dc.script.requests("Sam/Challenge")) == 2


@pytest.mark.parametrize(
    ("first", "code"), [((503, b""), StatusCode.DC_HTTP_ERROR), (CLOSE, StatusCode.DC_CONNECTION_FAILED)]
)
def test_a_retried_call_is_retried_only_once(dc: Dc, first: object, code: StatusCode) -> None:
    dc.script.on("Time", first, first, (200, {"serverTime": "2024-01-01T12:34:56+08:00"}))
    dc.script.on("Sam/Challenge", first, first, (200, {"nonce": b64(bytes(16))}))
    client = dc.client()
    expect(code, lambda: client.server_time(TOKEN))
    expect(code, lambda: client.sam_challenge(SAM_ID))
    assert len(dc.script.requests("Time")) == len(dc.script.requests("Sam/Challenge")) == 2


@pytest.mark.parametrize(
    "answer", [(401, {"error": "sessionExpired"}), (400, {"error": "badRequest"}), (200, {"serverTime": "noon"})]
)
def test_a_retried_call_is_not_retried_after_other_failures(dc: Dc, answer: object) -> None:
    dc.script.on("Time", answer, (200, {"serverTime": "2024-01-01T12:34:56+08:00"}))
    with pytest.raises(DcError):
        dc.client().server_time(TOKEN)
    assert len(dc.script.requests("Time")) == 1


def test_sam_login_after_a_503_is_not_retried(dc: Dc) -> None:
    dc.script.on("Sam/Login", (503, b""), (200, GOOD_SESSION))
    expect(StatusCode.DC_HTTP_ERROR, lambda: dc.client().sam_login(SAM_ID, bytes(16), bytes(256)), "httpStatus")
    assert len(dc.script.requests("Sam/Login")) == 1


@pytest.mark.parametrize("step", ["Sam/Login", "Cards/Challenge", "Cards/Verify"])
def test_a_connection_closed_without_an_answer_is_1700_and_not_retried(dc: Dc, step: str) -> None:
    dc.script.on(step, CLOSE, (200, {}))
    client = dc.client()
    calls: dict[str, Callable[[], object]] = {
        "Sam/Login": lambda: client.sam_login(SAM_ID, bytes(16), bytes(256)),
        "Cards/Challenge": lambda: client.card_challenge(TOKEN, CARD_NUMBER, bytes(8)),
        "Cards/Verify": lambda: client.card_verify(TOKEN, "auth-1", bytes(32)),
    }
    expect(StatusCode.DC_CONNECTION_FAILED, calls[step], "connectionFailed")
    assert len(dc.script.requests(step)) == 1


def test_connection_refused_is_1700() -> None:
    with socket.socket() as bound:  # bound, never listening: connecting to it is refused, and nobody else gets it
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        client = HttpsDataCenter(f"https://127.0.0.1:{port}", None)
        expect(StatusCode.DC_CONNECTION_FAILED, lambda: client.server_time(TOKEN), "connectionFailed")
        expect(StatusCode.DC_CONNECTION_FAILED, lambda: client.card_challenge(TOKEN, CARD_NUMBER, bytes(8)))


def test_a_dc_that_never_answers_is_1700_after_the_read_timeout(dc: Dc) -> None:
    dc.script.on("Cards/Verify", HANG)
    client = dc.client(read_timeout=0.3)
    started = time.monotonic()
    expect(StatusCode.DC_CONNECTION_FAILED, lambda: client.card_verify(TOKEN, "auth-1", bytes(32)), "timeout")
    assert 0.25 < time.monotonic() - started < 3
    assert len(dc.script.requests("Cards/Verify")) == 1


def test_a_dc_that_accepts_but_never_shakes_hands_is_1700_after_the_connect_timeout() -> None:
    with socket.socket() as listening:  # the kernel completes TCP from the backlog; TLS never starts
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        client = HttpsDataCenter(f"https://127.0.0.1:{listening.getsockname()[1]}", None, connect_timeout=0.3)
        started = time.monotonic()
        expect(StatusCode.DC_CONNECTION_FAILED, lambda: client.card_verify(TOKEN, "auth-1", bytes(32)), "timeout")
        assert 0.25 < time.monotonic() - started < 3


def test_a_certificate_not_signed_by_the_ca_file_is_1700(
    start_dc: Callable[[TlsIdentity], Dc], identities: tuple[TlsIdentity, TlsIdentity]
) -> None:
    stranger = start_dc(identities[1])
    stranger.script.on("Time", (200, {"serverTime": "2024-01-01T12:34:56+08:00"}))
    expect(StatusCode.DC_CONNECTION_FAILED, lambda: stranger.client().server_time(TOKEN), "certificateRejected")
    assert stranger.script.seen == []


def test_the_hostname_is_checked(dc: Dc) -> None:
    """The certificate names 127.0.0.1 only: reaching the same server as `localhost` must fail."""
    dc.script.on("Time", (200, {"serverTime": "2024-01-01T12:34:56+08:00"}))
    client = HttpsDataCenter(dc.url.replace("127.0.0.1", "localhost"), dc.ca_file)
    expect(StatusCode.DC_CONNECTION_FAILED, lambda: client.server_time(TOKEN))
    assert dc.script.seen == []


def test_a_401_session_expired_is_1703(dc: Dc) -> None:
    dc.script.on("Cards/Challenge", (401, {"error": "sessionExpired", "message": "no such session"}))
    expect(
        StatusCode.DC_SESSION_EXPIRED,
        lambda: dc.client().card_challenge(TOKEN, CARD_NUMBER, bytes(8)),
        "sessionExpired",
    )


@pytest.mark.parametrize(("status", "error", "code"), [row for row in TABLE if row[0] == 403])
def test_a_login_refused_maps_through_the_table(dc: Dc, status: int, error: str, code: StatusCode) -> None:
    dc.script.on("Sam/Login", (status, {"error": error, "message": "refused"}))
    expect(code, lambda: dc.client().sam_login(SAM_ID, bytes(16), bytes(256)), error)


def test_the_virtual_card_and_notes_calls_over_https(dc: Dc) -> None:
    dc.script.on("VirtualHc/Verify", (200, {"uses": 2}))
    dc.script.on("VirtualHc/Export", (200, {"transferToken": TRANSFER_TOKEN}))
    dc.script.on("VirtualHc/Import", (200, GOOD_IMPORT))
    dc.script.on("RealHc/Notes", (200, {"notes": b64(b"NHI-SIM-NOTES v1")}))
    client = dc.client()

    assert client.virtual_hc_verify(TOKEN, "tok_1", 3, 1_900_000_000) == 2
    assert client.virtual_hc_export(TOKEN, "tok_1", CARD, 1_900_000_000, 3) == TRANSFER_TOKEN
    assert client.virtual_hc_import(TOKEN, TRANSFER_TOKEN) == ImportedVirtualHc(
        "new_Token-id01", CARD, 1_900_000_000, 3
    )
    assert client.card_notes(TOKEN, CARD_NUMBER) == b"NHI-SIM-NOTES v1"

    (verify,) = dc.script.requests("VirtualHc/Verify")
    (export,) = dc.script.requests("VirtualHc/Export")
    (import_,) = dc.script.requests("VirtualHc/Import")
    (notes,) = dc.script.requests("RealHc/Notes")
    assert verify.json() == {"tokenId": "tok_1", "maxUses": 3, "expiresAt": 1_900_000_000}
    assert export.json() == {"tokenId": "tok_1", "card": CARD, "expiresAt": 1_900_000_000, "maxUses": 3}
    assert import_.json() == {"transferToken": TRANSFER_TOKEN}
    assert notes.json() == {"cardNumber": CARD_NUMBER}
    for request in (verify, export, import_, notes):
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("endpoint", "answer", "code"),
    [
        ("VirtualHc/Verify", (403, {"error": "verificationCountExceeded"}), StatusCode.VIRTUAL_HC_TOKEN_OVERUSED),
        ("VirtualHc/Verify", (410, {"error": "virtualCardVoid"}), StatusCode.TRANSFER_DONE_OR_VOID),
        ("VirtualHc/Verify", (200, {"uses": 4}), StatusCode.DC_UNDEFINED_ERROR),  # more than maxUses: not an answer
        ("VirtualHc/Export", (410, {"error": "virtualCardVoid"}), StatusCode.TRANSFER_DONE_OR_VOID),
        ("VirtualHc/Import", (404, {"error": "unknownTransfer"}), StatusCode.TRANSFER_NOT_FOUND),
        ("VirtualHc/Import", (409, {"error": "transferUsed"}), StatusCode.TRANSFER_USED_ELSEWHERE),
        ("VirtualHc/Import", (403, {"error": "otherHospital"}), StatusCode.TRANSFER_OTHER_HOSPITAL),
        ("VirtualHc/Import", (410, {"error": "transferVoid"}), StatusCode.TRANSFER_DONE_OR_VOID),
        ("RealHc/Notes", (200, {"notes": ""}), StatusCode.DC_UNDEFINED_ERROR),
        ("RealHc/Notes", (401, {"error": "sessionExpired"}), StatusCode.DC_SESSION_EXPIRED),
    ],
)
def test_the_virtual_card_calls_map_their_refusals(
    dc: Dc, endpoint: str, answer: tuple[int, dict[str, str]], code: StatusCode
) -> None:
    dc.script.on(endpoint, answer)
    expect(code, lambda: new_call(dc.client(), endpoint)(), answer[1].get("error", "badAnswer"))


def new_call(client: HttpsDataCenter, endpoint: str) -> Callable[[], object]:
    return {
        "VirtualHc/Verify": lambda: client.virtual_hc_verify(TOKEN, "tok_1", 3, 1_900_000_000),
        "VirtualHc/Export": lambda: client.virtual_hc_export(TOKEN, "tok_1", CARD, 1_900_000_000, 3),
        "VirtualHc/Import": lambda: client.virtual_hc_import(TOKEN, TRANSFER_TOKEN),
        "RealHc/Notes": lambda: client.card_notes(TOKEN, CARD_NUMBER),
    }[endpoint]


@pytest.mark.parametrize("endpoint", ["VirtualHc/Verify", "VirtualHc/Export", "VirtualHc/Import", "RealHc/Notes"])
@pytest.mark.parametrize(
    ("first", "code"), [((503, b""), StatusCode.DC_HTTP_ERROR), (CLOSE, StatusCode.DC_CONNECTION_FAILED)]
)
def test_the_virtual_card_and_notes_calls_are_never_retried(
    dc: Dc, endpoint: str, first: object, code: StatusCode
) -> None:
    dc.script.on(endpoint, first, (200, {}))
    expect(code, new_call(dc.client(), endpoint))
    assert len(dc.script.requests(endpoint)) == 1


SECRET_ANSWERS = [
    (400, {"error": "badRequest", "message": f"{TRANSFER_TOKEN} {CARD['name']} {CARD['idNo']}"}),
    (404, {"error": "unknownTransfer", "message": TRANSFER_TOKEN}),
    (404, {"error": TRANSFER_TOKEN}),
    (200, {**GOOD_IMPORT, "maxUses": TRANSFER_TOKEN}),
    (200, {"transferToken": f"{TRANSFER_TOKEN} {CARD['idNo']}"}),
    (200, f"{TRANSFER_TOKEN} {CARD['name']}".encode()),
    Raw(f"HTTP/1.1 {TRANSFER_TOKEN} {CARD['idNo']}\r\n\r\n".encode()),
    CLOSE,
]


@pytest.mark.parametrize("endpoint", ["VirtualHc/Export", "VirtualHc/Import"])
@pytest.mark.parametrize("answer", SECRET_ANSWERS, ids=range(len(SECRET_ANSWERS)))
def test_no_error_or_log_line_carries_a_transfer_token_or_card_data(
    dc: Dc, endpoint: str, answer: object, caplog: pytest.LogCaptureFixture
) -> None:
    dc.script.on(endpoint, answer)
    caplog.set_level(logging.DEBUG, logger="broker")
    with pytest.raises(DcError) as raised:
        new_call(dc.client(), endpoint)()
    error = raised.value
    traceback_text = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), error.reason, *map(str, error.args), traceback_text, caplog.text):
        for secret in (TOKEN, TRANSFER_TOKEN, *TRANSFER_TOKEN.split("."), CARD["name"], CARD["idNo"], CARD["cardId"]):
            assert secret not in text
    assert [record.getMessage() for record in caplog.records] == [
        f"DC {endpoint} -> {error_status(answer)}/{error.code}"
    ]


def test_a_malformed_success_answer_over_the_wire_is_1799(dc: Dc) -> None:
    dc.script.on("Cards/Challenge", (200, {**GOOD_CRYPTOGRAM, "cryptogram": b64(bytes(31))}))
    expect(StatusCode.DC_UNDEFINED_ERROR, lambda: dc.client().card_challenge(TOKEN, CARD_NUMBER, bytes(8)), "badAnswer")


def test_an_oversized_answer_is_1799(dc: Dc) -> None:
    dc.script.on("Time", (200, {"serverTime": "2024-01-01T12:34:56+08:00", "pad": "x" * MAX_ANSWER_BYTES}))
    expect(StatusCode.DC_UNDEFINED_ERROR, lambda: dc.client().server_time(TOKEN), "badAnswer")


def test_a_session_unfit_for_a_header_is_refused_before_sending(dc: Dc) -> None:
    error = expect(StatusCode.DC_SESSION_EXPIRED, lambda: dc.client().server_time(f"{TOKEN}\r\nX: y"), "badSession")
    assert TOKEN not in str(error)
    assert dc.script.seen == []


def test_concurrent_calls_each_get_their_answer(dc: Dc) -> None:
    times = [f"2024-01-01T12:00:{second:02d}+08:00" for second in range(8)]
    dc.script.on("Time", *[(200, {"serverTime": t}) for t in times])
    client = dc.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: client.server_time(TOKEN), range(8)))
    assert sorted(a.second for a in answers) == list(range(8))


ECHOING_FAILURES = [
    (400, {"error": "badRequest", "message": f"{TOKEN} {CARD_NUMBER}"}),
    (401, {"error": "sessionExpired", "message": TOKEN}),
    (403, {"error": f"{TOKEN}{CARD_NUMBER}", "message": TOKEN}),
    (503, f"{TOKEN} {CARD_NUMBER}".encode()),
    (200, {"authId": TOKEN, "cryptogram": CARD_NUMBER, "hostChallenge": TOKEN}),
    (200, f"{TOKEN} {CARD_NUMBER}".encode()),
    Raw(f"HTTP/1.1 {TOKEN} {CARD_NUMBER}\r\n\r\n".encode()),  # http.client quotes a bad status line
    Raw(f"{TOKEN} {CARD_NUMBER}\r\n\r\n".encode()),
    CLOSE,
]


@pytest.mark.parametrize("answer", ECHOING_FAILURES, ids=range(len(ECHOING_FAILURES)))
def test_no_error_or_log_line_carries_the_token_or_the_card_number(
    dc: Dc, answer: object, caplog: pytest.LogCaptureFixture
) -> None:
    dc.script.on("Cards/Challenge", answer)
    caplog.set_level(logging.DEBUG, logger="broker")
    with pytest.raises(DcError) as raised:
        dc.client().card_challenge(TOKEN, CARD_NUMBER, bytes(8))
    error = raised.value
    traceback_text = "".join(traceback.format_exception(error))  # what a log.exception() would print, chain included
    for text in (str(error), repr(error), error.reason, *map(str, error.args), traceback_text, caplog.text):
        assert TOKEN not in text
        assert CARD_NUMBER not in text
    assert [record.getMessage() for record in caplog.records] == [
        f"DC Cards/Challenge -> {error_status(answer)}/{error.code}"
    ]


def error_status(answer: object) -> str:
    return str(answer[0]) if isinstance(answer, tuple) else "-"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8443",
        "127.0.0.1:8443",
        "https://",
        "ftp://127.0.0.1",
        "https://user:pw@127.0.0.1:8443",
        "https://127.0.0.1:8443/?q=1",
        "https://127.0.0.1:8443/#f",
    ],
)
def test_only_a_plain_https_url_is_accepted(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        HttpsDataCenter(url, None)
    assert "pw" not in str(raised.value)


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HttpsDataCenter("https://127.0.0.1:8443", None, read_timeout=0)
