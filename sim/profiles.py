"""The bench's card profiles: who is on each virtual card.

The names and the data of the profiles listed in shared/design/sim-control.md
are a contract (HIS developers' tests rely on them): change them only with that
document. More profiles are welcome; each is checked when this module loads, so
a profile that could not be written onto a card fails at once, not mid-test.
A health card profile also holds what the NHI knows of its holder beyond the
card (`InsuranceData`), which the bench's web-API twin answers
(docs/web-api-twin.md lists it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sim.cards.base import VirtualCard

_ROC_DATE = re.compile(r"^\d{7}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _big5_fits(text: str, length: int) -> bool:
    try:
        return 0 < len(text.encode("big5")) <= length
    except UnicodeEncodeError:
        return False


@dataclass(frozen=True)
class HealthCardData:
    """A health card holder, in the API's formats (ROC `yyyMMdd` dates), which are also the card's."""

    card_id: str
    name: str
    id_no: str
    birthday: str
    sex: Literal["M", "F"]
    date_issue: str
    identity_status: Literal["1", "2", "3", "4", "8"]
    pin: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        problems = []
        if not (len(self.card_id) == 12 and self.card_id.isdigit()):
            problems.append("card_id is not 12 digits")
        if not _big5_fits(self.name, 20):
            problems.append("name is not 1 to 20 bytes of Big5")
        if not (len(self.id_no) == 10 and self.id_no.isascii() and self.id_no.isalnum()):
            problems.append("id_no is not 10 ASCII letters or digits")
        if not _ROC_DATE.match(self.birthday) or not _ROC_DATE.match(self.date_issue):
            problems.append("a date is not ROC yyyMMdd")
        if self.sex not in ("M", "F"):
            problems.append("sex is neither M nor F")
        if self.identity_status not in ("1", "2", "3", "4", "8"):
            problems.append("identity_status is not 1, 2, 3, 4 or 8")
        if self.pin is not None and not (4 <= len(self.pin) <= 6 and self.pin.isdigit()):
            problems.append("the PIN is not 4 to 6 digits")  # never the PIN itself
        if problems:
            raise ValueError(f"health card {self.card_id!r}: " + "; ".join(problems))


@dataclass(frozen=True)
class StaffCardData:
    """A staff card holder. `birthday` is kept in the API's `YYYY-MM-DD`; the card stores `YYYYMMDD`.

    `certificate` says how the bench PKI issues this card's certificate
    (sim.pki): by the HCA test issuing CA and valid, expired, or revoked, or by
    an untrusted root.
    """

    card_id: str
    id_no: str
    c_name: str
    e_name: str
    birthday: str
    card_type: Literal[1, 2]
    pin: str = field(repr=False)
    puk: str = field(repr=False)
    pin_tries_left: int = 3
    puk_tries_left: int = 10
    certificate: Literal["valid", "expired", "revoked", "untrusted"] = "valid"

    def __post_init__(self) -> None:
        problems = []
        if not (len(self.card_id) == 12 and self.card_id.isdigit()):
            problems.append("card_id is not 12 digits")
        if not (len(self.id_no) == 10 and self.id_no.isascii() and self.id_no.isalnum()):
            problems.append("id_no is not 10 ASCII letters or digits")
        if not _big5_fits(self.c_name, 20):
            problems.append("c_name is not 1 to 20 bytes of Big5")
        if not (self.e_name.isascii() and len(self.e_name) <= 20 and "\x00" not in self.e_name):
            problems.append("e_name is not at most 20 ASCII characters")
        if not _ISO_DATE.match(self.birthday):
            problems.append("birthday is not YYYY-MM-DD")
        if self.card_type not in (1, 2):
            problems.append("card_type is neither 1 nor 2")
        if not (4 <= len(self.pin) <= 8 and self.pin.isdigit()):
            problems.append("the PIN is not 4 to 8 digits")
        if not (len(self.puk) == 8 and self.puk.isdigit()):
            problems.append("the PUK is not 8 digits")
        if not (0 <= self.pin_tries_left <= 3 and 0 <= self.puk_tries_left <= 10):
            problems.append("a retry counter is out of range")
        if self.certificate not in ("valid", "expired", "revoked", "untrusted"):
            problems.append("certificate is not valid, expired, revoked or untrusted")
        if problems:
            raise ValueError(f"staff card {self.card_id!r}: " + "; ".join(problems))


@dataclass(frozen=True)
class CriticalIllness:
    """A critical illness certificate (重大傷病) the NHI holds for a person: ICD-10 code and ROC validity dates."""

    ci_code: str
    validity_start: str
    validity_end: str


@dataclass(frozen=True)
class InsuranceData:
    """What the NHI (on the bench: its web-API twin, docs/web-api-twin.md) answers about a health card holder
    beyond the card's public data: the insurance fields of `BasicData/Register`, the emergency phone and the
    critical illnesses. `card_validity` and `treatment_counter` are the start values the twin renews.

    Apart from `HealthCardData`, whose fields are the card's own (and a contract: sim-control.md).
    """

    card_validity: str
    treatment_counter: int
    emergency_tel: str = ""
    insurer_code: str = "01"
    critical_illnesses: tuple[CriticalIllness, ...] = ()
    newborn_birthday: str = ""
    newborn_baby: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not _ROC_DATE.match(self.card_validity):
            problems.append("card_validity is not ROC yyyMMdd")
        if not 0 <= self.treatment_counter <= 6:
            problems.append("treatment_counter is not 0 to 6")
        if not (len(self.emergency_tel) <= 14 and self.emergency_tel.isascii() and self.emergency_tel.isprintable()):
            problems.append("emergency_tel is not at most 14 printable ASCII characters")
        if not (len(self.insurer_code) == 2 and self.insurer_code.isdigit()):
            problems.append("insurer_code is not 2 digits")
        for illness in self.critical_illnesses:
            if not (1 <= len(illness.ci_code) <= 9 and illness.ci_code.isascii() and illness.ci_code.isalnum()):
                problems.append("a critical illness code is not 1 to 9 ASCII letters or digits")
            if not _ROC_DATE.match(illness.validity_start) or not _ROC_DATE.match(illness.validity_end):
                problems.append("a critical illness date is not ROC yyyMMdd")
        if self.newborn_birthday and not _ROC_DATE.match(self.newborn_birthday):
            problems.append("newborn_birthday is neither empty nor ROC yyyMMdd")
        if self.newborn_baby not in ("", "1", "2", "3", "4", "5", "6", "7", "8", "9"):
            problems.append("newborn_baby is neither empty nor one digit")
        if problems:
            raise ValueError("insurance data: " + "; ".join(problems))


@dataclass(frozen=True)
class Profile:
    name: str
    kind: Literal["hc", "hpc"]
    description: str
    data: HealthCardData | StaffCardData
    insurance: InsuranceData | None = None
    """A health card holder's insurance data (required for `hc`, absent for `hpc`)."""

    def __post_init__(self) -> None:
        expected = HealthCardData if self.kind == "hc" else StaffCardData
        if self.kind not in ("hc", "hpc") or not isinstance(self.data, expected):
            raise ValueError(f"profile {self.name!r}: kind and data do not match")
        if (self.kind == "hc") != (self.insurance is not None):
            raise ValueError(f"profile {self.name!r}: a health card has insurance data, a staff card none")


_STAFF_PUK = "12345678"
_FAR_VALIDITY = "1391231"
"""2050-12-31: a card valid for as long as any bench will run."""

_ALL = [
    Profile(
        "hc-basic",
        "hc",
        "Health card with no PIN, identity status 3 (general); the spec's sample person.",
        HealthCardData(
            card_id="900000000711",
            name="測試資料",
            id_no="R88855084A",
            birthday="0741201",
            sex="F",
            date_issue="1070101",
            identity_status="3",
        ),
        InsuranceData(card_validity=_FAR_VALIDITY, treatment_counter=6, emergency_tel="0912345678"),
    ),
    Profile(
        "hc-pin",
        "hc",
        "Health card with PIN 1234 set, identity status 3.",
        HealthCardData(
            card_id="900000000728",
            name="林測試",
            id_no="A223456781",
            birthday="0800315",
            sex="F",
            date_issue="1090801",
            identity_status="3",
            pin="1234",
        ),
        InsuranceData(
            card_validity=_FAR_VALIDITY,
            treatment_counter=6,
            emergency_tel="0223456789",
            newborn_birthday="1140301",
            newborn_baby="1",
        ),
    ),
    Profile(
        "hc-veteran",
        "hc",
        "Health card of a veteran (identity status 2), no PIN.",
        HealthCardData(
            card_id="900000000735",
            name="陳測試",
            id_no="F129876548",
            birthday="0370615",
            sex="M",
            date_issue="1080301",
            identity_status="2",
        ),
        InsuranceData(
            card_validity=_FAR_VALIDITY,
            treatment_counter=5,
            emergency_tel="0229876543",
            critical_illnesses=(CriticalIllness("N185", "1100101", "1191231"),),
        ),
    ),
    Profile(
        "hc-expired",
        "hc",
        "Health card whose validity (cardValidity 1121231) has passed: the web-API twin refuses a sequence "
        "number (3201) until HcContent/Update renews it.",
        HealthCardData(
            card_id="900000000742",
            name="王測試",
            id_no="D120394856",
            birthday="0650720",
            sex="M",
            date_issue="1050501",
            identity_status="3",
        ),
        InsuranceData(card_validity="1121231", treatment_counter=6, emergency_tel="0287654321"),
    ),
    Profile(
        "hc-counter-zero",
        "hc",
        "Health card with no visits left (treatmentCounter 0): the web-API twin refuses a sequence number (3213) "
        "until HcContent/Update renews it.",
        HealthCardData(
            card_id="900000000759",
            name="張測試",
            id_no="G228173649",
            birthday="0920101",
            sex="F",
            date_issue="1100601",
            identity_status="3",
        ),
        InsuranceData(card_validity=_FAR_VALIDITY, treatment_counter=0, emergency_tel="0276543210"),
    ),
    Profile(
        "hpc-doctor",
        "hpc",
        "Doctor card (type 1), PIN 000000, certificate valid; the spec's sample person.",
        StaffCardData(
            card_id="100000291508",
            id_no="E123456789",
            c_name="測試人員4",
            e_name="",
            birthday="1979-01-01",
            card_type=1,
            pin="000000",
            puk=_STAFF_PUK,
        ),
    ),
    Profile(
        "hpc-nurse",
        "hpc",
        "Other staff card (type 2), PIN 000000, certificate valid.",
        StaffCardData(
            card_id="100000291515",
            id_no="B287654326",
            c_name="測試人員5",
            e_name="TEST,NURSE",
            birthday="1985-03-15",
            card_type=2,
            pin="000000",
            puk=_STAFF_PUK,
        ),
    ),
    Profile(
        "hpc-blocked",
        "hpc",
        "Doctor card whose PIN retry counter is at 0 (PIN 000000, unblock with the PUK).",
        StaffCardData(
            card_id="100000291522",
            id_no="H124567895",
            c_name="測試人員6",
            e_name="",
            birthday="1970-07-07",
            card_type=1,
            pin="000000",
            puk=_STAFF_PUK,
            pin_tries_left=0,
        ),
    ),
    Profile(
        "hpc-expired",
        "hpc",
        "Doctor card, PIN 000000, certificate past its validity.",
        StaffCardData(
            card_id="100000291539",
            id_no="K221133444",
            c_name="測試人員7",
            e_name="",
            birthday="1982-11-30",
            card_type=1,
            pin="000000",
            puk=_STAFF_PUK,
            certificate="expired",
        ),
    ),
    Profile(
        "hpc-revoked",
        "hpc",
        "Doctor card, PIN 000000, certificate on the test CRL.",
        StaffCardData(
            card_id="100000291546",
            id_no="N123450984",
            c_name="測試人員8",
            e_name="",
            birthday="1975-05-05",
            card_type=1,
            pin="000000",
            puk=_STAFF_PUK,
            certificate="revoked",
        ),
    ),
    Profile(
        "hpc-untrusted",
        "hpc",
        "Other staff card, PIN 000000, certificate from an issuer outside the trust store.",
        StaffCardData(
            card_id="100000291553",
            id_no="Q220031418",
            c_name="測試人員9",
            e_name="",
            birthday="1990-02-28",
            card_type=2,
            pin="000000",
            puk=_STAFF_PUK,
            certificate="untrusted",
        ),
    ),
]

PROFILES: dict[str, Profile] = {profile.name: profile for profile in _ALL}

# Card numbers key the cards' authentication keys: two profiles must never share one.
if len({p.data.card_id for p in _ALL}) != len(_ALL) or len(PROFILES) != len(_ALL):
    raise ValueError("bench profiles must have distinct names and card numbers")


def make_card(profile_name: str) -> VirtualCard:
    """A fresh card each time, as if a new one were put in the reader: no state is shared between calls.

    Raises KeyError for an unknown profile (the control API turns it into a 404).
    """
    profile = PROFILES[profile_name]
    # Imported here: the staff card needs sim.pki, which reads these profiles.
    if profile.kind == "hc":
        from sim.cards.health_card import HealthCard

        return HealthCard(profile)
    from sim.cards.staff_card import StaffCard

    return StaffCard(profile)
