"""The bench's virtual cards, APDU by APDU, against docs/virtual-cards.md and sim-control.md's profiles."""

from __future__ import annotations

import hashlib
import hmac
import threading
from functools import reduce

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cards.apdu import CommandApdu, MalformedApdu, PinReference, parse_command, respond
from sim.cards.base import HC_AID, HPC_AID, VirtualCard
from sim.cards.card_keys import (
    BENCH_CARD_MASTER_KEY,
    card_key,
    external_authenticate_cryptogram,
    internal_authenticate_response,
)
from sim.cards.health_card import HEALTH_CARD_ATR, HealthCard
from sim.cards.staff_card import STAFF_CARD_ATR, StaffCard
from sim.pki import bench_pki
from sim.profiles import PROFILES, HealthCardData, StaffCardData, make_card

HC_PROFILES = [name for name, profile in PROFILES.items() if profile.kind == "hc"]
HPC_PROFILES = [name for name, profile in PROFILES.items() if profile.kind == "hpc"]
UNBLOCKED_HPC = [
    name
    for name, profile in PROFILES.items()
    if isinstance(profile.data, StaffCardData) and profile.data.pin_tries_left > 0
]

SELECT_HC = bytes.fromhex("00A4040010") + HC_AID + b"\x00"
SELECT_HPC = bytes.fromhex("00A4040010") + HPC_AID + b"\x00"
READ_HC_PUBLIC = bytes.fromhex("00CA1100020000")
READ_HC_IDENTITY = bytes.fromhex("00CA1101020000")
READ_HPC_BLOCK = bytes.fromhex("00CA1200020000")
GET_CHALLENGE = bytes.fromhex("0084000008")
SELECT_CERT_EF = bytes.fromhex("00A4020C025001")


def send(card: VirtualCard, apdu: bytes | str) -> tuple[bytes, int]:
    raw = bytes.fromhex(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu
    answer = card.respond(raw)
    assert len(answer) >= 2
    return answer[:-2], int.from_bytes(answer[-2:], "big")


def sw(card: VirtualCard, apdu: bytes | str) -> int:
    return send(card, apdu)[1]


def hc(name: str) -> HealthCard:
    card = make_card(name)
    assert isinstance(card, HealthCard)
    return card


def hpc(name: str) -> StaffCard:
    card = make_card(name)
    assert isinstance(card, StaffCard)
    return card


def selected_hc(name: str) -> HealthCard:
    card = hc(name)
    assert sw(card, SELECT_HC) == 0x9000
    return card


def selected_hpc(name: str) -> StaffCard:
    card = hpc(name)
    assert sw(card, SELECT_HPC) == 0x9000
    return card


def verify_hc(pin: bytes) -> bytes:
    return bytes([0x00, 0x20, 0x00, 0x01, len(pin)]) + pin


def change_hc(pin: bytes) -> bytes:
    return bytes([0x00, 0x24, 0x01, 0x01, len(pin)]) + pin


def verify_hpc(pin: bytes) -> bytes:
    return bytes([0x00, 0x20, 0x00, 0x81, len(pin)]) + pin


def change_hpc(pin: bytes) -> bytes:
    return bytes([0x00, 0x24, 0x01, 0x81, len(pin)]) + pin


def reset_retry_counter(puk: bytes, new_pin: bytes) -> bytes:
    data = puk + new_pin
    return bytes([0x00, 0x2C, 0x00, 0x81, len(data)]) + data


def pso_cds(digest: bytes) -> bytes:
    return bytes([0x00, 0x2A, 0x9E, 0x9A, len(digest)]) + digest + b"\x00"


def external_authenticate(cryptogram: bytes) -> bytes:
    return bytes([0x00, 0x82, 0x00, 0x00, len(cryptogram)]) + cryptogram


def mutually_authenticate(card: HealthCard | StaffCard) -> int:
    """What the console's simulated SAM will do: check the card's answer, then answer the card's challenge."""
    key = card_key(card.profile.data.card_id)
    host_challenge = bytes(range(8))
    answer, status = send(card, bytes.fromhex("0088000008") + host_challenge + b"\x00")
    assert status == 0x9000
    assert answer == internal_authenticate_response(key, host_challenge)
    challenge, status = send(card, GET_CHALLENGE)
    assert status == 0x9000
    return sw(card, external_authenticate(external_authenticate_cryptogram(key, challenge)))


# --- The APDU parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00A40400", CommandApdu(0x00, 0xA4, 0x04, 0x00)),
        ("0084000008", CommandApdu(0x00, 0x84, 0x00, 0x00, le=8)),
        ("00B0000000", CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)),
        ("002000010431323334", CommandApdu(0x00, 0x20, 0x00, 0x01, data=b"1234")),
        ("00CA1100020000", CommandApdu(0x00, 0xCA, 0x11, 0x00, data=b"\x00\x00")),
        ("00880000080102030405060708" + "00", CommandApdu(0, 0x88, 0, 0, data=bytes(range(1, 9)), le=256)),
        ("00880000020102" + "20", CommandApdu(0, 0x88, 0, 0, data=b"\x01\x02", le=0x20)),
    ],
)
def test_parse_command_reads_the_four_cases(raw: str, expected: CommandApdu) -> None:
    parsed = parse_command(bytes.fromhex(raw))
    assert parsed == expected
    assert parsed.to_bytes() == bytes.fromhex(raw)


def test_case_numbers() -> None:
    assert parse_command(bytes.fromhex("00A40400")).case == 1
    assert parse_command(bytes.fromhex("0084000008")).case == 2
    assert parse_command(bytes.fromhex("00CA1100020000")).case == 3
    assert parse_command(SELECT_HC).case == 4


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00",
        "00A404",
        "00A4040002AA",  # Lc 2, one byte
        "00A4040001AABBCC",  # Lc 1, three bytes
        "00A4040000AA",  # Lc 0 in a case-3 form (would be an extended APDU)
        "00A404000000",  # Lc 0, Le 0
        "00A4040003AABB",  # one byte short
    ],
)
def test_parse_command_refuses_inconsistent_lengths(raw: str) -> None:
    with pytest.raises(MalformedApdu):
        parse_command(bytes.fromhex(raw))


def test_malformed_message_does_not_echo_the_bytes() -> None:
    with pytest.raises(MalformedApdu) as caught:
        parse_command(bytes.fromhex("002000010631323334"))
    assert "3132" not in str(caught.value) and "1234" not in str(caught.value)


@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=255),
    st.none() | st.integers(1, 256),
)
def test_encoding_and_parsing_agree(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> None:
    command = CommandApdu(cla, ins, p1, p2, data, le)
    assert parse_command(command.to_bytes()) == command


def test_respond_appends_the_status_word() -> None:
    assert respond(b"\x01\x02", 0x9000) == bytes.fromhex("01029000")
    assert respond(b"", 0x6A82) == bytes.fromhex("6A82")


def test_pin_reference_never_shows_its_value() -> None:
    reference = PinReference("987654", 3)
    assert "987654" not in repr(reference)
    assert "pin=" not in repr(PROFILES["hc-pin"].data) and "1234" not in repr(PROFILES["hc-pin"].data)
    doctor = repr(PROFILES["hpc-doctor"].data)
    assert "pin=" not in doctor and "puk=" not in doctor and "000000" not in doctor


# --- Any card, any bytes ----------------------------------------------------------------------

ALL_PROFILES = list(PROFILES)


@pytest.mark.parametrize("name", ALL_PROFILES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_and_end_in_a_status_word(name: str, raw: bytes) -> None:
    card = make_card(name)
    for prefix in (b"", SELECT_HC, SELECT_HPC):
        if prefix:
            card.respond(prefix)
        answer = card.respond(raw)
        assert len(answer) >= 2
        assert answer[-2:] != b"\x6f\x00", "a card's own code failed"
        assert card.transcript.entries[-1] == (raw, answer)


_KNOWN_INS = [0xA4, 0xB0, 0x84, 0x88, 0x82, 0xCA, 0x20, 0x24, 0x26, 0x2C, 0x2A]
_plausible_command = st.builds(
    lambda ins, p1, p2, data, le: CommandApdu(0x00, ins, p1, p2, data, le).to_bytes(),
    st.sampled_from(_KNOWN_INS),
    st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x11, 0x12, 0x9E, 0xFF]),
    st.sampled_from([0x00, 0x01, 0x0C, 0x81, 0x9A, 0xFF]),
    st.sampled_from([b"", b"\x00\x00", b"1234", b"000000", b"12345678000000", HC_AID, HPC_AID, b"\x50\x01"])
    | st.binary(max_size=40),
    st.none() | st.sampled_from([8, 256]),
)


@pytest.mark.parametrize("name", ["hc-pin", "hpc-doctor", "hpc-blocked"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=st.lists(_plausible_command, max_size=25))
def test_plausible_command_sequences_never_fail_inside_the_card(name: str, commands: list[bytes]) -> None:
    card = make_card(name)
    card.respond(SELECT_HC if PROFILES[name].kind == "hc" else SELECT_HPC)
    for command in commands:
        answer = card.respond(command)
        assert len(answer) >= 2 and answer[-2:] != b"\x6f\x00"
    assert len(card.transcript.entries) == len(commands) + 1


@pytest.mark.parametrize("name", ALL_PROFILES)
@pytest.mark.parametrize("cla", [0x80, 0x0C, 0x01, 0xFF])
def test_unknown_class_is_6e00(name: str, cla: int) -> None:
    card = make_card(name)
    assert sw(card, bytes([cla]) + SELECT_HC[1:]) == 0x6E00
    assert sw(card, bytes([cla, 0x84, 0x00, 0x00, 0x08])) == 0x6E00


@pytest.mark.parametrize("name", ALL_PROFILES)
@pytest.mark.parametrize("ins", [0x00, 0xB2, 0xDA, 0xC0, 0x70])
def test_unknown_instruction_is_6d00(name: str, ins: int) -> None:
    assert sw(make_card(name), bytes([0x00, ins, 0x00, 0x00])) == 0x6D00


@pytest.mark.parametrize("name", ALL_PROFILES)
@pytest.mark.parametrize("raw", ["", "00", "00A404", "00A4040002AA", "00A4040000AA", "00CA11000300"])
def test_malformed_apdus_are_6700(name: str, raw: str) -> None:
    card = make_card(name)
    assert sw(card, raw) == 0x6700


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_the_transcript_records_every_exchange_in_order(name: str) -> None:
    card = make_card(name)
    commands = [b"", b"\x00", SELECT_HC, SELECT_HPC, GET_CHALLENGE, READ_HC_PUBLIC, READ_HPC_BLOCK, b"\x80\xca\x00\x00"]
    answers = [card.respond(command) for command in commands]
    assert card.transcript.entries == list(zip(commands, answers, strict=True))
    assert card.transcript.commands() == commands
    card.reset()
    assert len(card.transcript.entries) == len(commands), "a reset is not an APDU and keeps the transcript"


def test_bytearray_input_is_accepted_and_recorded_as_bytes() -> None:
    card = make_card("hc-basic")
    answer = card.respond(bytearray(SELECT_HC))  # type: ignore[arg-type]  # deliberately off-type
    assert answer == b"\x90\x00"
    assert card.transcript.entries == [(SELECT_HC, answer)]
    assert card.respond(None) == b"\x67\x00"  # type: ignore[arg-type]  # deliberately off-type


def test_concurrent_callers_all_land_in_the_transcript() -> None:
    card = make_card("hc-basic")

    def worker() -> None:
        for _ in range(50):
            card.respond(GET_CHALLENGE)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(card.transcript.entries) == 200
    assert all(answer[-2:] == b"\x90\x00" for _, answer in card.transcript.entries)


# --- Profiles and make_card ----------------------------------------------------------------------


def test_profiles_are_exactly_the_contract_ones() -> None:
    """sim-control.md's profiles, plus the web-API twin's (docs/web-api-twin.md): more are welcome, but listed."""
    assert set(PROFILES) == {
        "hc-basic",
        "hc-pin",
        "hc-veteran",
        "hc-expired",
        "hc-counter-zero",
        "hpc-doctor",
        "hpc-nurse",
        "hpc-blocked",
        "hpc-expired",
        "hpc-revoked",
        "hpc-untrusted",
    }
    for name, profile in PROFILES.items():
        assert profile.name == name
        assert profile.kind == name.split("-")[0]
        assert profile.description


def test_hc_basic_is_the_spec_sample() -> None:
    assert PROFILES["hc-basic"].data == HealthCardData(
        card_id="900000000711",
        name="測試資料",
        id_no="R88855084A",
        birthday="0741201",
        sex="F",
        date_issue="1070101",
        identity_status="3",
        pin=None,
    )


def test_hpc_doctor_is_the_spec_sample() -> None:
    data = PROFILES["hpc-doctor"].data
    assert isinstance(data, StaffCardData)
    assert (data.card_type, data.card_id, data.id_no, data.c_name, data.e_name, data.birthday) == (
        1,
        "100000291508",
        "E123456789",
        "測試人員4",
        "",
        "1979-01-01",
    )
    assert (data.pin, data.puk, data.pin_tries_left, data.certificate) == ("000000", "12345678", 3, "valid")


def test_the_other_profiles_hold_what_sim_control_promises() -> None:
    def staff(name: str) -> StaffCardData:
        data = PROFILES[name].data
        assert isinstance(data, StaffCardData)
        return data

    def health(name: str) -> HealthCardData:
        data = PROFILES[name].data
        assert isinstance(data, HealthCardData)
        return data

    assert health("hc-pin").pin == "1234"
    assert health("hc-veteran").identity_status == "2"
    assert staff("hpc-nurse").card_type == 2 and staff("hpc-nurse").pin == "000000"
    assert staff("hpc-blocked").pin_tries_left == 0
    assert staff("hpc-expired").certificate == "expired"
    assert staff("hpc-revoked").certificate == "revoked"
    assert staff("hpc-untrusted").certificate == "untrusted"
    assert all(staff(name).puk == "12345678" for name in HPC_PROFILES)


def _taiwan_id_checksum_ok(id_no: str) -> bool:
    letters = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True))
    code = letters[id_no[0]]
    total = code // 10 + (code % 10) * 9
    total += sum(int(digit) * weight for digit, weight in zip(id_no[1:], [8, 7, 6, 5, 4, 3, 2, 1, 1], strict=True))
    return total % 10 == 0


@pytest.mark.parametrize("name", [n for n in PROFILES if n not in ("hc-basic", "hpc-doctor")])
def test_invented_people_have_checksum_valid_id_numbers(name: str) -> None:
    data = PROFILES[name].data
    assert _taiwan_id_checksum_ok(data.id_no)
    if isinstance(data, HealthCardData):
        assert data.id_no[1] == {"M": "1", "F": "2"}[data.sex]


def test_make_card_gives_a_fresh_card_each_time() -> None:
    first, second = selected_hpc("hpc-doctor"), hpc("hpc-doctor")
    assert first is not second
    assert sw(first, verify_hpc(b"999999")) == 0x63C2
    assert sw(second, SELECT_HPC) == 0x9000
    assert sw(second, verify_hpc(b"")[:4]) == 0x63C3
    assert second.transcript is not first.transcript and len(second.transcript.entries) == 2


def test_make_card_refuses_an_unknown_profile() -> None:
    with pytest.raises(KeyError):
        make_card("hc-nobody")


def test_cards_refuse_the_wrong_kind_of_profile() -> None:
    with pytest.raises(ValueError):
        HealthCard(PROFILES["hpc-doctor"])
    with pytest.raises(ValueError):
        StaffCard(PROFILES["hc-basic"])


def test_profiles_refuse_data_that_would_not_fit_the_card() -> None:
    with pytest.raises(ValueError) as caught:
        HealthCardData("1", "名", "A123456789", "0700101", "M", "1100101", "3", pin="987")
    assert "PIN" in str(caught.value) and "987" not in str(caught.value)  # names the problem, not the PIN
    with pytest.raises(ValueError):
        StaffCardData(
            "100000000001", "A123456789", "這個名字實在是太長了一點點吧", "", "1979-01-01", 1, "0000", "12345678"
        )


# --- ATRs -----------------------------------------------------------------------------------------


def _parse_atr(atr: bytes) -> tuple[set[int], bytes, bool]:
    """Walk an ATR the way ISO 7816-3 (and pcscd) does: protocols offered, historical bytes, TCK present."""
    assert atr[0] in (0x3B, 0x3F)
    y, k = atr[1] >> 4, atr[1] & 0x0F
    index, protocols = 2, set()
    while True:
        td = None
        for bit in (0x1, 0x2, 0x4, 0x8):
            if y & bit:
                if bit == 0x8:
                    td = atr[index]
                index += 1
        if td is None:
            break
        protocols.add(td & 0x0F)
        y = td >> 4
    if not protocols:
        protocols = {0}
    historical = atr[index : index + k]
    assert len(historical) == k
    rest = atr[index + k :]
    tck_needed = protocols != {0}
    assert len(rest) == (1 if tck_needed else 0)
    return protocols, historical, tck_needed


@pytest.mark.parametrize("atr", [HEALTH_CARD_ATR, STAFF_CARD_ATR])
def test_atrs_are_valid_iso_7816_3_with_a_correct_tck(atr: bytes) -> None:
    protocols, historical, tck_needed = _parse_atr(atr)
    assert 1 in protocols and tck_needed
    assert reduce(lambda a, b: a ^ b, atr[1:]) == 0, "TCK: T0 to TCK XOR to zero"
    assert reduce(lambda a, b: a ^ b, atr[1:-1]) == atr[-1]
    assert historical[0] == 0x80 and len(atr) <= 33


def test_the_atrs_are_the_documented_ones_and_differ() -> None:
    assert HEALTH_CARD_ATR.hex(" ").upper() == "3B 89 80 01 80 57 42 45 4E 43 48 48 43 96"
    assert STAFF_CARD_ATR.hex(" ").upper() == "3B 89 80 01 80 57 42 45 4E 43 48 48 50 85"
    for name in HC_PROFILES:
        assert make_card(name).atr == HEALTH_CARD_ATR
    for name in HPC_PROFILES:
        assert make_card(name).atr == STAFF_CARD_ATR


# --- Card keys --------------------------------------------------------------------------------------


def test_card_keys_known_answers() -> None:
    """Fixed vectors (checked with openssl) for whoever implements the simulated SAM."""
    assert len(BENCH_CARD_MASTER_KEY) == 32
    key = card_key("900000000711")
    assert key.hex() == "86704a78657efab3dee991d19ee72702fe7586437e7bfe75bff0afa6aa99bd62"
    assert card_key("100000291508").hex() == "c692ee2d84128b693f99334f5a13d3a74a25c9d4727572911a159ca9ac2a8789"
    challenge = bytes(range(8))
    assert internal_authenticate_response(key, challenge).hex() == (
        "4ffa49b4a85e29b7fe1c64faaff723332963cc43c2c12e58e2217e644b0cba68"
    )
    assert external_authenticate_cryptogram(key, challenge).hex() == (
        "181c09c97019848e9bce028ae452094a870d3930a1385dd7e95c64846afbd2e7"
    )
    assert len({card_key(p.data.card_id) for p in PROFILES.values()}) == len(PROFILES)


# --- Health card ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_select(name: str) -> None:
    card = hc(name)
    assert not card.selected
    assert sw(card, SELECT_HPC) == 0x6A82, "how the console tells a health card from a staff card"
    assert sw(card, bytes.fromhex("00A4040007A0000000031010")) == 0x6A82
    assert not card.selected
    assert sw(card, SELECT_HC) == 0x9000
    assert card.selected
    assert sw(card, bytes.fromhex("00A4040010") + HC_AID) == 0x9000, "Le is optional"
    assert sw(card, bytes.fromhex("00A40400")) == 0x6700
    assert sw(card, bytes.fromhex("00A4010010") + HC_AID) == 0x6A86
    assert sw(card, bytes.fromhex("00A4040410") + HC_AID) == 0x6A86
    assert sw(card, SELECT_CERT_EF) == 0x6A82, "the health card has no certificate file"
    assert sw(card, bytes.fromhex("00B0000000")) == 0x6986


def test_hc_basic_public_block_is_exactly_the_real_layout() -> None:
    card = selected_hc("hc-basic")
    data, status = send(card, "00 CA 11 00 02 00 00")
    assert status == 0x9000
    expected = (
        b"900000000711" + "測試資料".encode("big5") + b"\x00" * 12 + b"R88855084A" + b"0741201" + b"F" + b"1070101"
    )
    assert "測試資料".encode("big5") == bytes.fromhex("b4fab8d5b8eaaec6")
    assert data == expected and len(data) == 57


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_public_block_decodes_to_the_profile(name: str) -> None:
    profile = PROFILES[name].data
    assert isinstance(profile, HealthCardData)
    card = hc(name)
    assert sw(card, READ_HC_PUBLIC) == 0x6985, "the application must be selected"
    assert sw(card, SELECT_HC) == 0x9000
    data, status = send(card, READ_HC_PUBLIC)
    assert status == 0x9000 and len(data) == 57
    assert data[0:12].decode("ascii") == profile.card_id
    assert data[12:32].rstrip(b"\x00").decode("big5") == profile.name
    assert data[32:42].decode("ascii") == profile.id_no
    assert data[42:49].decode("ascii") == profile.birthday
    assert data[49:50].decode("ascii") == profile.sex
    assert data[50:57].decode("ascii") == profile.date_issue
    assert send(card, READ_HC_PUBLIC + b"\x00") == (data, 0x9000), "the case-4 form too"


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_get_data_refusals(name: str) -> None:
    card = selected_hc(name)
    assert sw(card, "00 CA 12 00 02 00 00") == 0x6A86
    assert sw(card, "00 CA 11 02 02 00 00") == 0x6A86
    assert sw(card, "00 CA 11 00 02 00 01") == 0x6A80
    assert sw(card, "00 CA 11 00 01 00") == 0x6700
    assert sw(card, "00 CA 11 00") == 0x6700


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_get_challenge(name: str) -> None:
    card = hc(name)
    first, status = send(card, "00 84 00 00 08")
    second, _ = send(card, "00 84 00 00 08")
    assert status == 0x9000 and len(first) == 8 and len(second) == 8 and first != second
    assert sw(card, "00 84 00 00 10") == 0x6700
    assert sw(card, "00 84 00 00") == 0x6700
    assert sw(card, "00 84 01 00 08") == 0x6A86


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_internal_authenticate(name: str) -> None:
    card = hc(name)
    command = bytes.fromhex("0088000008") + b"ABCDEFGH" + b"\x00"
    assert sw(card, command) == 0x6985
    send(card, SELECT_HC)
    answer, status = send(card, command)
    assert status == 0x9000
    expected_key = hmac.new(BENCH_CARD_MASTER_KEY, b"card" + PROFILES[name].data.card_id.encode(), hashlib.sha256)
    assert answer == hmac.new(expected_key.digest(), b"INT" + b"ABCDEFGH", hashlib.sha256).digest()
    assert sw(card, bytes.fromhex("0088000007") + b"ABCDEFG" + b"\x00") == 0x6700
    assert sw(card, bytes.fromhex("0088010008") + b"ABCDEFGH" + b"\x00") == 0x6A86


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_mutual_authentication_opens_the_identity_status(name: str) -> None:
    card = selected_hc(name)
    assert sw(card, READ_HC_IDENTITY) == 0x6982
    assert mutually_authenticate(card) == 0x9000
    assert card.authenticated
    data, status = send(card, READ_HC_IDENTITY)
    assert status == 0x9000
    profile_data = PROFILES[name].data
    assert isinstance(profile_data, HealthCardData) and data == profile_data.identity_status.encode()
    assert data in (b"1", b"2", b"3", b"4", b"8")


def test_hc_veteran_identity_status_is_2() -> None:
    card = selected_hc("hc-veteran")
    assert mutually_authenticate(card) == 0x9000
    assert send(card, READ_HC_IDENTITY) == (b"2", 0x9000)


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_external_authenticate_refusals(name: str) -> None:
    card = selected_hc(name)
    key = card_key(PROFILES[name].data.card_id)
    assert sw(card, external_authenticate(bytes(32))) == 0x6985, "no challenge issued"

    challenge, _ = send(card, GET_CHALLENGE)
    good = external_authenticate_cryptogram(key, challenge)
    assert sw(card, external_authenticate(bytes(32))) == 0x6300
    assert sw(card, external_authenticate(good)) == 0x6985, "the failed attempt consumed the challenge"
    assert not card.authenticated

    challenge, _ = send(card, GET_CHALLENGE)
    good = external_authenticate_cryptogram(key, challenge)
    assert sw(card, external_authenticate(good)) == 0x9000
    assert sw(card, external_authenticate(good)) == 0x6985, "no replay: the success consumed it too"

    challenge, _ = send(card, GET_CHALLENGE)
    other_card = card_key("900000000999")
    assert sw(card, external_authenticate(external_authenticate_cryptogram(other_card, challenge))) == 0x6300
    assert not card.authenticated, "a failed attempt drops the authentication"
    assert sw(card, READ_HC_IDENTITY) == 0x6982

    challenge, _ = send(card, GET_CHALLENGE)
    assert sw(card, external_authenticate(internal_authenticate_response(key, challenge))) == 0x6300
    send(card, GET_CHALLENGE)
    assert sw(card, external_authenticate(bytes(31))) == 0x6700
    send(card, GET_CHALLENGE)
    assert sw(card, bytes.fromhex("0082000120") + bytes(32)) == 0x6A86

    fresh = hc(name)
    challenge, _ = send(fresh, GET_CHALLENGE)
    assert sw(fresh, external_authenticate(external_authenticate_cryptogram(key, challenge))) == 0x6985
    assert sw(fresh, SELECT_HC) == 0x9000


@pytest.mark.parametrize("name", ["hc-basic", "hc-veteran"])
def test_hc_without_pin_answers_6a88(name: str) -> None:
    card = selected_hc(name)
    assert not card.has_pin
    assert sw(card, verify_hc(b"1234")) == 0x6A88
    assert sw(card, "00 20 00 01") == 0x6A88
    assert sw(card, "00 26 00 01") == 0x6A88


@pytest.mark.parametrize("name", ["hc-basic", "hc-veteran"])
def test_hc_setting_a_first_pin_needs_no_verification(name: str) -> None:
    card = selected_hc(name)
    assert sw(card, change_hc(b"123")) == 0x6A80
    assert sw(card, change_hc(b"1234567")) == 0x6A80
    assert sw(card, change_hc(b"12a4")) == 0x6A80
    assert sw(card, change_hc(b"246810")) == 0x9000
    assert card.has_pin and card.pin_verified
    assert sw(card, "00 20 00 01") == 0x9000
    card.reset()
    send(card, SELECT_HC)
    assert sw(card, "00 20 00 01") == 0x63C3
    assert sw(card, change_hc(b"1111")) == 0x6982, "once a PIN exists, changing it needs it"
    assert sw(card, verify_hc(b"246810")) == 0x9000


def test_hc_pin_retry_counter_blocks_at_zero() -> None:
    card = selected_hc("hc-pin")
    assert card.has_pin and not card.pin_verified
    assert sw(card, "00 20 00 01") == 0x63C3
    assert sw(card, verify_hc(b"0000")) == 0x63C2
    assert sw(card, verify_hc(b"12345")) == 0x63C1
    assert sw(card, "00 20 00 01") == 0x63C1, "reading the counter costs nothing"
    assert sw(card, verify_hc(b"4321")) == 0x63C0
    for _ in range(3):
        assert sw(card, verify_hc(b"9999")) == 0x6983
        assert sw(card, verify_hc(b"1234")) == 0x6983, "blocked: even the right PIN is refused"
        assert sw(card, "00 20 00 01") == 0x6983
    assert sw(card, change_hc(b"5678")) == 0x6983
    assert sw(card, "00 26 00 01") == 0x6983
    card.reset()
    send(card, SELECT_HC)
    assert sw(card, "00 20 00 01") == 0x6983, "the counter is on the card: a reset does not unblock"


def test_hc_pin_right_pin_restores_the_counter() -> None:
    card = selected_hc("hc-pin")
    assert sw(card, verify_hc(b"0000")) == 0x63C2
    assert sw(card, verify_hc(b"0001")) == 0x63C1
    assert sw(card, verify_hc(b"1234")) == 0x9000
    assert card.pin_verified
    assert sw(card, "00 20 00 01") == 0x9000
    assert sw(card, verify_hc(b"0002")) == 0x63C2, "counter back to 3, and a wrong try un-verifies"
    assert not card.pin_verified


def test_hc_pin_change_and_disable() -> None:
    card = selected_hc("hc-pin")
    assert sw(card, change_hc(b"5678")) == 0x6982
    assert sw(card, "00 26 00 01") == 0x6982
    assert sw(card, verify_hc(b"1234")) == 0x9000
    assert sw(card, change_hc(b"567")) == 0x6A80
    assert sw(card, change_hc(b"5678901")) == 0x6A80
    assert sw(card, change_hc(b"56 78")) == 0x6A80
    assert sw(card, "00 24 01 01") == 0x6700
    assert sw(card, change_hc(b"567890")) == 0x9000
    assert sw(card, verify_hc(b"1234")) == 0x63C2
    assert sw(card, verify_hc(b"567890")) == 0x9000
    assert sw(card, "00 26 00 01 01 00") == 0x6700
    assert sw(card, "00 26 01 01") == 0x6A86
    assert sw(card, "00 26 00 01") == 0x9000
    assert not card.has_pin and not card.pin_verified
    assert sw(card, verify_hc(b"567890")) == 0x6A88
    assert sw(card, "00 20 00 01") == 0x6A88


@pytest.mark.parametrize("name", HC_PROFILES)
def test_hc_pin_command_parameters(name: str) -> None:
    card = hc(name)
    assert sw(card, verify_hc(b"1234")) == 0x6985, "PIN commands need the application"
    assert sw(card, "00 20 00 01") == 0x6985
    send(card, SELECT_HC)
    assert sw(card, "00 20 00 81 04 31 32 33 34") == 0x6A86
    assert sw(card, "00 20 01 01 04 31 32 33 34") == 0x6A86
    assert sw(card, "00 24 00 01 04 31 32 33 34") == 0x6A86
    assert sw(card, "00 20 00 01 00") == 0x6700, "VERIFY has no response data"


def test_hc_reset_forgets_selection_authentication_and_pin() -> None:
    card = selected_hc("hc-pin")
    assert mutually_authenticate(card) == 0x9000
    assert sw(card, verify_hc(b"1234")) == 0x9000
    card.reset()
    assert not card.selected and not card.authenticated and not card.pin_verified
    assert sw(card, READ_HC_PUBLIC) == 0x6985
    send(card, SELECT_HC)
    assert sw(card, READ_HC_IDENTITY) == 0x6982
    assert sw(card, "00 20 00 01") == 0x63C3
    assert sw(card, external_authenticate(bytes(32))) == 0x6985, "the pending challenge is gone too"


# --- Staff card ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HPC_PROFILES)
def test_hpc_select(name: str) -> None:
    card = hpc(name)
    assert sw(card, SELECT_HC) == 0x6A82, "how the console tells a staff card from a health card"
    assert not card.selected
    assert sw(card, SELECT_HPC) == 0x9000
    assert card.selected
    assert sw(card, bytes.fromhex("00A4040C10") + HPC_AID) == 0x9000


@pytest.mark.parametrize("name", HPC_PROFILES)
def test_hpc_staff_block_layout(name: str) -> None:
    profile = PROFILES[name].data
    assert isinstance(profile, StaffCardData)
    card = hpc(name)
    assert sw(card, READ_HPC_BLOCK) == 0x6985
    send(card, SELECT_HPC)
    data, status = send(card, READ_HPC_BLOCK)
    assert status == 0x9000 and len(data) == 71
    assert data[0:12].decode("ascii") == profile.card_id
    assert data[12:22].decode("ascii") == profile.id_no
    assert data[22:42].rstrip(b"\x00").decode("big5") == profile.c_name
    assert data[42:62].rstrip(b"\x00").decode("ascii") == profile.e_name
    assert data[62:70].decode("ascii") == profile.birthday.replace("-", "")
    assert data[70:71] == str(profile.card_type).encode()
    assert sw(card, READ_HC_PUBLIC) == 0x6A86
    assert sw(card, "00 CA 12 01 02 00 00") == 0x6A86


def test_hpc_doctor_block_bytes() -> None:
    data, _ = send(selected_hpc("hpc-doctor"), READ_HPC_BLOCK)
    assert data == (
        b"100000291508"
        + b"E123456789"
        + "測試人員4".encode("big5").ljust(20, b"\x00")
        + b"\x00" * 20
        + b"19790101"
        + b"1"
    )
    nurse, _ = send(selected_hpc("hpc-nurse"), READ_HPC_BLOCK)
    assert nurse[42:62] == b"TEST,NURSE".ljust(20, b"\x00") and nurse[70:71] == b"2"


@pytest.mark.parametrize("name", HPC_PROFILES)
def test_hpc_mutual_authentication(name: str) -> None:
    card = selected_hpc(name)
    assert not card.authenticated
    assert mutually_authenticate(card) == 0x9000
    assert card.authenticated
    send(card, GET_CHALLENGE)
    assert sw(card, external_authenticate(bytes(32))) == 0x6300
    assert not card.authenticated


@pytest.mark.parametrize("name", UNBLOCKED_HPC)
def test_hpc_pin_counter_3_2_1_0_then_blocked_without_change(name: str) -> None:
    card = selected_hpc(name)
    assert sw(card, "00 20 00 81") == 0x63C3
    assert sw(card, verify_hpc(b"111111")) == 0x63C2
    assert sw(card, "00 20 00 81") == 0x63C2
    assert sw(card, verify_hpc(b"1234")) == 0x63C1
    assert sw(card, verify_hpc(b"12345678")) == 0x63C0
    assert card.pin_tries_left == 0
    for _ in range(3):
        assert sw(card, verify_hpc(b"000001")) == 0x6983
        assert sw(card, verify_hpc(b"000000")) == 0x6983
        assert sw(card, "00 20 00 81") == 0x6983
        assert card.pin_tries_left == 0 and not card.pin_verified
    assert sw(card, change_hpc(b"4321")) == 0x6983


@pytest.mark.parametrize("name", UNBLOCKED_HPC)
def test_hpc_right_pin(name: str) -> None:
    card = selected_hpc(name)
    assert sw(card, verify_hpc(b"999999")) == 0x63C2
    assert sw(card, verify_hpc(b"000000")) == 0x9000
    assert card.pin_verified and card.pin_tries_left == 3
    assert sw(card, "00 20 00 81") == 0x9000
    assert sw(card, "00 20 00 01 06 30 30 30 30 30 30") == 0x6A86, "the staff PIN is reference 81"
    assert sw(card, "00 20 00 81 00") == 0x6700


def test_hpc_blocked_refuses_the_right_pin() -> None:
    card = selected_hpc("hpc-blocked")
    assert card.pin_tries_left == 0
    assert sw(card, "00 20 00 81") == 0x6983
    assert sw(card, verify_hpc(b"000000")) == 0x6983
    assert sw(card, pso_cds(bytes(32))) == 0x6982


@pytest.mark.parametrize("name", HPC_PROFILES)
def test_hpc_puk_unblocks_and_sets_a_new_pin(name: str) -> None:
    card = selected_hpc(name)
    for _ in range(3):
        send(card, verify_hpc(b"999999"))
    assert sw(card, "00 20 00 81") == 0x6983
    assert sw(card, reset_retry_counter(b"12345678", b"24680")) == 0x9000
    assert card.pin_tries_left == 3 and not card.pin_verified
    assert sw(card, "00 20 00 81") == 0x63C3
    assert sw(card, verify_hpc(b"000000")) == 0x63C2, "the old PIN is gone"
    assert sw(card, verify_hpc(b"24680")) == 0x9000


def test_hpc_blocked_profile_puk_reset_then_verify() -> None:
    card = selected_hpc("hpc-blocked")
    assert sw(card, "00 2C 00 81 0E 31 32 33 34 35 36 37 38 31 31 32 32 33 33") == 0x9000
    assert sw(card, verify_hpc(b"112233")) == 0x9000


def test_hpc_wrong_puk_counts_down_from_10_and_blocks() -> None:
    card = selected_hpc("hpc-blocked")
    for left in range(9, -1, -1):
        assert sw(card, reset_retry_counter(b"87654321", b"1111")) == 0x63C0 | left
    assert card.puk_tries_left == 0
    assert sw(card, reset_retry_counter(b"12345678", b"1111")) == 0x6983
    assert card.puk_tries_left == 0
    assert sw(card, verify_hpc(b"1111")) == 0x6983, "the PIN stayed blocked"
    assert sw(card, verify_hpc(b"000000")) == 0x6983


def test_hpc_right_puk_restores_the_puk_counter() -> None:
    card = selected_hpc("hpc-doctor")
    assert sw(card, reset_retry_counter(b"00000000", b"1111")) == 0x63C9
    assert sw(card, reset_retry_counter(b"00000001", b"1111")) == 0x63C8
    assert sw(card, reset_retry_counter(b"12345678", b"1111")) == 0x9000
    assert card.puk_tries_left == 10
    assert sw(card, reset_retry_counter(b"00000000", b"1111")) == 0x63C9


def test_hpc_reset_retry_counter_refusals() -> None:
    card = hpc("hpc-blocked")
    assert sw(card, reset_retry_counter(b"12345678", b"1111")) == 0x6985
    send(card, SELECT_HPC)
    assert sw(card, reset_retry_counter(b"12345678", b"111")) == 0x6700
    assert sw(card, reset_retry_counter(b"12345678", b"123456789")) == 0x6700
    assert sw(card, reset_retry_counter(b"12345678", b"12a4")) == 0x6A80
    assert card.puk_tries_left == 10, "a malformed new PIN costs no PUK try"
    assert sw(card, "00 2C 01 81 0C 31 32 33 34 35 36 37 38 31 31 31 31") == 0x6A86
    assert sw(card, "00 2C 00 01 0C 31 32 33 34 35 36 37 38 31 31 31 31") == 0x6A86


@pytest.mark.parametrize("name", UNBLOCKED_HPC)
def test_hpc_change_pin(name: str) -> None:
    card = selected_hpc(name)
    assert sw(card, change_hpc(b"4321")) == 0x6982
    assert sw(card, verify_hpc(b"000000")) == 0x9000
    assert sw(card, change_hpc(b"432")) == 0x6A80
    assert sw(card, change_hpc(b"432109876")) == 0x6A80
    assert sw(card, change_hpc(b"43x1")) == 0x6A80
    assert sw(card, "00 24 01 81") == 0x6700
    assert sw(card, "00 24 00 81 04 34 33 32 31") == 0x6A86
    assert sw(card, change_hpc(b"43210987")) == 0x9000
    card.reset()
    send(card, SELECT_HPC)
    assert sw(card, verify_hpc(b"000000")) == 0x63C2
    assert sw(card, verify_hpc(b"43210987")) == 0x9000


def _read_certificate(card: StaffCard, le: int) -> bytes:
    assert sw(card, SELECT_CERT_EF) == 0x9000
    content, offset = b"", 0
    while True:
        chunk, status = send(card, bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, le & 0xFF]))
        content += chunk
        offset += len(chunk)
        if status == 0x6282:
            return content
        assert status == 0x9000 and len(chunk) == le


@pytest.mark.parametrize("name", UNBLOCKED_HPC)
@pytest.mark.parametrize("le", [256, 200, 128, 1])
def test_hpc_signature_verifies_with_the_certificate_read_back(name: str, le: int) -> None:
    card = selected_hpc(name)
    message = b"E123456789" + name.encode()
    digest = hashlib.sha256(message).digest()
    assert sw(card, pso_cds(digest)) == 0x6982, "the PIN first"
    assert sw(card, verify_hpc(b"000000")) == 0x9000
    signature, status = send(card, pso_cds(digest))
    assert status == 0x9000 and len(signature) == 256
    certificate = x509.load_der_x509_certificate(_read_certificate(card, le))
    assert certificate == bench_pki().staff[name].certificate
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048
    public_key.verify(signature, message, PKCS1v15(), hashes.SHA256())


def test_hpc_pso_refusals() -> None:
    card = hpc("hpc-doctor")
    assert sw(card, pso_cds(bytes(32))) == 0x6985
    send(card, SELECT_HPC)
    send(card, verify_hpc(b"000000"))
    assert sw(card, pso_cds(bytes(31))) == 0x6700
    assert sw(card, pso_cds(bytes(33))) == 0x6700
    assert sw(card, bytes.fromhex("002A9E9B20") + bytes(32) + b"\x00") == 0x6A86
    assert sw(card, bytes.fromhex("002A9E9A20") + bytes(32)) == 0x9000, "Le is optional"


def test_hpc_read_binary_edges() -> None:
    card = hpc("hpc-doctor")
    assert sw(card, SELECT_CERT_EF) == 0x6A82, "the certificate is inside the application"
    assert sw(card, "00 B0 00 00 10") == 0x6986
    send(card, SELECT_HPC)
    assert sw(card, "00 B0 00 00 10") == 0x6986, "no EF selected yet"
    assert sw(card, "00 A4 02 0C 02 50 02") == 0x6A82
    assert sw(card, "00 A4 02 0C 01 50") == 0x6700
    assert sw(card, "00 A4 03 0C 02 50 01") == 0x6A86
    assert sw(card, SELECT_CERT_EF) == 0x9000
    der = bench_pki().staff["hpc-doctor"].certificate.public_bytes(serialization.Encoding.DER)
    size = len(der)
    assert send(card, "00 B0 00 00 00") == (der[:256], 0x9000)
    assert send(card, "00 B0 00 00 08") == (der[:8], 0x9000)
    tail = size - 5
    assert send(card, bytes([0x00, 0xB0, tail >> 8, tail & 0xFF, 0x20])) == (der[tail:], 0x6282)
    assert send(card, bytes([0x00, 0xB0, size >> 8, size & 0xFF, 0x20])) == (b"", 0x6282)
    beyond = size + 1
    assert sw(card, bytes([0x00, 0xB0, beyond >> 8, beyond & 0xFF, 0x20])) == 0x6B00
    assert sw(card, "00 B0 7F FF 01") == 0x6B00
    assert sw(card, "00 B0 81 00 10") == 0x6A86, "short EF identifiers are not supported"
    assert sw(card, "00 B0 00 00") == 0x6700
    assert sw(card, "00 B0 00 00 01 00") == 0x6700
    send(card, SELECT_HPC)
    assert sw(card, "00 B0 00 00 10") == 0x6986, "selecting the application deselects the EF"


@pytest.mark.parametrize("name", HPC_PROFILES)
def test_hpc_reset_drops_verification_but_keeps_the_counters(name: str) -> None:
    card = selected_hpc(name)
    blocked = card.pin_tries_left == 0
    if not blocked:
        assert sw(card, verify_hpc(b"000000")) == 0x9000
        assert sw(card, verify_hpc(b"999999")) == 0x63C2
        assert sw(card, verify_hpc(b"000000")) == 0x9000
        assert sw(card, verify_hpc(b"999999")) == 0x63C2
        assert sw(card, verify_hpc(b"999999")) == 0x63C1
        assert sw(card, verify_hpc(b"000000")) == 0x9000
        assert sw(card, verify_hpc(b"999998")) == 0x63C2
    assert sw(card, reset_retry_counter(b"00000000", b"1111")) == 0x63C9
    assert mutually_authenticate(card) == 0x9000
    assert sw(card, SELECT_CERT_EF) == 0x9000
    before = (card.pin_tries_left, card.puk_tries_left)
    card.reset()
    assert not card.selected and not card.authenticated and not card.pin_verified
    assert (card.pin_tries_left, card.puk_tries_left) == before
    assert sw(card, READ_HPC_BLOCK) == 0x6985
    send(card, SELECT_HPC)
    assert sw(card, "00 B0 00 00 10") == 0x6986
    assert sw(card, "00 20 00 81") == (0x6983 if blocked else 0x63C2)
    assert sw(card, pso_cds(bytes(32))) == 0x6982


def test_hpc_pin_verified_survives_reselection_and_signatures() -> None:
    card = selected_hpc("hpc-nurse")
    send(card, verify_hpc(b"000000"))
    send(card, SELECT_HPC)
    assert sw(card, pso_cds(bytes(32))) == 0x9000
    assert sw(card, pso_cds(bytes(32))) == 0x9000


def test_the_health_cards_notes_file_takes_an_update_only_after_authentication() -> None:
    """`POST /api/hc/v1/RealHc/Update` writes here; the bench card wants the SAM's authentication first."""
    from sim.cards.health_card import NOTES_EF
    from sim.reader_card_authentication import authenticate_card
    from sim.sam import BenchSam

    card = make_card("hc-basic")
    update = bytes([0x00, 0xD6, 0x00, 0x00, 5]) + b"NOTES"
    assert sw(card, SELECT_HC) == 0x9000
    assert sw(card, bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + NOTES_EF) == 0x9000
    assert sw(card, update) == 0x6982
    authenticate_card(card.respond, BenchSam(), "900000000711")
    assert sw(card, bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + NOTES_EF) == 0x9000
    assert sw(card, update) == 0x9000
    assert isinstance(card, HealthCard) and card.notes == b"NOTES"
