"""The DC simulator's request handling (sim.dc.service) without sockets: docs/dc-protocol.md, rule by rule."""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from broker.credentials.cloud_sam_file import CloudSamFile, parse_cloud_sam_file
from broker.credentials.virtual_hc_token import load_issuers, verify_token
from broker.dc.answers import DC_ERRORS
from contract.status_codes import StatusCode
from sim.cards.card_keys import card_key, external_authenticate_cryptogram, internal_authenticate_response
from sim.dc import BENCH_HOSPITAL_ID, BENCH_SAM_ID, prepare
from sim.dc.sam_files import SamCa
from sim.dc.service import DROP, DcService, Drop, Reply, Request
from sim.dc.state import DcState, StateDir
from sim.dc.vhc_issuer import VhcIssuer
from sim.pki import bench_pki
from sim.profiles import make_card
from sim.virtual_hc import card_of_profile, make_issuer
from workers.apdu import GET_CHALLENGE, HC_AID, external_authenticate, internal_authenticate, parse_response, select_aid

SAM = "901000000001"
HOSPITAL = "1234567890"
CARD = "900000000711"  # the bench's hc-basic card
TAIPEI_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")
START = datetime.datetime(2025, 3, 1, 4, 0, 0, 250000, tzinfo=datetime.UTC)


class WallClock:
    """A real-time stand-in the tests hold still: only the DC's own offset moves time."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime.datetime:
        return self.now


@dataclass
class Dc:
    service: DcService
    state: DcState
    wall: WallClock
    layout: StateDir

    def call(
        self, method: str, path: str, body: object = None, session: str | None = None, raw: bytes | None = None
    ) -> Reply:
        headers = {"Authorization": f"Bearer {session}"} if session is not None else {}
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        result = self.service.handle(Request(method, path, headers, data))
        assert isinstance(result, Reply), result
        return result

    def issue(
        self, sam_id: str = SAM, contract: str = "active", hospital_id: str = HOSPITAL, **extra: str
    ) -> CloudSamFile:
        reply = self.call(
            "POST", "/sim/v1/CloudSam", {"samId": sam_id, "hospitalId": hospital_id, "contract": contract, **extra}
        )
        assert reply.status == 200, reply
        return parse_cloud_sam_file(base64.b64decode(str(reply.body["cloudSamContext"])))

    def nonce(self, sam_id: str = SAM) -> bytes:
        reply = self.call("POST", "/dc/v1/Sam/Challenge", {"samId": sam_id})
        assert reply.status == 200, reply
        nonce = base64.b64decode(str(reply.body["nonce"]))
        assert len(nonce) == 16
        return nonce

    def login(self, sam_file: CloudSamFile, nonce: bytes | None = None, signature: bytes | None = None) -> Reply:
        nonce = self.nonce(sam_file.sam_id) if nonce is None else nonce
        signature = sam_file.login_signature(nonce) if signature is None else signature
        body = {"samId": sam_file.sam_id, "nonce": b64(nonce), "signature": b64(signature)}
        return self.call("POST", "/dc/v1/Sam/Login", body)

    def session(self, sam_file: CloudSamFile) -> str:
        reply = self.login(sam_file)
        assert reply.status == 200, reply
        return str(reply.body["session"])


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def refused(reply: Reply, status: int, error: str) -> bool:
    return reply.status == status and reply.body.get("error") == error and isinstance(reply.body.get("message"), str)


@pytest.fixture(scope="module")
def vhc_issuer() -> VhcIssuer:
    """One issuer for the module: an RSA key takes a while to make."""
    key, certificate = make_issuer()
    return VhcIssuer(certificate, key)


@pytest.fixture
def dc(tmp_path: Path, vhc_issuer: VhcIssuer) -> Iterator[Dc]:
    layout = StateDir(tmp_path / "dc")
    layout.ensure()
    wall = WallClock()
    state = DcState(layout.database, wall_clock=wall)
    try:
        yield Dc(DcService(state, SamCa.ensure(layout), session_ttl=3600, vhc_issuer=vhc_issuer), state, wall, layout)
    finally:
        state.close()


# -- login -----------------------------------------------------------------


def test_a_sam_logs_in_and_gets_a_session_with_its_hospital(dc: Dc) -> None:
    sam_file = dc.issue()
    assert (sam_file.sam_id, sam_file.hospital_id, sam_file.hospital_name, sam_file.hospital_short_name) == (
        SAM,
        HOSPITAL,
        "測試機構",
        "測試機構",
    )
    reply = dc.login(sam_file)
    assert reply.status == 200
    assert reply.body["hospitalId"] == HOSPITAL
    assert reply.body["hospitalName"] == reply.body["hospitalShortName"] == "測試機構"
    assert len(str(reply.body["session"])) >= 43  # 32 random bytes, urlsafe base64
    assert reply.body["expiresAt"] == "2025-03-01T13:00:00+08:00"  # START + 1 h, in +08:00, whole seconds


def test_the_session_token_itself_is_never_stored(dc: Dc) -> None:
    session = dc.session(dc.issue())
    stored = b"".join(path.read_bytes() for path in dc.layout.root.glob("dc.db*"))  # the WAL included
    assert session.encode() not in stored


@pytest.mark.parametrize(
    ("contract", "error"),
    [("expired", "contractExpired"), ("suspended", "hospitalSuspended"), ("revoked", "samRevoked")],
)
def test_the_contract_state_refuses_the_login(dc: Dc, contract: str, error: str) -> None:
    assert refused(dc.login(dc.issue(contract=contract)), 403, error)


def test_an_unknown_sam_gets_no_nonce_and_no_session(dc: Dc) -> None:
    assert refused(dc.call("POST", "/dc/v1/Sam/Challenge", {"samId": "999999999999"}), 404, "unknownSam")
    body = {"samId": "999999999999", "nonce": b64(bytes(16)), "signature": b64(bytes(256))}
    assert refused(dc.call("POST", "/dc/v1/Sam/Login", body), 404, "unknownSam")


def test_a_wrong_signature_fails_authentication(dc: Dc) -> None:
    sam_file = dc.issue()
    other = dc.issue(sam_id="901000000002")
    nonce = dc.nonce()
    assert refused(
        dc.login(sam_file, nonce, other.sign(b"nhi-console-dc-login\x00" + SAM.encode() + nonce)),
        403,
        "authenticationFailed",
    )
    nonce = dc.nonce()
    assert refused(dc.login(sam_file, nonce, sam_file.login_signature(bytes(16))), 403, "authenticationFailed")


def test_a_nonce_serves_one_login_only(dc: Dc) -> None:
    sam_file = dc.issue()
    nonce = dc.nonce()
    assert dc.login(sam_file, nonce).status == 200
    assert refused(dc.login(sam_file, nonce), 403, "authenticationFailed")


def test_a_failed_attempt_uses_the_nonce_up_too(dc: Dc) -> None:
    sam_file = dc.issue()
    nonce = dc.nonce()
    assert refused(dc.login(sam_file, nonce, bytes(256)), 403, "authenticationFailed")
    assert refused(dc.login(sam_file, nonce), 403, "authenticationFailed")


def test_a_nonce_is_for_the_sam_that_asked_and_for_sixty_seconds(dc: Dc) -> None:
    sam_file = dc.issue()
    other = dc.issue(sam_id="901000000002")
    assert refused(dc.login(sam_file, dc.nonce(other.sam_id)), 403, "authenticationFailed")
    nonce = dc.nonce()
    dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 61})
    assert refused(dc.login(sam_file, nonce), 403, "authenticationFailed")
    nonce = dc.nonce()
    dc.wall.now += datetime.timedelta(seconds=59)  # real time counts as much as the DC's offset
    assert dc.login(sam_file, nonce).status == 200


def test_authentication_is_checked_before_revocation_and_the_contract(dc: Dc) -> None:
    sam_file = dc.issue(contract="revoked")
    assert refused(dc.login(sam_file, signature=bytes(256)), 403, "authenticationFailed")
    sam_file = dc.issue(contract="expired")
    assert refused(dc.login(sam_file, signature=bytes(256)), 403, "authenticationFailed")


def test_the_contract_is_checked_against_the_dcs_date_in_taipei(dc: Dc) -> None:
    sam_file = dc.issue()
    hospital = dc.state.hospital(HOSPITAL)
    assert hospital is not None and hospital.contract_end == datetime.date(2099, 12, 31)
    # 2099-12-31 16:30 UTC is already 2100-01-01 in Taipei: the contract no longer covers "today".
    dc.wall.now = datetime.datetime(2099, 12, 31, 16, 30, tzinfo=datetime.UTC)
    assert refused(dc.login(sam_file), 403, "contractExpired")
    dc.wall.now = datetime.datetime(2099, 12, 31, 15, 30, tzinfo=datetime.UTC)
    assert dc.login(sam_file).status == 200


def test_reissuing_a_sam_replaces_its_key_and_ends_its_sessions(dc: Dc) -> None:
    old = dc.issue(hospitalName="甲診所")
    session = dc.session(old)
    new = dc.issue(contract="suspended")  # no name given: the hospital keeps its name
    assert new.hospital_name == "甲診所"
    assert refused(dc.login(old), 403, "authenticationFailed")
    assert refused(dc.call("GET", "/dc/v1/Time", session=session), 401, "sessionExpired")
    assert refused(dc.login(new), 403, "hospitalSuspended")
    renamed = dc.issue(hospitalName="乙診所")
    reply = dc.login(renamed)
    assert reply.status == 200 and reply.body["hospitalName"] == reply.body["hospitalShortName"] == "乙診所"


# -- sessions and the clock ---------------------------------------------------


def test_time_needs_a_live_session(dc: Dc) -> None:
    session = dc.session(dc.issue())
    reply = dc.call("GET", "/dc/v1/Time", session=session)
    assert reply.status == 200 and reply.body == {"serverTime": "2025-03-01T12:00:00+08:00"}
    assert refused(dc.call("GET", "/dc/v1/Time"), 401, "sessionExpired")
    assert refused(dc.call("GET", "/dc/v1/Time", session="not-a-session"), 401, "sessionExpired")
    basic = dc.service.handle(Request("GET", "/dc/v1/Time", {"authorization": f"Basic {session}"}))
    assert isinstance(basic, Reply) and refused(basic, 401, "sessionExpired")
    lower = dc.service.handle(Request("GET", "/dc/v1/Time", {"authorization": f"bearer {session}"}))
    assert isinstance(lower, Reply) and lower.status == 200


def test_a_session_expires_by_the_dcs_clock(dc: Dc) -> None:
    session = dc.session(dc.issue())
    reply = dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 3599})
    assert reply.status == 200 and reply.body == {"serverTime": "2025-03-01T12:59:59+08:00"}
    time = dc.call("GET", "/dc/v1/Time", session=session)
    assert time.status == 200 and TAIPEI_TIME.match(str(time.body["serverTime"]))
    assert time.body["serverTime"] == "2025-03-01T12:59:59+08:00"
    dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 1})
    assert refused(dc.call("GET", "/dc/v1/Time", session=session), 401, "sessionExpired")
    assert dc.login(dc.issue(sam_id="901000000002")).body["expiresAt"] == "2025-03-01T14:00:00+08:00"


def test_the_session_ttl_is_the_services(dc: Dc) -> None:
    short = DcService(dc.state, dc.service.sam_ca, session_ttl=60)
    sam_file = dc.issue()
    nonce = dc.nonce()
    body = {"samId": SAM, "nonce": b64(nonce), "signature": b64(sam_file.login_signature(nonce))}
    reply = short.handle(Request("POST", "/dc/v1/Sam/Login", {}, json.dumps(body).encode()))
    assert isinstance(reply, Reply) and reply.body["expiresAt"] == "2025-03-01T12:01:00+08:00"


# -- cards ---------------------------------------------------------------------


def test_a_card_authenticates_against_the_bench_card_keys(dc: Dc) -> None:
    session = dc.session(dc.issue())
    card_challenge = bytes.fromhex("0102030405060708")
    reply = dc.call(
        "POST", "/dc/v1/Cards/Challenge", {"cardNumber": CARD, "cardChallenge": b64(card_challenge)}, session
    )
    assert reply.status == 200 and set(reply.body) == {"authId", "cryptogram", "hostChallenge"}
    key = card_key(CARD)
    assert base64.b64decode(str(reply.body["cryptogram"])) == external_authenticate_cryptogram(key, card_challenge)
    host_challenge = base64.b64decode(str(reply.body["hostChallenge"]))
    assert len(host_challenge) == 8
    stored = b"".join(path.read_bytes() for path in dc.layout.root.glob("dc.db*"))
    assert CARD.encode() not in stored  # the pending authentication keeps the expected answer, not the card
    answer = internal_authenticate_response(key, host_challenge)
    verify = {"authId": reply.body["authId"], "cardResponse": b64(answer)}
    assert dc.call("POST", "/dc/v1/Cards/Verify", verify, session).body == {"authenticated": True}
    assert refused(dc.call("POST", "/dc/v1/Cards/Verify", verify, session), 403, "authenticationFailed")  # used


def test_the_bench_health_card_and_the_dc_authenticate_each_other(dc: Dc) -> None:
    """The whole exchange with a real virtual card (sim.profiles), the DC in the SAM's place."""
    session = dc.session(dc.issue())
    card = make_card("hc-basic")
    assert parse_response(card.respond(select_aid(HC_AID))).ok
    challenge = parse_response(card.respond(GET_CHALLENGE))
    reply = dc.call(
        "POST", "/dc/v1/Cards/Challenge", {"cardNumber": CARD, "cardChallenge": b64(challenge.data)}, session
    )
    assert parse_response(card.respond(external_authenticate(base64.b64decode(str(reply.body["cryptogram"]))))).ok
    answer = parse_response(card.respond(internal_authenticate(base64.b64decode(str(reply.body["hostChallenge"])))))
    assert answer.ok
    verify = {"authId": reply.body["authId"], "cardResponse": b64(answer.data)}
    assert dc.call("POST", "/dc/v1/Cards/Verify", verify, session).body == {"authenticated": True}


def test_a_wrong_card_answer_fails_and_uses_up_the_authentication(dc: Dc) -> None:
    session = dc.session(dc.issue())
    reply = dc.call("POST", "/dc/v1/Cards/Challenge", {"cardNumber": CARD, "cardChallenge": b64(bytes(8))}, session)
    host_challenge = base64.b64decode(str(reply.body["hostChallenge"]))
    wrong = internal_authenticate_response(card_key("900000000728"), host_challenge)
    verify = {"authId": reply.body["authId"], "cardResponse": b64(wrong)}
    assert refused(dc.call("POST", "/dc/v1/Cards/Verify", verify, session), 403, "authenticationFailed")
    verify["cardResponse"] = b64(internal_authenticate_response(card_key(CARD), host_challenge))
    assert refused(dc.call("POST", "/dc/v1/Cards/Verify", verify, session), 403, "authenticationFailed")


def test_a_card_authentication_lasts_sixty_seconds_and_belongs_to_its_sam(dc: Dc) -> None:
    sam_file = dc.issue()
    session = dc.session(sam_file)
    other_session = dc.session(dc.issue(sam_id="901000000002"))

    def start() -> dict[str, str]:
        reply = dc.call("POST", "/dc/v1/Cards/Challenge", {"cardNumber": CARD, "cardChallenge": b64(bytes(8))}, session)
        answer = internal_authenticate_response(card_key(CARD), base64.b64decode(str(reply.body["hostChallenge"])))
        return {"authId": str(reply.body["authId"]), "cardResponse": b64(answer)}

    verify = start()
    assert refused(dc.call("POST", "/dc/v1/Cards/Verify", verify, other_session), 403, "authenticationFailed")
    verify = start()
    dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 60})
    assert refused(dc.call("POST", "/dc/v1/Cards/Verify", verify, session), 403, "authenticationFailed")
    verify = start()
    second_session = dc.session(sam_file)  # the console logged in again (after a 1703): same SAM, same authId
    assert dc.call("POST", "/dc/v1/Cards/Verify", verify, second_session).body == {"authenticated": True}


def test_card_calls_need_a_session(dc: Dc) -> None:
    body = {"cardNumber": CARD, "cardChallenge": b64(bytes(8))}
    assert refused(dc.call("POST", "/dc/v1/Cards/Challenge", body), 401, "sessionExpired")
    assert refused(
        dc.call("POST", "/dc/v1/Cards/Verify", {"authId": "x", "cardResponse": b64(bytes(32))}), 401, "sessionExpired"
    )


# -- virtual health cards ------------------------------------------------------

HC_CARD = card_of_profile("hc-basic")
LATER = int(START.timestamp()) + 86400
"""An expiry a day after the tests' DC clock starts."""


def console_code(reply: Reply) -> StatusCode:
    """The console code the client's table (broker.dc.answers) makes of a refusal."""
    return DC_ERRORS[(reply.status, str(reply.body["error"]))]


def verify(dc: Dc, session: str, token_id: str, max_uses: int = 3, expires_at: int = LATER) -> Reply:
    body = {"tokenId": token_id, "maxUses": max_uses, "expiresAt": expires_at}
    return dc.call("POST", "/dc/v1/VirtualHc/Verify", body, session)


def export(dc: Dc, session: str, token_id: str, expires_at: int = LATER, max_uses: int = 3) -> Reply:
    body = {"tokenId": token_id, "card": HC_CARD, "expiresAt": expires_at, "maxUses": max_uses}
    return dc.call("POST", "/dc/v1/VirtualHc/Export", body, session)


def import_(dc: Dc, session: str, transfer_token: str) -> Reply:
    return dc.call("POST", "/dc/v1/VirtualHc/Import", {"transferToken": transfer_token}, session)


def transfer_token(dc: Dc, session: str, token_id: str, **kwargs: int) -> str:
    reply = export(dc, session, token_id, **kwargs)
    assert reply.status == 200 and set(reply.body) == {"transferToken"}, reply
    return str(reply.body["transferToken"])


def test_verifications_are_counted_up_to_max_uses(dc: Dc) -> None:
    session = dc.session(dc.issue())
    assert [verify(dc, session, "tok-a").body for _ in range(3)] == [{"uses": 1}, {"uses": 2}, {"uses": 3}]
    for _ in range(2):  # the 4th and every later one
        reply = verify(dc, session, "tok-a")
        assert refused(reply, 403, "verificationCountExceeded")
        assert console_code(reply) == StatusCode.VIRTUAL_HC_TOKEN_OVERUSED
    assert verify(dc, session, "tok-b", max_uses=1).body == {"uses": 1}  # counted per token id
    assert refused(verify(dc, session, "tok-b", max_uses=1), 403, "verificationCountExceeded")


def test_the_first_verification_fixes_the_maximum(dc: Dc) -> None:
    session = dc.session(dc.issue())
    assert verify(dc, session, "tok", max_uses=1).body == {"uses": 1}
    assert refused(verify(dc, session, "tok", max_uses=1000), 403, "verificationCountExceeded")


def test_the_count_belongs_to_the_token_not_the_session_or_the_sam(dc: Dc) -> None:
    first = dc.session(dc.issue())
    second = dc.session(dc.issue(sam_id="901000000002", hospital_id="99"))
    assert verify(dc, first, "tok", max_uses=2).body == {"uses": 1}
    assert verify(dc, second, "tok", max_uses=2).body == {"uses": 2}
    assert refused(verify(dc, first, "tok", max_uses=2), 403, "verificationCountExceeded")


def test_the_virtual_card_calls_need_a_session(dc: Dc) -> None:
    assert refused(verify(dc, "not-a-session", "tok"), 401, "sessionExpired")
    assert refused(export(dc, "not-a-session", "tok"), 401, "sessionExpired")
    assert refused(import_(dc, "not-a-session", "a.b"), 401, "sessionExpired")
    assert refused(dc.call("POST", "/dc/v1/RealHc/Notes", {"cardNumber": CARD}), 401, "sessionExpired")


def test_an_export_voids_the_token_id(dc: Dc) -> None:
    session = dc.session(dc.issue())
    assert verify(dc, session, "tok").status == 200
    token = transfer_token(dc, session, "tok")
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    transfer_id, secret = token.split(".")
    assert len(base64.urlsafe_b64decode(transfer_id + "==")) == 16 and len(base64.urlsafe_b64decode(secret + "=")) == 32
    reply = verify(dc, session, "tok")
    assert refused(reply, 410, "virtualCardVoid") and console_code(reply) == StatusCode.TRANSFER_DONE_OR_VOID
    again = export(dc, session, "tok")
    assert refused(again, 410, "virtualCardVoid") and console_code(again) == StatusCode.TRANSFER_DONE_OR_VOID
    assert transfer_token(dc, session, "never-verified")  # a token id the DC has not seen yet can be exported
    assert refused(verify(dc, session, "never-verified"), 410, "virtualCardVoid")
    stored = b"".join(path.read_bytes() for path in dc.layout.root.glob("dc.db*"))
    assert secret.encode() not in stored and token.encode() not in stored  # only the secret's SHA-256


def test_an_import_hands_the_card_over_under_a_new_token_id(dc: Dc) -> None:
    exporter = dc.session(dc.issue())
    importer = dc.session(dc.issue(sam_id="901000000002"))  # another SAM of the same hospital
    token = transfer_token(dc, exporter, "tok", expires_at=LATER, max_uses=5)
    reply = import_(dc, importer, token)
    assert reply.status == 200, reply
    assert set(reply.body) == {"tokenId", "card", "expiresAt", "maxUses"}
    assert reply.body["card"] == HC_CARD and reply.body["expiresAt"] == LATER and reply.body["maxUses"] == 5
    new_id = str(reply.body["tokenId"])
    assert new_id != "tok" and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", new_id)
    assert verify(dc, importer, new_id, max_uses=5).body == {"uses": 1}
    assert refused(verify(dc, importer, "tok"), 410, "virtualCardVoid")  # the old id stays void
    # ... and it can move on again, this time back to the first SAM.
    onward = transfer_token(dc, importer, new_id, expires_at=LATER, max_uses=5)
    assert refused(verify(dc, importer, new_id), 410, "virtualCardVoid")
    back = import_(dc, exporter, onward)
    assert back.status == 200 and back.body["card"] == HC_CARD and back.body["tokenId"] not in (new_id, "tok")


def test_the_imported_token_id_counts_from_zero_to_the_cards_maximum(dc: Dc) -> None:
    session = dc.session(dc.issue())
    token = transfer_token(dc, session, "tok", max_uses=2)
    new_id = str(import_(dc, session, token).body["tokenId"])
    assert verify(dc, session, new_id, max_uses=1000).body == {"uses": 1}  # the import fixed the maximum: 2
    assert verify(dc, session, new_id, max_uses=1000).body == {"uses": 2}
    assert refused(verify(dc, session, new_id, max_uses=1000), 403, "verificationCountExceeded")


def test_a_transfer_is_imported_once(dc: Dc) -> None:
    session = dc.session(dc.issue())
    token = transfer_token(dc, session, "tok")
    assert import_(dc, session, token).status == 200
    reply = import_(dc, session, token)
    assert refused(reply, 409, "transferUsed") and console_code(reply) == StatusCode.TRANSFER_USED_ELSEWHERE


def test_a_transfer_stays_in_its_hospital(dc: Dc) -> None:
    session = dc.session(dc.issue())
    stranger = dc.session(dc.issue(sam_id="901000000002", hospital_id="3501200000"))
    token = transfer_token(dc, session, "tok")
    reply = import_(dc, stranger, token)
    assert refused(reply, 403, "otherHospital") and console_code(reply) == StatusCode.TRANSFER_OTHER_HOSPITAL
    assert import_(dc, session, token).status == 200  # the refusal used nothing up


@pytest.mark.parametrize(
    "garble",
    [
        lambda token: token.split(".")[0] + "." + "A" * 43,  # the wrong secret
        lambda token: "A" * 22 + "." + token.split(".")[1],  # an unknown transfer id
        lambda token: token.split(".")[0],
        lambda token: token + ".x",
        lambda token: token.replace(".", ".."),
        lambda token: token + "=",
        lambda token: token + "\n",
        lambda token: "",
        lambda token: "not a token",
    ],
)
def test_an_unknown_or_garbled_transfer_is_unknown(dc: Dc, garble: Callable[[str], str]) -> None:
    session = dc.session(dc.issue())
    token = transfer_token(dc, session, "tok")
    reply = import_(dc, session, garble(token))
    assert refused(reply, 404, "unknownTransfer") and console_code(reply) == StatusCode.TRANSFER_NOT_FOUND
    assert token not in str(reply.body)
    assert import_(dc, session, token).status == 200  # a wrong guess used nothing up


def test_a_transfer_of_an_expired_card_is_void_by_the_dcs_clock(dc: Dc) -> None:
    session = dc.session(dc.issue())
    expires_at = int(START.timestamp()) + 120
    token = transfer_token(dc, session, "tok", expires_at=expires_at)
    dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 119})
    live = transfer_token(dc, session, "other", expires_at=expires_at)
    assert import_(dc, session, live).status == 200
    dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 1})
    session = dc.session(dc.issue())
    reply = import_(dc, session, token)
    assert refused(reply, 410, "transferVoid") and console_code(reply) == StatusCode.TRANSFER_DONE_OR_VOID


def test_card_notes_are_the_dcs_deterministic_text(dc: Dc) -> None:
    session = dc.session(dc.issue())
    reply = dc.call("POST", "/dc/v1/RealHc/Notes", {"cardNumber": CARD}, session)
    assert reply.status == 200 and set(reply.body) == {"notes"}
    notes = base64.b64decode(str(reply.body["notes"]), validate=True)
    assert notes == b"NHI-SIM-NOTES v1 900000000711 20250301"  # START is 12:00 in Taipei
    assert dc.call("POST", "/dc/v1/RealHc/Notes", {"cardNumber": CARD}, session).body == reply.body
    dc.wall.now = datetime.datetime(2025, 3, 1, 16, 0, tzinfo=datetime.UTC)  # already 2 March in Taipei
    session = dc.session(dc.issue())
    later = dc.call("POST", "/dc/v1/RealHc/Notes", {"cardNumber": "900000000728"}, session)
    assert base64.b64decode(str(later.body["notes"])) == b"NHI-SIM-NOTES v1 900000000728 20250302"


def test_faults_apply_to_the_virtual_card_and_notes_calls(dc: Dc) -> None:
    session = dc.session(dc.issue())
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1702, "count": 3})
    assert verify(dc, session, "tok").status == 503
    assert export(dc, session, "tok").status == 503
    assert dc.call("POST", "/dc/v1/RealHc/Notes", {"cardNumber": CARD}, session).status == 503
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1700, "count": 1})
    assert (
        dc.service.handle(Request("POST", "/dc/v1/VirtualHc/Import", {"Authorization": f"Bearer {session}"}, b"{}"))
        is DROP
    )
    assert verify(dc, session, "tok").body == {"uses": 1}  # the faulted calls changed nothing


# -- the bench's virtual card tokens ------------------------------------------------


def _issuer_key(vhc_issuer: VhcIssuer) -> rsa.RSAPublicKey:
    key = vhc_issuer.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def bench_token(dc: Dc, **body: object) -> Reply:
    return dc.call("POST", "/sim/v1/VirtualHc/Token", body)


def test_a_bench_token_is_signed_by_the_issuer_with_the_dcs_clock(dc: Dc, vhc_issuer: VhcIssuer) -> None:
    issuers = [_issuer_key(vhc_issuer)]
    now = int(START.timestamp())
    reply = bench_token(dc, profile="hc-basic")
    assert reply.status == 200 and set(reply.body) == {"token"}
    token = verify_token(str(reply.body["token"]), issuers=issuers, now=now)
    assert (token.card_id, token.name, token.id_no, token.birthday, token.sex, token.identity_status) == tuple(
        HC_CARD.values()
    )
    assert (token.hospital_id, token.issued_at, token.expires_at, token.max_uses) == (
        BENCH_HOSPITAL_ID,
        now,
        now + 600,
        3,
    )
    dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 3600})
    reply = bench_token(dc, profile="hc-veteran", expiresIn=60, maxUses=1000, hospitalId="3501200000")
    token = verify_token(str(reply.body["token"]), issuers=issuers, now=now + 3600)
    assert token.card_id == "900000000735" and token.hospital_id == "3501200000" and token.max_uses == 1000
    assert (token.issued_at, token.expires_at) == (now + 3600, now + 3660)
    assert bench_token(dc, profile="hc-basic").body["token"] != reply.body["token"]  # a new token id each time


def test_a_bench_tokens_id_is_counted_by_the_dc(dc: Dc, vhc_issuer: VhcIssuer) -> None:
    reply = bench_token(dc, profile="hc-pin", maxUses=1)
    token = verify_token(str(reply.body["token"]), issuers=[_issuer_key(vhc_issuer)], now=int(START.timestamp()))
    session = dc.session(dc.issue())
    assert verify(dc, session, token.token_id, token.max_uses, token.expires_at).body == {"uses": 1}
    assert refused(
        verify(dc, session, token.token_id, token.max_uses, token.expires_at), 403, "verificationCountExceeded"
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"profile": "hc-nobody"}, 404),
        ({"profile": "hpc-doctor"}, 400),  # a staff card has no virtual health card
        ({}, 400),
        ({"profile": 7}, 400),
        ({"profile": "hc-basic", "expiresIn": 0}, 400),
        ({"profile": "hc-basic", "expiresIn": 10 * 366 * 86400 + 1}, 400),
        ({"profile": "hc-basic", "expiresIn": "600"}, 400),
        ({"profile": "hc-basic", "maxUses": 0}, 400),
        ({"profile": "hc-basic", "maxUses": 1001}, 400),
        ({"profile": "hc-basic", "maxUses": True}, 400),
        ({"profile": "hc-basic", "hospitalId": "12-34"}, 400),
        ({"profile": "hc-basic", "hospitalId": "12345678901"}, 400),
        ({"profile": "hc-basic", "hospitalId": "1234\n"}, 400),
    ],
)
def test_a_bench_token_refuses_a_bad_body(dc: Dc, body: dict[str, object], status: int) -> None:
    reply = bench_token(dc, **body)
    assert reply.status == status and set(reply.body) == {"message"}, reply


def test_a_bench_token_takes_the_longest_lifetime_and_is_no_dc_call(dc: Dc) -> None:
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1702, "count": 1})
    assert bench_token(dc, profile="hc-basic", expiresIn=10 * 366 * 86400).status == 200
    assert dc.state.take_fault() == 1702  # a bench control: not counted


def test_without_an_issuer_there_are_no_bench_tokens(dc: Dc) -> None:
    bare = DcService(dc.state, dc.service.sam_ca)
    reply = bare.handle(Request("POST", "/sim/v1/VirtualHc/Token", {}, json.dumps({"profile": "hc-basic"}).encode()))
    assert isinstance(reply, Reply) and reply.status == 404 and set(reply.body) == {"message"}


# -- malformed requests --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/dc/v1/Sam/Challenge", {}),
        ("/dc/v1/Sam/Challenge", {"samId": "90100000000"}),
        ("/dc/v1/Sam/Challenge", {"samId": 901000000001}),
        ("/dc/v1/Sam/Challenge", ["901000000001"]),
        ("/dc/v1/Sam/Login", {"samId": SAM, "nonce": b64(bytes(15)), "signature": b64(bytes(256))}),
        ("/dc/v1/Sam/Login", {"samId": SAM, "nonce": "not base64!", "signature": b64(bytes(256))}),
        ("/dc/v1/Sam/Login", {"samId": SAM, "nonce": b64(bytes(16))}),
        ("/dc/v1/Cards/Challenge", {"cardNumber": "90000000071", "cardChallenge": b64(bytes(8))}),
        ("/dc/v1/Cards/Challenge", {"cardNumber": CARD, "cardChallenge": b64(bytes(9))}),
        ("/dc/v1/Cards/Verify", {"authId": "abc", "cardResponse": b64(bytes(31))}),
        ("/dc/v1/Cards/Verify", {"cardResponse": b64(bytes(32))}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "tok", "maxUses": 3}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "", "maxUses": 3, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "x" * 65, "maxUses": 3, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "tok\n", "maxUses": 3, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "tok", "maxUses": 0, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "tok", "maxUses": 1001, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "tok", "maxUses": True, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "tok", "maxUses": 3, "expiresAt": "1"}),
        ("/dc/v1/VirtualHc/Verify", {"tokenId": "tok", "maxUses": 3, "expiresAt": 1.5}),
        ("/dc/v1/VirtualHc/Export", {"tokenId": "tok", "maxUses": 3, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Export", {"tokenId": "tok", "card": {}, "maxUses": 3, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Export", {"tokenId": "tok", "card": {"cardId": CARD}, "maxUses": 3, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Export", {"tokenId": "tok", "card": {"name": "x"}, "maxUses": 3, "expiresAt": 1}),
        ("/dc/v1/VirtualHc/Import", {}),
        ("/dc/v1/VirtualHc/Import", {"transferToken": 7}),
        ("/dc/v1/RealHc/Notes", {}),
        ("/dc/v1/RealHc/Notes", {"cardNumber": "90000000071"}),
        ("/dc/v1/RealHc/Notes", {"cardNumber": "900000000711\n"}),
    ],
)
def test_a_malformed_body_is_a_bad_request(dc: Dc, path: str, body: object) -> None:
    session = dc.session(dc.issue())
    reply = dc.call("POST", path, body, session)
    assert refused(reply, 400, "badRequest")
    message = reply.body["message"]
    assert isinstance(message, str) and CARD not in message and SAM not in message


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"", b"[" * 100000])
def test_a_body_that_is_not_json_is_a_bad_request(dc: Dc, raw: bytes) -> None:
    assert refused(dc.call("POST", "/dc/v1/Sam/Challenge", raw=raw), 400, "badRequest")


def test_a_body_too_large_to_read_is_a_bad_request(dc: Dc) -> None:
    reply = dc.service.handle(Request("POST", "/dc/v1/Sam/Challenge", {}, None))
    assert isinstance(reply, Reply) and refused(reply, 400, "badRequest")


def test_unknown_commands_and_paths(dc: Dc) -> None:
    assert refused(dc.call("POST", "/dc/v1/Sam/Logout", {}), 404, "unknownCommand")
    assert refused(dc.call("POST", "/dc/v1/Time", {}), 404, "unknownCommand")  # Time is a GET
    assert refused(dc.call("GET", "/dc/v1/"), 404, "unknownCommand")
    outside = dc.call("GET", "/api/v1/Time")
    assert outside.status == 404 and isinstance(outside.body.get("message"), str)
    unknown_control = dc.call("POST", "/sim/v1/Nothing", {})
    assert unknown_control.status == 404 and isinstance(unknown_control.body.get("message"), str)


def test_a_query_string_does_not_change_the_command(dc: Dc) -> None:
    session = dc.session(dc.issue())
    assert dc.call("GET", "/dc/v1/Time?x=1", session=session).status == 200


# -- the HCA CRL -----------------------------------------------------------------


def test_crl_needs_no_session_and_is_the_bench_issuing_cas(dc: Dc) -> None:
    reply = dc.call("GET", "/dc/v1/Crl")
    assert reply.status == 200 and set(reply.body) == {"crls"}
    crls = reply.body["crls"]
    assert isinstance(crls, list)
    (encoded,) = crls
    crl = x509.load_der_x509_crl(base64.b64decode(encoded, validate=True))
    pki = bench_pki()
    assert crl.issuer == pki.issuing_ca.certificate.subject
    assert crl.is_signature_valid(pki.issuing_ca.key.public_key())
    revoked = crl.get_revoked_certificate_by_serial_number(pki.staff["hpc-revoked"].certificate.serial_number)
    assert revoked is not None
    assert crl.get_revoked_certificate_by_serial_number(pki.staff["hpc-doctor"].certificate.serial_number) is None
    assert crl == pki.crl
    assert (
        dc.call("GET", "/dc/v1/Crl", session="anything").body == reply.body
    )  # a session is neither needed nor checked


def test_crl_is_a_get(dc: Dc) -> None:
    assert refused(dc.call("POST", "/dc/v1/Crl", {}), 404, "unknownCommand")


def test_faults_apply_to_crl(dc: Dc) -> None:
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1700, "count": 1})
    assert dc.service.handle(Request("GET", "/dc/v1/Crl")) is DROP
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1702, "count": 1})
    assert dc.call("GET", "/dc/v1/Crl").status == 503
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1703, "count": 1})
    assert refused(dc.call("GET", "/dc/v1/Crl"), 401, "sessionExpired")
    assert dc.call("GET", "/dc/v1/Crl").status == 200


# -- faults ----------------------------------------------------------------------


def test_fault_1700_drops_the_next_calls_then_stops(dc: Dc) -> None:
    dc.issue()
    assert dc.call("POST", "/sim/v1/Faults", {"statusCode": 1700, "count": 2}).body == {}
    request = Request("POST", "/dc/v1/Sam/Challenge", {}, json.dumps({"samId": SAM}).encode())
    assert dc.service.handle(request) is DROP
    assert isinstance(dc.service.handle(request), Drop)
    assert dc.call("POST", "/dc/v1/Sam/Challenge", {"samId": SAM}).status == 200


def test_fault_1702_answers_503_and_1703_answers_session_expired(dc: Dc) -> None:
    session = dc.session(dc.issue())
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1702, "count": 1})
    reply = dc.call("GET", "/dc/v1/Time", session=session)
    assert reply.status == 503
    assert dc.call("GET", "/dc/v1/Time", session=session).status == 200
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1703, "count": 3})
    for _ in range(3):
        assert refused(dc.call("GET", "/dc/v1/Time", session=session), 401, "sessionExpired")
    assert dc.call("GET", "/dc/v1/Time", session=session).status == 200  # the session itself is still good


def test_a_fault_comes_before_any_other_processing_and_skips_the_bench_controls(dc: Dc) -> None:
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1702, "count": 3})
    assert dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 0}).status == 200  # not counted
    assert dc.call("POST", "/dc/v1/Nothing", {}).status == 503
    assert dc.call("POST", "/dc/v1/Sam/Challenge", raw=b"{bad").status == 503
    assert dc.call("GET", "/dc/v1/Time").status == 503
    assert refused(dc.call("GET", "/dc/v1/Time"), 401, "sessionExpired")


def test_a_new_fault_replaces_the_pending_one(dc: Dc) -> None:
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1702, "count": 5})
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1703, "count": 1})
    assert refused(dc.call("GET", "/dc/v1/Nothing"), 401, "sessionExpired")
    assert refused(dc.call("GET", "/dc/v1/Nothing"), 404, "unknownCommand")


# -- bench controls ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sim/v1/CloudSam", {"samId": "12345", "hospitalId": HOSPITAL, "contract": "active"}),
        ("/sim/v1/CloudSam", {"samId": SAM, "hospitalId": "12345678901", "contract": "active"}),
        ("/sim/v1/CloudSam", {"samId": SAM, "hospitalId": "12-34", "contract": "active"}),
        ("/sim/v1/CloudSam", {"samId": SAM, "hospitalId": HOSPITAL, "contract": "lapsed"}),
        ("/sim/v1/CloudSam", {"samId": SAM, "hospitalId": HOSPITAL}),
        ("/sim/v1/CloudSam", {"samId": SAM, "hospitalId": HOSPITAL, "contract": "active", "hospitalName": ""}),
        ("/sim/v1/CloudSam", {"samId": SAM, "hospitalId": HOSPITAL, "contract": "active", "hospitalName": "x" * 65}),
        ("/sim/v1/CloudSam", {"samId": SAM, "hospitalId": HOSPITAL, "contract": "active", "hospitalName": 7}),
        ("/sim/v1/CloudSam", "not an object"),
        ("/sim/v1/Faults", {"statusCode": 1701, "count": 1}),
        ("/sim/v1/Faults", {"statusCode": "1700", "count": 1}),
        ("/sim/v1/Faults", {"statusCode": 1700.0, "count": 1}),
        ("/sim/v1/Faults", {"statusCode": 1700, "count": 0}),
        ("/sim/v1/Faults", {"statusCode": 1700, "count": 1001}),
        ("/sim/v1/Faults", {"statusCode": 1700, "count": True}),
        ("/sim/v1/Faults", {"statusCode": 1700}),
        ("/sim/v1/Clock", {"advanceSeconds": -1}),
        ("/sim/v1/Clock", {"advanceSeconds": 1.5}),
        ("/sim/v1/Clock", {"advanceSeconds": 10 * 366 * 86400 + 1}),
        ("/sim/v1/Clock", {}),
    ],
)
def test_bench_controls_refuse_malformed_bodies(dc: Dc, path: str, body: object) -> None:
    reply = dc.call("POST", path, body)
    assert reply.status == 400 and set(reply.body) == {"message"}, reply


def test_bench_controls_refuse_a_body_that_is_not_json(dc: Dc) -> None:
    reply = dc.call("POST", "/sim/v1/Faults", raw=b"count=1")
    assert reply.status == 400 and set(reply.body) == {"message"}


def test_refused_bench_controls_change_nothing(dc: Dc) -> None:
    dc.call("POST", "/sim/v1/Faults", {"statusCode": 1700, "count": 0})
    dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": -60})
    assert dc.state.take_fault() is None
    assert dc.state.now() == START


def test_the_clock_advances_up_to_ten_years_per_call(dc: Dc) -> None:
    reply = dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 10 * 366 * 86400})
    assert reply.status == 200 and str(reply.body["serverTime"]).startswith("2035-03-0")


def test_a_sam_can_be_looked_up(dc: Dc) -> None:
    sam_file = dc.issue(contract="revoked")
    reply = dc.call("GET", f"/sim/v1/Sams/{SAM}")
    assert reply.status == 200
    assert reply.body["samId"] == SAM and reply.body["hospitalId"] == HOSPITAL and reply.body["revoked"] is True
    assert str(reply.body["certificate"]).startswith("-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificate(str(reply.body["certificate"]).encode()) == sam_file.certificate
    assert dc.call("GET", "/sim/v1/Sams/999999999999").status == 404
    assert dc.call("GET", "/sim/v1/Sams/12345").status == 400


def test_issued_files_are_signed_by_the_sam_ca(dc: Dc) -> None:
    sam_file = dc.issue()
    sam_file.certificate.verify_directly_issued_by(dc.service.sam_ca.certificate)
    assert stat.S_IMODE(dc.layout.sam_ca_key.stat().st_mode) == 0o600


# -- prepare -----------------------------------------------------------------------------


def test_prepare_makes_the_bench_start_state_once(tmp_path: Path) -> None:
    first = prepare(tmp_path / "state")
    sam_bytes = first.bench_sam_file.read_bytes()
    ca_bytes = first.ca_cert.read_bytes()
    again = prepare(tmp_path / "state")
    assert again == first and again.bench_sam_file.read_bytes() == sam_bytes and again.ca_cert.read_bytes() == ca_bytes
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    for private in ("bench-sam.sam", "server.key", "sam-ca.key", "dc.db", "vhc-issuer.key"):
        assert stat.S_IMODE((tmp_path / "state" / private).stat().st_mode) == 0o600, private
    sam_file = parse_cloud_sam_file(sam_bytes)
    assert (sam_file.sam_id, sam_file.hospital_id, sam_file.hospital_name) == (
        BENCH_SAM_ID,
        BENCH_HOSPITAL_ID,
        "測試機構",
    )
    state = DcState(first.database)
    try:
        service = DcService(state, SamCa.ensure(StateDir(first.state_dir)))
        nonce_reply = service.handle(
            Request("POST", "/dc/v1/Sam/Challenge", {}, json.dumps({"samId": BENCH_SAM_ID}).encode())
        )
        assert isinstance(nonce_reply, Reply)
        nonce = base64.b64decode(str(nonce_reply.body["nonce"]))
        body = {"samId": BENCH_SAM_ID, "nonce": b64(nonce), "signature": b64(sam_file.login_signature(nonce))}
        login = service.handle(Request("POST", "/dc/v1/Sam/Login", {}, json.dumps(body).encode()))
        assert isinstance(login, Reply) and login.status == 200 and login.body["hospitalId"] == BENCH_HOSPITAL_ID
    finally:
        state.close()


def pem_certificates(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def test_prepare_writes_the_bench_hca_trust_file(tmp_path: Path) -> None:
    prepared = prepare(tmp_path / "state")
    assert prepared.hca_trust == tmp_path / "state" / "hca-trust.pem"
    data = prepared.hca_trust.read_bytes()
    pki = bench_pki()
    assert pem_certificates(data) == [pki.root.certificate, pki.issuing_ca.certificate]
    assert data == pki.trust_store_pem() + pki.issuing_ca_pem()  # nothing else in it: no key, no other text
    assert b"PRIVATE KEY" not in data
    assert stat.S_IMODE(prepared.hca_trust.stat().st_mode) == 0o644


def test_prepare_leaves_a_current_hca_trust_file_alone_and_rewrites_a_stale_one(tmp_path: Path) -> None:
    prepared = prepare(tmp_path / "state")
    inode = prepared.hca_trust.stat().st_ino
    prepare(tmp_path / "state")
    assert prepared.hca_trust.stat().st_ino == inode  # not rewritten: same file
    prepared.hca_trust.write_bytes(bench_pki().trust_store_pem())  # the root alone: stale
    prepare(tmp_path / "state")
    assert pem_certificates(prepared.hca_trust.read_bytes()) == [
        bench_pki().root.certificate,
        bench_pki().issuing_ca.certificate,
    ]
    prepared.hca_trust.unlink()
    prepare(tmp_path / "state")
    assert len(pem_certificates(prepared.hca_trust.read_bytes())) == 2
    assert [p.name for p in prepared.state_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_prepare_reissues_a_bench_sam_file_that_went_missing(tmp_path: Path) -> None:
    first = prepare(tmp_path / "state")
    old = first.bench_sam_file.read_bytes()
    first.bench_sam_file.unlink()
    again = prepare(tmp_path / "state")
    assert again.bench_sam_file.read_bytes() != old
    parse_cloud_sam_file(again.bench_sam_file.read_bytes())


def test_prepare_makes_the_virtual_card_issuer_once(tmp_path: Path) -> None:
    first = prepare(tmp_path / "state")
    assert first.vhc_issuer == tmp_path / "state" / "vhc-issuer.pem"
    key_file = tmp_path / "state" / "vhc-issuer.key"
    pem, key = first.vhc_issuer.read_bytes(), key_file.read_bytes()
    assert b"PRIVATE KEY" not in pem and stat.S_IMODE(first.vhc_issuer.stat().st_mode) == 0o644
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    prepare(tmp_path / "state")
    assert (first.vhc_issuer.read_bytes(), key_file.read_bytes()) == (pem, key)
    # A bench token from a service over the prepared state verifies with the console's own loader of that file.
    state = DcState(first.database)
    try:
        layout = StateDir(first.state_dir)
        service = DcService(state, SamCa.ensure(layout), vhc_issuer=VhcIssuer.ensure(layout))
        reply = service.handle(
            Request("POST", "/sim/v1/VirtualHc/Token", {}, json.dumps({"profile": "hc-basic"}).encode())
        )
        assert isinstance(reply, Reply) and reply.status == 200
        now = int(state.now().timestamp())
        token = verify_token(str(reply.body["token"]), issuers=load_issuers(pem), now=now)
        assert token.card_id == "900000000711" and token.hospital_id == BENCH_HOSPITAL_ID
    finally:
        state.close()


def test_prepare_remakes_an_issuer_whose_files_went_missing_or_do_not_match(tmp_path: Path) -> None:
    first = prepare(tmp_path / "state")
    key_file = tmp_path / "state" / "vhc-issuer.key"
    pem = first.vhc_issuer.read_bytes()
    first.vhc_issuer.unlink()
    prepare(tmp_path / "state")
    remade = first.vhc_issuer.read_bytes()
    assert remade != pem
    issuer = VhcIssuer.load(StateDir(first.state_dir))
    assert issuer is not None and issuer.certificate == x509.load_pem_x509_certificate(remade)
    first.vhc_issuer.write_bytes(pem)  # the old certificate: not the key's
    assert VhcIssuer.load(StateDir(first.state_dir)) is None
    prepare(tmp_path / "state")
    assert VhcIssuer.load(StateDir(first.state_dir)) is not None
    key_file.write_bytes(b"garbage")
    prepare(tmp_path / "state")
    assert VhcIssuer.load(StateDir(first.state_dir)) is not None
