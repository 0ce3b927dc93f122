"""The DC simulator's request handling, without sockets: a request in, a reply (or "drop it") out.

Why apart from the HTTP server: every rule of docs/dc-protocol.md (the check
order of a login, single-use nonces and card authentications, session expiry
by the DC's clock, the error table, the bench's faults) is tested here in
milliseconds, and the server stays a thin adapter.

Never in a reply's message, an exception or a log: a session token, a nonce,
a signature, a card number, a key. Messages name the field, never its value.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from broker.credentials.cloud_sam_file import login_signed_bytes, verify_signature
from broker.dc.answers import MAX_EPOCH_SECONDS, MAX_VIRTUAL_HC_USES, virtual_hc_card
from contract.text import CONTROL_CHARACTERS
from sim.cards.card_keys import card_key, external_authenticate_cryptogram, internal_authenticate_response
from sim.dc import BENCH_HOSPITAL_ID
from sim.dc.sam_files import SamCa, issue_cloud_sam
from sim.dc.state import Contract, DcState, VhcRefusal, render_time
from sim.dc.vhc_issuer import VhcIssuer
from sim.pki import bench_pki
from sim.virtual_hc import card_of_profile, issue_token, new_token_id

DC_PREFIX = "/dc/v1/"
SIM_PREFIX = "/sim/v1/"
NONCE_BYTES = 16
NONCE_LIFETIME_SECONDS = 60
CARD_AUTH_LIFETIME_SECONDS = 60
DEFAULT_SESSION_TTL_SECONDS = 3600
CARD_CHALLENGE_BYTES = 8
CARD_CRYPTOGRAM_BYTES = 32
MAX_SIGNATURE_BYTES = 1024
FAULT_CODES = (1700, 1702, 1703)
MAX_FAULT_COUNT = 1000
MAX_ADVANCE_SECONDS = 10 * 366 * 86400
"""Ten years (leap days included) per call."""
DEFAULT_TOKEN_LIFETIME_SECONDS = 600
MAX_TOKEN_LIFETIME_SECONDS = 10 * 366 * 86400
DEFAULT_TOKEN_MAX_USES = 3
TRANSFER_ID_BYTES = 16
TRANSFER_SECRET_BYTES = 32
NOTES_FORMAT = "NHI-SIM-NOTES v1 {card_number} {date}"
"""`RealHc/Notes`'s answer, as ASCII: deterministic, so the bench's tests can compare what a card got."""

_SAM_ID = re.compile(r"^[0-9]{12}\Z")  # [0-9] and \Z: no other digits, no trailing newline
_HOSPITAL_ID = re.compile(r"^[0-9A-Za-z]{1,10}\Z")
_CARD_NUMBER = re.compile(r"^[0-9]{12}\Z")
_AUTH_ID = re.compile(r"^[0-9A-Za-z_-]{1,128}\Z")
_TOKEN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}\Z")
_TRANSFER_TOKEN = re.compile(r"^([0-9A-Za-z_-]{1,64})\.([0-9A-Za-z_-]{1,128})\Z")
_PROFILE = re.compile(r"^[0-9A-Za-z_-]{1,64}\Z")
_SAM_PATH = re.compile(r"^/sim/v1/Sams/([^/]*)$")

Json = dict[str, object]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: bytes | None = field(default=b"", repr=False)
    """The raw body; None when it was too large to read (a bad request, after any fault)."""

    def header(self, name: str) -> str | None:
        """Header names are case-insensitive; plain dicts (the tests') are not."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class Reply:
    status: int
    body: Json


class Drop:
    """The answer to a 1700 fault: close the connection without writing anything."""

    def __repr__(self) -> str:
        return "DROP"


DROP = Drop()


class _Failure(Exception):
    """A refusal, already in the shape of its reply (DC: `error` + `message`; bench controls: `message`)."""

    def __init__(self, status: int, error: str | None, message: str) -> None:
        super().__init__(message)
        self.reply = Reply(status, {"error": error, "message": message} if error else {"message": message})


def _dc_fail(status: int, error: str, message: str) -> NoReturn:
    raise _Failure(status, error, message)


def _bad_request(message: str) -> NoReturn:
    _dc_fail(400, "badRequest", message)


def _bench_fail(status: int, message: str) -> NoReturn:
    raise _Failure(status, None, message)


def _json_object(request: Request, refuse: Callable[[str], NoReturn]) -> Json:
    if request.body is None:
        refuse("the body is too large, or not sent with a Content-Length")
    try:
        document = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        refuse("the body is not UTF-8 JSON")
    if not isinstance(document, dict):
        refuse("the body is not a JSON object")
    return document


def _text(document: Json, name: str, pattern: re.Pattern[str], refuse: Callable[[str], NoReturn]) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        refuse(f"{name} is missing or malformed")
    return value


def _base64(document: Json, name: str, shortest: int, longest: int) -> bytes:
    value = document.get(name)
    if not isinstance(value, str):
        _bad_request(f"{name} is missing or malformed")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        _bad_request(f"{name} is not standard base64")
    if not shortest <= len(raw) <= longest:
        _bad_request(f"{name} has the wrong length")
    return raw


def _integer(
    document: Json, name: str, lowest: int, highest: int, refuse: Callable[[str], NoReturn] | None = None
) -> int:
    """A JSON integer in range, not a bool; refused by `refuse`, by default as a bench control's 400.

    `3.0` counts as 3: JSON has one number type, and JSON Schema calls 3.0 an integer, so a client
    generated from the OpenAPI document may well send it.
    """
    value = document.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        message = f"{name} must be an integer from {lowest} to {highest}"
        if refuse is None:
            _bench_fail(400, message)
        refuse(message)
    return value


def _unpadded_b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@functools.cache
def _bench_hca_crls() -> tuple[str, ...]:
    """The bench HCA issuing CA's CRL, base64 of its DER: built on the first `GET Crl` (~50-100 ms), then kept."""
    return (_b64(bench_pki().crl.public_bytes(serialization.Encoding.DER)),)


def token_hash(token: str) -> bytes:
    """What the state keeps of a session token (or a transfer's secret): its SHA-256, never the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


_VHC_ERRORS: Mapping[VhcRefusal, int] = {
    VhcRefusal.COUNT_EXCEEDED: 403,
    VhcRefusal.VOID: 410,
    VhcRefusal.UNKNOWN_TRANSFER: 404,
    VhcRefusal.TRANSFER_USED: 409,
    VhcRefusal.OTHER_HOSPITAL: 403,
    VhcRefusal.TRANSFER_VOID: 410,
}
_VHC_MESSAGES: Mapping[VhcRefusal, str] = {
    VhcRefusal.COUNT_EXCEEDED: "the virtual card has been verified as many times as it may be",
    VhcRefusal.VOID: "the virtual card was transferred: this token id is void",
    VhcRefusal.UNKNOWN_TRANSFER: "no such transfer",
    VhcRefusal.TRANSFER_USED: "the transfer was imported already",
    VhcRefusal.OTHER_HOSPITAL: "the transfer belongs to another hospital",
    VhcRefusal.TRANSFER_VOID: "the transferred card has expired",
}


def _vhc_fail(refusal: VhcRefusal) -> NoReturn:
    _dc_fail(_VHC_ERRORS[refusal], refusal.value, _VHC_MESSAGES[refusal])


class DcService:
    """The protocol (`/dc/v1/`) and the bench's controls (`/sim/v1/`) over one `DcState`.

    `handle` never raises for anything a client sends; an exception out of it
    is a bug of the simulator (the server answers 500 and logs its type).
    """

    def __init__(
        self,
        state: DcState,
        sam_ca: SamCa,
        session_ttl: float = DEFAULT_SESSION_TTL_SECONDS,
        vhc_issuer: VhcIssuer | None = None,
    ) -> None:
        """`vhc_issuer` None: `POST /sim/v1/VirtualHc/Token` answers 404 (the rest of the DC works as ever)."""
        if session_ttl <= 0:
            raise ValueError("the session TTL must be positive")
        self.state = state
        self.sam_ca = sam_ca
        self.session_ttl = session_ttl
        self.vhc_issuer = vhc_issuer
        self._calls = 0
        """DC calls served since this service was made (`GET /sim/v1/Calls`): the server runs a thread a connection."""
        self._calls_lock = threading.Lock()
        self._dc_routes: dict[tuple[str, str], Callable[[Request], Json]] = {
            ("POST", "Sam/Challenge"): self._sam_challenge,
            ("POST", "Sam/Login"): self._sam_login,
            ("GET", "Time"): self._time,
            ("GET", "Crl"): self._crl,
            ("POST", "Cards/Challenge"): self._cards_challenge,
            ("POST", "Cards/Verify"): self._cards_verify,
            ("POST", "VirtualHc/Verify"): self._virtual_hc_verify,
            ("POST", "VirtualHc/Export"): self._virtual_hc_export,
            ("POST", "VirtualHc/Import"): self._virtual_hc_import,
            ("POST", "RealHc/Notes"): self._real_hc_notes,
        }
        self._sim_routes: dict[tuple[str, str], Callable[[Request], Json]] = {
            ("POST", "CloudSam"): self._sim_cloud_sam,
            ("POST", "Faults"): self._sim_faults,
            ("POST", "Clock"): self._sim_clock,
            ("POST", "VirtualHc/Token"): self._sim_virtual_hc_token,
            ("GET", "Calls"): self._sim_calls,
        }
        self._mounted: dict[str, Callable[[Request], Reply]] = {}

    def mount_bench_controls(self, name: str, handler: Callable[[Request], Reply]) -> None:
        """Another part of the bench in this process (the web-API twin, sim/web_api) answers `/sim/v1/<name>` and
        everything under it: the console's control API reaches every bench control through this one port."""
        self._mounted[name] = handler

    @property
    def calls(self) -> int:
        """Every request that was not a bench control (`/sim/v1/`): the DC protocol's, answered, refused (an
        unknown command or path, a bad body) or dropped by a fault alike, so that a test that reads no change
        knows nothing of the console's reached the DC at all."""
        with self._calls_lock:
            return self._calls

    def handle(self, request: Request) -> Reply | Drop:
        path = urllib.parse.urlsplit(request.path).path
        method = request.method.upper()
        if not path.startswith(SIM_PREFIX):
            with self._calls_lock:
                self._calls += 1
        try:
            if path.startswith(DC_PREFIX):
                return self._dc(method, path.removeprefix(DC_PREFIX), request)
            if path.startswith(SIM_PREFIX):
                return self._sim(method, path, request)
        except _Failure as failure:
            return failure.reply
        return Reply(
            404, {"error": "notFound", "message": "the DC is under /dc/v1/, the bench's controls under /sim/v1/"}
        )

    # -- the protocol -------------------------------------------------------

    def _dc(self, method: str, command: str, request: Request) -> Reply | Drop:
        fault = self.state.take_fault()  # before anything else, even an unknown command or a bad body
        if fault == 1700:
            return DROP
        if fault == 1702:
            return Reply(503, {"error": "serviceUnavailable", "message": "simulated DC fault 1702"})
        if fault == 1703:
            return Reply(401, {"error": "sessionExpired", "message": "simulated DC fault 1703"})
        route = self._dc_routes.get((method, command))
        if route is None:
            _dc_fail(404, "unknownCommand", "no such DC command")
        return Reply(200, route(request))

    def _session_sam(self, request: Request) -> str:
        """The SAM of the request's live session (`Authorization: Bearer <session>`), else 401 sessionExpired."""
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        sam_id = self.state.session_sam(token_hash(token)) if scheme.lower() == "bearer" and token else None
        if sam_id is None:
            _dc_fail(401, "sessionExpired", "no such session, or it has expired")
        return sam_id

    def _known_sam_id(self, document: Json) -> str:
        sam_id = _text(document, "samId", _SAM_ID, _bad_request)
        if self.state.sam(sam_id) is None:
            _dc_fail(404, "unknownSam", "the DC does not know this SAM")
        return sam_id

    def _sam_challenge(self, request: Request) -> Json:
        sam_id = self._known_sam_id(_json_object(request, _bad_request))
        nonce = secrets.token_bytes(NONCE_BYTES)
        self.state.add_nonce(nonce, sam_id, NONCE_LIFETIME_SECONDS)
        return {"nonce": _b64(nonce)}

    def _sam_login(self, request: Request) -> Json:
        document = _json_object(request, _bad_request)
        sam_id = _text(document, "samId", _SAM_ID, _bad_request)
        nonce = _base64(document, "nonce", NONCE_BYTES, NONCE_BYTES)
        signature = _base64(document, "signature", 1, MAX_SIGNATURE_BYTES)
        # The order of docs/dc-protocol.md: known, authentic, not revoked, contract, not suspended.
        sam = self.state.sam(sam_id)
        if sam is None:
            _dc_fail(404, "unknownSam", "the DC does not know this SAM")
        fresh = self.state.take_nonce(nonce, sam_id)  # consumed by any attempt: one login per nonce
        certificate = x509.load_pem_x509_certificate(sam.certificate_pem.encode("ascii"))
        if not fresh or not verify_signature(certificate, signature, login_signed_bytes(sam_id, nonce)):
            _dc_fail(403, "authenticationFailed", "the nonce is not fresh or the signature does not verify")
        if sam.revoked:
            _dc_fail(403, "samRevoked", "the SAM is revoked")
        hospital = self.state.hospital(sam.hospital_id)
        if hospital is None:  # cannot happen: a SAM references its hospital
            raise LookupError("a SAM without its hospital")
        if not hospital.contract_covers(self.state.today()):
            _dc_fail(403, "contractExpired", "the hospital's contract period does not cover today")
        if hospital.suspended:
            _dc_fail(403, "hospitalSuspended", "the hospital is suspended")
        session = secrets.token_urlsafe(32)
        expires_at = self.state.add_session(token_hash(session), sam_id, self.session_ttl)
        return {
            "session": session,
            "expiresAt": render_time(expires_at),
            "hospitalId": hospital.hospital_id,
            "hospitalName": hospital.name,
            "hospitalShortName": hospital.short_name,
        }

    def _time(self, request: Request) -> Json:
        self._session_sam(request)
        return {"serverTime": render_time(self.state.now())}

    def _crl(self, request: Request) -> Json:
        """No session: a CRL is public. The bench's one HCA issuing CA, so one CRL (`sim.pki`'s)."""
        return {"crls": list(_bench_hca_crls())}

    def _cards_challenge(self, request: Request) -> Json:
        sam_id = self._session_sam(request)
        document = _json_object(request, _bad_request)
        card_number = _text(document, "cardNumber", _CARD_NUMBER, _bad_request)
        card_challenge = _base64(document, "cardChallenge", CARD_CHALLENGE_BYTES, CARD_CHALLENGE_BYTES)
        key = card_key(card_number)
        host_challenge = secrets.token_bytes(CARD_CHALLENGE_BYTES)
        auth_id = secrets.token_urlsafe(16)
        expected = internal_authenticate_response(key, host_challenge)
        self.state.add_card_auth(auth_id, sam_id, expected, CARD_AUTH_LIFETIME_SECONDS)
        return {
            "authId": auth_id,
            "cryptogram": _b64(external_authenticate_cryptogram(key, card_challenge)),
            "hostChallenge": _b64(host_challenge),
        }

    def _cards_verify(self, request: Request) -> Json:
        sam_id = self._session_sam(request)
        document = _json_object(request, _bad_request)
        auth_id = _text(document, "authId", _AUTH_ID, _bad_request)
        card_response = _base64(document, "cardResponse", CARD_CRYPTOGRAM_BYTES, CARD_CRYPTOGRAM_BYTES)
        expected = self.state.take_card_auth(auth_id, sam_id)
        if expected is not None and hmac.compare_digest(card_response, expected):
            return {"authenticated": True}
        _dc_fail(403, "authenticationFailed", "the card's answer is wrong, or the authentication is unknown or used")

    # -- virtual health cards and card notes ----------------------------------

    def _session_hospital(self, sam_id: str) -> str:
        sam = self.state.sam(sam_id)
        if sam is None:  # cannot happen: a live session's SAM is known (reissuing ends its sessions)
            raise LookupError("a session without its SAM")
        return sam.hospital_id

    def _virtual_hc_verify(self, request: Request) -> Json:
        self._session_sam(request)
        document = _json_object(request, _bad_request)
        token_id = _text(document, "tokenId", _TOKEN_ID, _bad_request)
        max_uses = _integer(document, "maxUses", 1, MAX_VIRTUAL_HC_USES, _bad_request)
        expires_at = _integer(document, "expiresAt", 0, MAX_EPOCH_SECONDS, _bad_request)
        outcome = self.state.verify_virtual_hc(token_id, max_uses, expires_at)
        if isinstance(outcome, VhcRefusal):
            _vhc_fail(outcome)
        return {"uses": outcome}

    def _virtual_hc_export(self, request: Request) -> Json:
        hospital_id = self._session_hospital(self._session_sam(request))
        document = _json_object(request, _bad_request)
        token_id = _text(document, "tokenId", _TOKEN_ID, _bad_request)
        card = virtual_hc_card(document.get("card"))
        if card is None:
            _bad_request("card is missing or malformed")
        expires_at = _integer(document, "expiresAt", 0, MAX_EPOCH_SECONDS, _bad_request)
        max_uses = _integer(document, "maxUses", 1, MAX_VIRTUAL_HC_USES, _bad_request)
        transfer_id = _unpadded_b64url(secrets.token_bytes(TRANSFER_ID_BYTES))
        secret = _unpadded_b64url(secrets.token_bytes(TRANSFER_SECRET_BYTES))
        refusal = self.state.export_virtual_hc(
            token_id, transfer_id, token_hash(secret), hospital_id, card, expires_at, max_uses
        )
        if refusal is not None:
            _vhc_fail(refusal)
        return {"transferToken": f"{transfer_id}.{secret}"}

    def _virtual_hc_import(self, request: Request) -> Json:
        hospital_id = self._session_hospital(self._session_sam(request))
        document = _json_object(request, _bad_request)
        transfer_token = document.get("transferToken")
        if not isinstance(transfer_token, str):
            _bad_request("transferToken is missing or not a string")
        parts = _TRANSFER_TOKEN.match(transfer_token)
        if parts is None:  # a garbled token names no transfer the DC knows
            _vhc_fail(VhcRefusal.UNKNOWN_TRANSFER)
        outcome = self.state.import_virtual_hc(parts.group(1), token_hash(parts.group(2)), hospital_id, new_token_id())
        if isinstance(outcome, VhcRefusal):
            _vhc_fail(outcome)
        return {
            "tokenId": outcome.token_id,
            "card": outcome.card,
            "expiresAt": outcome.expires_at,
            "maxUses": outcome.max_uses,
        }

    def _real_hc_notes(self, request: Request) -> Json:
        self._session_sam(request)
        document = _json_object(request, _bad_request)
        card_number = _text(document, "cardNumber", _CARD_NUMBER, _bad_request)
        date = self.state.today().strftime("%Y%m%d")  # the DC's date, in +08:00
        notes = NOTES_FORMAT.format(card_number=card_number, date=date).encode("ascii")
        return {"notes": _b64(notes)}

    # -- the bench's controls -----------------------------------------------

    def _sim(self, method: str, path: str, request: Request) -> Reply:
        name = path.removeprefix(SIM_PREFIX).split("/", 1)[0]
        if name in self._mounted:
            return self._mounted[name](request)
        sam_path = _SAM_PATH.match(path)
        if sam_path is not None and method == "GET":
            return Reply(200, self._sim_sam(urllib.parse.unquote(sam_path.group(1))))
        route = self._sim_routes.get((method, path.removeprefix(SIM_PREFIX)))
        if route is None:
            _bench_fail(404, "no such bench control")
        return Reply(200, route(request))

    def _sim_cloud_sam(self, request: Request) -> Json:
        def refuse(message: str) -> NoReturn:
            _bench_fail(400, message)

        document = _json_object(request, refuse)
        sam_id = _text(document, "samId", _SAM_ID, refuse)
        hospital_id = _text(document, "hospitalId", _HOSPITAL_ID, refuse)
        name = document.get("hospitalName")
        if name is not None and (
            not isinstance(name, str) or not 1 <= len(name) <= 64 or CONTROL_CHARACTERS.search(name)
        ):
            refuse("hospitalName must be 1 to 64 characters, none of them a control character")
        contract = document.get("contract")
        if not isinstance(contract, str) or contract not in tuple(Contract):
            refuse("contract must be one of " + ", ".join(Contract))
        file_bytes = issue_cloud_sam(self.state, self.sam_ca, sam_id, hospital_id, name, Contract(contract))
        return {"cloudSamContext": _b64(file_bytes)}

    def _sim_sam(self, sam_id: str) -> Json:
        if not _SAM_ID.match(sam_id):
            _bench_fail(400, "samId must be 12 digits")
        sam = self.state.sam(sam_id)
        if sam is None:
            _bench_fail(404, "the DC does not know this SAM")
        return {
            "samId": sam.sam_id,
            "hospitalId": sam.hospital_id,
            "certificate": sam.certificate_pem,
            "revoked": sam.revoked,
        }

    def _sim_faults(self, request: Request) -> Json:
        document = _json_object(request, lambda message: _bench_fail(400, message))
        status_code = document.get("statusCode")
        if type(status_code) is not int or status_code not in FAULT_CODES:  # not a bool, not 1700.0
            _bench_fail(400, "statusCode must be one of " + ", ".join(map(str, FAULT_CODES)))
        count = _integer(document, "count", 1, MAX_FAULT_COUNT)
        self.state.set_fault(status_code, count)
        return {}

    def _sim_virtual_hc_token(self, request: Request) -> Json:
        """A virtual card token for a bench health card profile, signed by the simulator's issuer, `iat` = the DC's
        now."""
        if self.vhc_issuer is None:
            _bench_fail(404, "this DC simulator has no virtual card issuer (run prepare)")
        document = _json_object(request, lambda message: _bench_fail(400, message))
        profile = document.get("profile")
        if not isinstance(profile, str) or not _PROFILE.match(profile):
            _bench_fail(400, "profile must be a bench profile's name")
        defaults: Json = {
            "expiresIn": DEFAULT_TOKEN_LIFETIME_SECONDS,
            "maxUses": DEFAULT_TOKEN_MAX_USES,
            "hospitalId": BENCH_HOSPITAL_ID,
        }
        document = {**defaults, **{key: value for key, value in document.items() if value is not None}}
        expires_in = _integer(document, "expiresIn", 1, MAX_TOKEN_LIFETIME_SECONDS)
        max_uses = _integer(document, "maxUses", 1, MAX_VIRTUAL_HC_USES)
        hospital_id = _text(document, "hospitalId", _HOSPITAL_ID, lambda message: _bench_fail(400, message))
        try:
            card = card_of_profile(profile)
        except KeyError:
            _bench_fail(404, "no such bench profile")
        except ValueError:
            _bench_fail(400, "the profile is a staff card, not a health card")
        issued_at = int(self.state.now().timestamp())
        token = issue_token(
            self.vhc_issuer.key,
            token_id=new_token_id(),
            card=card,
            hospital_id=hospital_id,
            issued_at=issued_at,
            expires_at=issued_at + expires_in,
            max_uses=max_uses,
        )
        return {"token": token}

    def _sim_calls(self, request: Request) -> Json:
        return {"calls": self.calls}

    def _sim_clock(self, request: Request) -> Json:
        document = _json_object(request, lambda message: _bench_fail(400, message))
        seconds = _integer(document, "advanceSeconds", 0, MAX_ADVANCE_SECONDS)
        try:
            now = self.state.advance_clock(seconds)
        except ValueError as error:
            _bench_fail(400, str(error))
        return {"serverTime": render_time(now)}
