"""The 6.0 web API's paths (web-api.md's table): what each reads from the body and does to a card's record.

Why apart from the dispatch (`sim.web_api.service`): these are the state rules, one function a path, each run
inside its call's transaction after the signature block was checked, so a `Refused` raised here rolls back
everything the call did. The rules (docs/web-api-twin.md, "State"):

- a sequence number (SequelNumber/Next) is a visit: shown by Treatment/NoNeedHPC (the newest six, as a card
  holds), costs one of `treatmentCounter`, refused when `cardValidity` has passed (3201), the counter is 0 (3213)
  or the signature already took one (3245); `isSameDay` when the card had another visit at that hospital that day;
- a rollback (SequelNumber/Rollback) hides the visit from every read and gives the visit back to the counter;
  only at the hospital that took it (3211), within 24 hours (3218), for a numeric treatmentItem (3219), once (3220);
- codes and fees (Treatment/WriteCodeFee) are written once per visit (3209) and shown by Treatment/NeedHPC
  (codes) and Treatment/NoNeedHPC (fees); prescriptions (Prescription/Write) are signed one by one and shown by
  Prescription/Query;
- HcContent/Update renews `cardValidity` (a year from today, unless later already) and `treatmentCounter` (6);
- the treatment number of a visit is `formats.treatment_number` of hospital, person and date-time, so every path
  that names the visit answers the same one.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from sim.dc.service import DEFAULT_TOKEN_LIFETIME_SECONDS, DEFAULT_TOKEN_MAX_USES
from sim.dc.state import SamRecord
from sim.profiles import PROFILES, HealthCardData, InsuranceData, Profile
from sim.virtual_hc import card_of_profile, issue_token, new_token_id
from sim.web_api import fields
from sim.web_api.codes import Code, Refused
from sim.web_api.fields import Json
from sim.web_api.formats import (
    next_sequence,
    parse_roc_date,
    roc_date,
    roc_date_time,
    sequence_text,
    taipei_date,
    treatment_number,
)
from sim.web_api.signatures import Kind, SignatureBlock
from sim.web_api.signer import Signer, prescription_signed_bytes, visit_signed_bytes
from sim.web_api.state import AccessToken, CardRecord, Prescription, Transaction, Visit

T = TypeVar("T")

TREATMENT_COUNTER_FULL = 6
"""就醫可用次數 after a card update: what a real card holds."""
CARD_RECORDS_SHOWN = 6
"""A card holds its last six visits: the reads show the newest six."""
PRESCRIPTIONS_SHOWN = 60
MAX_PRESCRIPTIONS_PER_WRITE = 60
ROLLBACK_WINDOW_SECONDS = 24 * 3600
ACCESS_TOKEN_LIFETIME_SECONDS = 600
VALIDITY_RENEWAL = datetime.timedelta(days=365)
FEE_DIGITS = {"outpatientFee": 8, "costFee": 8, "inpatientFee": 8, "inpatient30Fee": 7, "inpatient180Fee": 7}
"""Each fee's field and its width on the card (public HIS code reads them so): the largest value is all 9s."""
SUB_CODES = tuple(f"subCode{n}" for n in range(1, 6))
PRESCRIPTION_FIELDS = {
    "treatmentDateTime": 13,
    "treatmentItem": 1,
    "treatmentItemCode": 12,
    "treatmentPosition": 6,
    "usage": 18,
    "days": 2,
    "totalQuantity": 7,
    "deliveryNotes": 2,
}
"""Each prescription field and its width on the card (醫令類別 1, 診療項目代號 12, 部位 6, 用法 18, 天數 2, 總量 7,
交付處方註記 2)."""
QUERY_FIELDS = tuple(name for name in PRESCRIPTION_FIELDS if name != "deliveryNotes")


@dataclass
class Call:
    """One checked call: its transaction, its signature block, the SAM that signed, the bench's now, and (for an HC
    or HpcHc signature) the card's record."""

    tx: Transaction
    block: SignatureBlock
    sam: SamRecord
    now: datetime.datetime
    card: CardRecord | None = None
    took_sequence: bool = False
    """Set by SequelNumber/Next: the signature may take no other sequence number (3245)."""

    @property
    def now_seconds(self) -> float:
        return self.now.timestamp()

    @property
    def today(self) -> datetime.date:
        return taipei_date(self.now)

    def holder(self) -> tuple[CardRecord, HealthCardData, InsuranceData]:
        """The card the signature names, with its profile's data (an HC or HpcHc path always has one)."""
        if self.card is None:
            raise LookupError("a card path without a card")
        profile = PROFILES[self.card.profile]
        if not isinstance(profile.data, HealthCardData) or profile.insurance is None:
            raise LookupError("a card record of a profile that is not a health card")
        return self.card, profile.data, profile.insurance


@dataclass(frozen=True)
class Route(Generic[T]):
    """A path: whose signature and which service type it takes, what it reads from the body (400 on a bad field,
    before anything is checked), and what it does."""

    kind: Kind
    service_type: str
    read: Callable[[Json], T]
    act: Callable[[Call, T], Json]


def _nothing(document: Json) -> None:
    return None


def person(id_no: str) -> Profile | None:
    """The bench health card profile of that ID number (the people the twin insures), or None."""
    return next(
        (p for p in PROFILES.values() if p.insurance is not None and p.data.id_no == id_no),
        None,
    )


def card_of(tx: Transaction, card_id: str, id_no: str) -> CardRecord:
    """The record of a bench health card whose holder has that ID number; 3228 for anyone else."""
    card = tx.card(card_id)
    if card is None or PROFILES[card.profile].data.id_no != id_no:
        raise Refused(Code.NOT_INSURED, "no bench health card of that hcId and hcIdNo")
    return card


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _critical_illnesses(insurance: InsuranceData, with_code: bool) -> list[Json]:
    return [
        {
            **({"ciCode": ill.ci_code} if with_code else {}),
            "validityStart": ill.validity_start,
            "validityEnd": ill.validity_end,
        }
        for ill in insurance.critical_illnesses
    ]


@dataclass(frozen=True)
class NextArgs:
    treatment_item: str
    baby_treatment: str
    after_check: str


@dataclass(frozen=True)
class CodeFeeArgs:
    treatment_date_time: str
    codes: dict[str, str]
    fees: dict[str, int]


@dataclass(frozen=True)
class PrescriptionArgs:
    treatment_date_time: str
    items: list[dict[str, str]]


def _read_next(document: Json) -> NextArgs:
    return NextArgs(
        fields.text(document, "treatmentItem", fields.TREATMENT_ITEM),
        fields.text(document, "babyTreatment", fields.BABY_TREATMENT, default=""),
        fields.text(document, "afterCheck", fields.AFTER_CHECK),
    )


def _read_date_time(document: Json) -> str:
    return fields.roc_date_time(document, "treatmentDateTime")


def _read_patient(document: Json) -> str:
    return fields.text(document, "patientId", fields.ID_NO)


def _read_format(document: Json) -> str:
    return fields.text(document, "format", fields.FORMAT, default="0")


def _read_access_token(document: Json) -> str:
    return fields.text(document, "accessToken", fields.ACCESS_TOKEN)


def _read_code_fee(document: Json) -> CodeFeeArgs:
    treatment_date_time = fields.roc_date_time(document, "treatmentDateTime")
    fields.text(document, "afterCheck", fields.AFTER_CHECK)
    codes = {"mainCode": fields.text(document, "mainCode", fields.DIAGNOSIS)}
    if not codes["mainCode"]:
        raise fields.bad_request("mainCode is missing or malformed")
    codes.update({name: fields.text(document, name, fields.DIAGNOSIS, default="") for name in SUB_CODES})
    fees = {name: fields.integer(document, name, 10**digits - 1, default=0) for name, digits in FEE_DIGITS.items()}
    return CodeFeeArgs(treatment_date_time, codes, fees)


def _read_prescriptions(document: Json) -> PrescriptionArgs:
    treatment_date_time = fields.roc_date_time(document, "treatmentDateTime")
    items = document.get("prescriptions")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_PRESCRIPTIONS_PER_WRITE:
        raise fields.bad_request(f"prescriptions must be a list of 1 to {MAX_PRESCRIPTIONS_PER_WRITE} objects")
    read: list[dict[str, str]] = []
    for item in items:
        if not isinstance(item, dict):
            raise fields.bad_request("each prescription must be a JSON object")
        fields.roc_date_time(item, "treatmentDateTime")
        read.append({name: fields.printable(item, name, width) for name, width in PRESCRIPTION_FIELDS.items()})
    return PrescriptionArgs(treatment_date_time, read)


class Paths:
    """The paths' actions, with what they sign with: the twin's signer and the bench's virtual card issuer."""

    def __init__(self, signer: Signer, issuer_key: rsa.RSAPrivateKey) -> None:
        self.signer = signer
        self.issuer_key = issuer_key

    def routes(self) -> dict[str, Route[Any]]:
        """web-API path → its route (web-api.md's table, service types as it says)."""
        hc, hpc_hc, sam = Kind.HC, Kind.HPC_HC, Kind.SAM
        return {
            "/api/v1/BasicData/Query": Route(hc, "01", _nothing, self.basic_data),
            "/api/v1/BasicData/Register": Route(hc, "01", _nothing, self.register),
            "/api/v1/BasicData/Register2": Route(hc, "01", _nothing, self.register2),
            "/api/v1/EmergentTel/Query": Route(hc, "01", _nothing, self.emergent_tel),
            "/api/v1/SequelNumber/Next": Route(hc, "03", _read_next, self.next_sequence),
            "/api/v1/SequelNumber/Rollback": Route(hc, "03", _read_date_time, self.rollback),
            "/api/v1/TreatmentNumber/Card": Route(hc, "03", _read_date_time, self.treatment_number_card),
            "/api/v1/TreatmentNumber/NoCard": Route(sam, "03", _read_patient, self.treatment_number_no_card),
            "/api/v1/Treatment/WriteCodeFee": Route(hc, "02", _read_code_fee, self.write_code_fee),
            "/api/v1/Prescription/Write": Route(hc, "02", _read_prescriptions, self.write_prescriptions),
            "/api/v1/Prescription/Query": Route(hpc_hc, "01", _nothing, self.query_prescriptions),
            "/api/v1/Treatment/NoNeedHPC": Route(hc, "01", _nothing, self.treatments_without_hpc),
            "/api/v1/Treatment/NeedHPC": Route(hpc_hc, "01", _read_format, self.treatments_with_hpc),
            "/api/v1/CriticalIllness/Query": Route(hpc_hc, "01", _read_format, self.critical_illnesses),
            "/api/v1/HcContent/Update": Route(hc, "04", _nothing, self.update_card),
            "/api/v1/TeleMedicine/RequestToken": Route(sam, "01", _read_patient, self.request_token),
            "/api/v1/TeleMedicine/ResponseToken": Route(sam, "01", _read_access_token, self.response_token),
        }

    # -- reading the card's record ----------------------------------------------------------------------

    def basic_data(self, call: Call, _: None) -> Json:
        _card, data, _insurance = call.holder()
        return {
            "cardSn": data.card_id,
            "name": data.name,
            "idCardNum": data.id_no,
            "birthday": data.birthday,
            "sex": data.sex,
            "dateIssue": data.date_issue,
            "cancelTermination": "1",
        }

    def register(self, call: Call, _: None) -> Json:
        card, data, insurance = call.holder()
        return {
            **self.basic_data(call, None),
            "insurerCode": insurance.insurer_code,
            "insurerId": data.identity_status,
            "cardValidity": card.card_validity,
            "treatmentCounter": card.treatment_counter,
            "newbornBirthday": insurance.newborn_birthday,
            "newbornBaby": insurance.newborn_baby,
        }

    def register2(self, call: Call, _: None) -> Json:
        card, _data, _insurance = call.holder()
        return {"cardValidity": card.card_validity, "treatmentCounter": card.treatment_counter}

    def emergent_tel(self, call: Call, _: None) -> Json:
        return {"tel": call.holder()[2].emergency_tel}

    def treatments_without_hpc(self, call: Call, _: None) -> Json:
        card, _data, insurance = call.holder()
        visits = call.tx.visits(card.card_id)[:CARD_RECORDS_SHOWN]
        return {
            "criticalIllnesses": _critical_illnesses(insurance, with_code=False),
            "treatments": [
                {
                    "treatmentItem": visit.treatment_item,
                    "treatDateTime": visit.treatment_date_time,
                    "afterCheck": visit.after_check,
                    "hospitalVisit": visit.sequence_number,
                    "hospitalId": visit.hospital_id,
                    **{name: (visit.fees or {}).get(name, 0) for name in FEE_DIGITS},
                }
                for visit in visits
            ],
        }

    def treatments_with_hpc(self, call: Call, _format: str) -> Json:
        card, _data, insurance = call.holder()
        visits = call.tx.visits(card.card_id)[:CARD_RECORDS_SHOWN]
        return {
            "criticalIllnesses": _critical_illnesses(insurance, with_code=True),
            "treatments": [
                {
                    "treatDateTime": visit.treatment_date_time,
                    **{name: (visit.codes or {}).get(name, "") for name in ("mainCode", *SUB_CODES[:3])},
                }
                for visit in visits
            ],
        }

    def critical_illnesses(self, call: Call, _format: str) -> Json:
        return {"criticalIllnesses": _critical_illnesses(call.holder()[2], with_code=True)}

    def query_prescriptions(self, call: Call, _: None) -> Json:
        card = call.holder()[0]
        prescriptions = call.tx.prescriptions(card.card_id)[:PRESCRIPTIONS_SHOWN]
        return {"outpatientPrescriptions": [{name: p.item[name] for name in QUERY_FIELDS} for p in prescriptions]}

    # -- visits -------------------------------------------------------------------------------------------

    def next_sequence(self, call: Call, args: NextArgs) -> Json:
        card, data, _insurance = call.holder()
        validity = parse_roc_date(card.card_validity)
        if validity is None or validity < call.today:
            raise Refused(Code.CARD_EXPIRED, "the card's validity has passed: update the card (HcContent/Update)")
        if card.treatment_counter <= 0:
            raise Refused(Code.COUNTER_ZERO, "no visits left on the card: update the card (HcContent/Update)")
        if call.tx.signature_took_sequence(call.block.digest):
            raise Refused(Code.SIGNATURE_USED, "this signature already took a sequence number: sign again")
        hospital_id = call.block.hospital_id
        moment = call.now.replace(microsecond=0)
        while call.tx.visit(card.card_id, roc_date_time(moment)) is not None:  # one visit a card a second
            moment += datetime.timedelta(seconds=1)
        when = roc_date_time(moment)
        same_day = any(
            visit.hospital_id == hospital_id and visit.treatment_date_time[:7] == when[:7]
            for visit in call.tx.visits(card.card_id)
        )
        sequence = next_sequence(card.last_sequence)
        number = treatment_number(hospital_id, data.id_no, when)
        signed = visit_signed_bytes(
            when, sequence_text(sequence), hospital_id, call.block.sam_id, data.card_id, data.id_no, number
        )
        call.tx.add_visit(
            Visit(
                0,
                card.card_id,
                hospital_id,
                call.block.sam_id,
                when,
                sequence_text(sequence),
                args.treatment_item,
                args.baby_treatment,
                args.after_check,
                number,
                call.now_seconds,
                rolled_back=False,
            )
        )
        call.tx.update_card(
            CardRecord(
                card.card_id, card.profile, card.card_validity, card.treatment_counter - 1, last_sequence=sequence
            )
        )
        call.took_sequence = True
        return {
            "treatmentDateTime": when,
            "sequenceNumber": sequence_text(sequence),
            "hospitalId": hospital_id,
            "signature": _b64(self.signer.sign(signed)),
            "samId": call.block.sam_id,
            "isSameDay": same_day,
            "treatmentNumber": number,
        }

    def _own_visit(self, call: Call, treatment_date_time: str) -> Visit:
        """The card's visit at that date-time, taken at this hospital and not rolled back; 3208 or 3211."""
        visit = call.tx.visit(call.holder()[0].card_id, treatment_date_time)
        if visit is None or visit.rolled_back:
            raise Refused(Code.NO_SUCH_VISIT, "the card has no visit at that treatmentDateTime")
        if visit.hospital_id != call.block.hospital_id:
            raise Refused(Code.OTHER_HOSPITAL, "the visit was taken at another hospital")
        return visit

    def rollback(self, call: Call, treatment_date_time: str) -> Json:
        card = call.holder()[0]
        visit = call.tx.visit(card.card_id, treatment_date_time)
        if visit is None:
            raise Refused(Code.NO_SUCH_VISIT, "the card has no visit at that treatmentDateTime")
        if visit.hospital_id != call.block.hospital_id:
            raise Refused(Code.OTHER_HOSPITAL, "the visit was taken at another hospital")
        if visit.rolled_back:
            raise Refused(Code.ROLLED_BACK_ALREADY, "the visit was rolled back already")
        if not visit.treatment_item.isdigit():
            raise Refused(Code.ROLLBACK_NOT_NUMERIC, "only a visit of a numeric treatmentItem can be rolled back")
        if call.now_seconds - visit.taken_at > ROLLBACK_WINDOW_SECONDS:
            raise Refused(Code.ROLLBACK_TOO_LATE, "the visit was taken more than 24 hours ago")
        call.tx.roll_back(visit.visit_id)
        counter = min(card.treatment_counter + 1, TREATMENT_COUNTER_FULL)
        call.tx.update_card(CardRecord(card.card_id, card.profile, card.card_validity, counter, card.last_sequence))
        return {}

    def treatment_number_card(self, call: Call, treatment_date_time: str) -> Json:
        return {"treatmentNumber": self._own_visit(call, treatment_date_time).treatment_number}

    def treatment_number_no_card(self, call: Call, patient_id: str) -> Json:
        if person(patient_id) is None:
            raise Refused(Code.NOT_INSURED, "patientId is not a person the bench insures")
        when = roc_date_time(call.now)
        return {
            "treatmentDateTime": when,
            "hospitalId": call.block.hospital_id,
            "treatmentNumber": treatment_number(call.block.hospital_id, patient_id, when),
        }

    def write_code_fee(self, call: Call, args: CodeFeeArgs) -> Json:
        visit = self._own_visit(call, args.treatment_date_time)
        if visit.codes is not None:
            raise Refused(Code.CODES_WRITTEN, "this visit's codes and fees are written already")
        call.tx.write_codes_and_fees(visit.visit_id, args.codes, args.fees)
        return {}

    def write_prescriptions(self, call: Call, args: PrescriptionArgs) -> Json:
        visit = self._own_visit(call, args.treatment_date_time)
        _card, data, _insurance = call.holder()
        signatures = []
        for item in args.items:
            signed = prescription_signed_bytes(
                visit.hospital_id, data.card_id, data.id_no, visit.treatment_date_time, item
            )
            signature = self.signer.sign(signed)
            call.tx.add_prescription(Prescription(visit.visit_id, item, signature))
            signatures.append(signature)
        return {
            "signatureItems": [_b64(signature) for signature in signatures],
            "hexSignatureItems": [signature.hex().upper() for signature in signatures],
        }

    def update_card(self, call: Call, _: None) -> Json:
        card = call.holder()[0]
        renewed = roc_date(call.today + VALIDITY_RENEWAL)
        validity = max(card.card_validity, renewed)  # ROC yyyMMdd compares as text
        call.tx.update_card(
            CardRecord(card.card_id, card.profile, validity, TREATMENT_COUNTER_FULL, card.last_sequence)
        )
        return {}

    # -- tele-medicine -----------------------------------------------------------------------------------

    def request_token(self, call: Call, patient_id: str) -> Json:
        """An access token for that person's consent; on the bench the person consents at once."""
        profile = person(patient_id)
        if profile is None:
            raise Refused(Code.NOT_INSURED, "patientId is not a person the bench insures")
        token = secrets.token_urlsafe(32)
        expires_at = call.now_seconds + ACCESS_TOKEN_LIFETIME_SECONDS
        call.tx.add_access_token(_digest(token), AccessToken(profile.data.card_id, call.block.hospital_id, expires_at))
        return {"accessToken": token}

    def response_token(self, call: Call, access_token: str) -> Json:
        """The consenting person's virtual card token (docs/virtual-hc-token.md), once per access token."""
        digest = _digest(access_token)
        grant = call.tx.access_token(digest)
        if grant is None:
            raise Refused(Code.ACCESS_TOKEN_UNKNOWN, "no such accessToken (or it was used)")
        if grant.hospital_id != call.block.hospital_id:
            raise Refused(Code.OTHER_HOSPITAL, "the accessToken was requested by another hospital")
        if grant.expires_at <= call.now_seconds:
            raise Refused(Code.ACCESS_TOKEN_EXPIRED, "the accessToken has expired")
        call.tx.drop_access_token(digest)
        card = call.tx.card(grant.card_id)
        if card is None:
            raise LookupError("an access token for a card the twin does not know")
        issued_at = int(call.now_seconds)
        token = issue_token(
            self.issuer_key,
            token_id=new_token_id(),
            card=card_of_profile(card.profile),
            hospital_id=call.block.hospital_id,
            issued_at=issued_at,
            expires_at=issued_at + DEFAULT_TOKEN_LIFETIME_SECONDS,
            max_uses=DEFAULT_TOKEN_MAX_USES,
        )
        return {"virtualCardToken": token}


def _digest(token: str) -> bytes:
    """What the twin keeps of an access token: its SHA-256."""
    return hashlib.sha256(token.encode("ascii")).digest()
