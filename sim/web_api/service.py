"""The web-API twin's request handling, without sockets: a request in, an outcome out.

Why apart from the HTTPS server (as the DC simulator's `sim.dc.service`): every rule (the check order, each
refusal changing nothing, the state rules of `sim.web_api.paths`, the seed's 2022 form, the bench's faults) is
tested here in milliseconds, and the server only writes what this answers.

Order, for every web-API call (docs/web-api-twin.md):
1. a pending bench fault, before anything else (even an unknown path or a bad body);
2. the path (HTTP 404, 1701), the body and its fields (HTTP 400, 1704): nothing checked, nothing changed yet;
3. in one transaction: the SAM and its signature (`signatures.check_signer`), the 8-hour window, the card the
   signature names (3228), then the path's own rules and effects. A refusal rolls all of it back.

Every answer the paths give is HTTP 200 with `statusCode` (0 = done) and, when not 0, `message`.
"""

from __future__ import annotations

import datetime
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sim.dc.service import Reply, Request
from sim.web_api import fields
from sim.web_api.codes import Code, Refused
from sim.web_api.fields import Json
from sim.web_api.formats import decode_hex_or_base64, parse_roc_date_time, taipei_date, treatment_number
from sim.web_api.paths import Call, Paths, Route, card_of, person
from sim.web_api.signatures import DcView, SignatureBlock, check_signer, check_window
from sim.web_api.signer import Signer
from sim.web_api.state import Fault, WebApiState

TREAT_NUM_PATH = "/TreatNum"
"""Where the twin serves the seed's 2022 就醫識別碼 form. The seed names no path: the NHI's is in its 介接說明書."""
TREAT_NUM_SERVICE_TYPE = "11"
TREAT_NUM_CARD_TYPE = "3"
"""sCardType: 3, the SAM (安全模組卡), the only kind the seed's form takes."""
UNREADABLE_PAYLOAD = b'{"statusCode": 0, "treatmentNum'
"""The `unreadable` fault's answer: HTTP 200, a JSON content type, and JSON cut off mid-name."""


@dataclass(frozen=True)
class Stall:
    """The `timeout` fault: hold the connection this long without answering, then close it."""

    seconds: float


@dataclass(frozen=True)
class RawReply:
    """An answer that is not a JSON object (the `http500` and `unreadable` faults)."""

    status: int
    content_type: str
    payload: bytes


Outcome = Reply | Stall | RawReply


def _status(code: Code) -> int:
    return {Code.BAD_REQUEST: 400, Code.UNKNOWN_PATH: 404}.get(code, 200)


def _refusal(refused: Refused) -> Reply:
    return Reply(_status(refused.code), {"statusCode": int(refused.code), "message": refused.message})


class WebApiService:
    """The 6.0 paths (`sim.web_api.paths`) and the seed's `/TreatNum` over one `WebApiState`.

    `handle` never raises for anything a client sends; an exception out of it is a bug of the twin (the server
    answers 500 and logs its type).
    """

    def __init__(self, state: WebApiState, dc: DcView, signer: Signer, issuer_key: rsa.RSAPrivateKey) -> None:
        self.state = state
        self.dc = dc
        self.signer = signer
        self._routes = Paths(signer, issuer_key).routes()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path served, the seed's form last."""
        return (*self._routes, TREAT_NUM_PATH)

    def handle(self, request: Request) -> Outcome:
        fault = self._take_fault()
        if fault is not None:
            return fault
        path = urllib.parse.urlsplit(request.path).path
        method = request.method.upper()
        if method == "POST" and path == TREAT_NUM_PATH:
            return self._treat_num(request)
        route = self._routes.get(path)
        if route is None or method != "POST":
            return _refusal(Refused(Code.UNKNOWN_PATH, "no such path (every path is a POST; see web-api.md)"))
        try:
            return Reply(200, {"statusCode": 0, **self._call(route, request)})
        except Refused as refused:
            return _refusal(refused)

    def _take_fault(self) -> Outcome | None:
        with self.state.transaction() as tx:
            pending = tx.take_fault()
        if pending is None:
            return None
        if pending.fault is Fault.TIMEOUT:
            return Stall(pending.hold_seconds)
        if pending.fault is Fault.HTTP500:
            return RawReply(500, "text/plain; charset=utf-8", b"simulated web API fault: HTTP 500\n")
        return RawReply(200, "application/json; charset=utf-8", UNREADABLE_PAYLOAD)

    def _call(self, route: Route[Any], request: Request) -> Json:
        document = fields.json_object(request)
        block = fields.signature_block(document, route.kind)
        args = route.read(document)
        now = self.dc.now()
        with self.state.transaction() as tx:
            sam = check_signer(self.dc, block, route.service_type, taipei_date(now))
            check_window(tx.signature_first_seen(block.digest), now.timestamp())
            card = None if block.hc is None else card_of(tx, block.hc.card_id, block.hc.id_no)
            call = Call(tx, block, sam, now, card)
            answer = route.act(call, args)
            tx.remember_signature(block.digest, now.timestamp(), took_sequence=call.took_sequence)
        return answer

    # -- the seed's 2022 form -------------------------------------------------------------------------------

    def _treat_num(self, request: Request) -> Reply:
        """`POST /TreatNum`: the seed's fields in, `RtnCode` and `TreatNum` out (plus `statusCode`, and `message`
        when not done, as every answer of the twin)."""
        try:
            return Reply(200, {"RtnCode": "0000", "TreatNum": self._treat_number(request), "statusCode": 0})
        except Refused as refused:
            reply = _refusal(refused)
            return Reply(reply.status, {"RtnCode": f"{int(refused.code):04d}", "TreatNum": None, **reply.body})

    def _treat_number(self, request: Request) -> str:
        document = fields.json_object(request)
        sam_id = fields.text(document, "sSamid", fields.SAM_ID)
        hospital_id = fields.text(document, "sHospid", fields.HOSPITAL_ID)
        client_random = _hex_or_base64(document, "sClientrandom", fields.MAX_RANDOM_BYTES)
        signature = _hex_or_base64(document, "sSignature", fields.MAX_SIGNATURE_BYTES)
        if document.get("sCardType") != TREAT_NUM_CARD_TYPE:
            raise fields.bad_request('sCardType must be "3" (the SAM)')
        card_id = fields.text(document, "sCardId", fields.CARD_ID) if document.get("sCardId") else None
        patient_id = fields.text(document, "sPatientId", fields.ID_NO)
        treat_dt = fields.roc_date_time(document, "sTreatDT")
        block = SignatureBlock(client_random, hospital_id, sam_id, signature)
        now = self.dc.now()
        with self.state.transaction() as tx:
            check_signer(self.dc, block, TREAT_NUM_SERVICE_TYPE, taipei_date(now))
            check_window(tx.signature_first_seen(block.digest), now.timestamp())
            profile = person(patient_id)
            if profile is None:
                raise Refused(Code.NOT_INSURED, "sPatientId is not a person the bench insures")
            if card_id is not None and card_id != profile.data.card_id:
                raise Refused(Code.NOT_INSURED, "sCardId is not the card of sPatientId")
            moment = parse_roc_date_time(treat_dt)
            if moment is None or moment > now.astimezone(datetime.UTC):
                raise Refused(Code.TREATMENT_NUMBER_FAILED, "sTreatDT is after the current time")
            tx.remember_signature(block.digest, now.timestamp())
        return treatment_number(hospital_id, patient_id, treat_dt)


def _hex_or_base64(document: Json, name: str, longest: int) -> bytes:
    """The seed's component gives hex (a signature: 512 hex characters), the 6.0 console base64: either."""
    value = document.get(name)
    raw = decode_hex_or_base64(value) if isinstance(value, str) else None
    if raw is None or not 1 <= len(raw) <= longest:
        raise fields.bad_request(f"{name} is missing or not hex or base64 of 1 to {longest} bytes")
    return raw
