"""The health card's public data block parser: exact fields, and every way an answer can be wrong."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.apdu import HC_AID, HPC_AID, ResponseApdu, ResponseTooShort, parse_response, select_aid
from workers.card_kind import HEALTH_CARD, STAFF_CARD, UNKNOWN_CARD, identify
from workers.health_card import DataBlockError, HealthCardPublicData, parse_public_data


def block(
    name: bytes = "測試資料".encode("big5"),
    *,
    card_id: bytes = b"900000000711",
    id_no: bytes = b"R88855084A",
    birthday: bytes = b"0741201",
    sex: bytes = b"F",
    issued: bytes = b"1070101",
) -> bytes:
    return card_id + name.ljust(20, b"\x00") + id_no + birthday + sex + issued


def test_hc_basic_block_parses_to_the_profile() -> None:
    assert parse_public_data(ResponseApdu(block(), 0x9000)) == HealthCardPublicData(
        card_id="900000000711", name="測試資料", id_no="R88855084A", birthday="0741201", sex="F", date_issue="1070101"
    )


@pytest.mark.parametrize("length", range(1, 11))
def test_names_of_1_to_10_characters(length: int) -> None:
    name = "測試資料王小明陳大文"[:length]
    assert parse_public_data(ResponseApdu(block(name.encode("big5")), 0x9000)).name == name


def test_a_name_that_is_not_big5_is_refused() -> None:
    with pytest.raises(DataBlockError, match="Big5"):
        parse_public_data(ResponseApdu(block(b"\xff\xff\xff\xff"), 0x9000))


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(DataBlockError, match="empty"):
        parse_public_data(ResponseApdu(block(b""), 0x9000))


@pytest.mark.parametrize("length", [0, 1, 56, 58])
def test_a_block_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(DataBlockError, match="bytes"):
        parse_public_data(ResponseApdu((block() * 2)[:length], 0x9000))


@pytest.mark.parametrize("sw", [0x6A82, 0x6982, 0x6D00, 0x6700])
def test_an_error_status_word_is_refused_with_the_status(sw: int) -> None:
    with pytest.raises(DataBlockError, match=f"{sw:04X}"):
        parse_public_data(ResponseApdu(block(), sw))


def test_bad_fixed_fields_are_refused_without_echoing_them() -> None:
    with pytest.raises(DataBlockError) as raised:
        parse_public_data(ResponseApdu(block(sex=b"X"), 0x9000))
    assert "X" not in str(raised.value).replace("M nor F", "")
    with pytest.raises(DataBlockError, match="birthday"):
        parse_public_data(ResponseApdu(block(birthday=b"07412AB"), 0x9000))
    with pytest.raises(DataBlockError, match="card number"):
        parse_public_data(ResponseApdu(block(card_id=b"90000000071\xff"), 0x9000))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 0xFFFF))
def test_any_answer_parses_or_is_a_data_block_error(data: bytes, sw: int) -> None:
    try:
        parse_public_data(ResponseApdu(data, sw))
    except DataBlockError:
        pass


def test_response_parsing() -> None:
    assert parse_response(b"\x01\x02\x90\x00") == ResponseApdu(b"\x01\x02", 0x9000)
    assert parse_response(b"\x6a\x82").sw == 0x6A82
    with pytest.raises(ResponseTooShort):
        parse_response(b"\x90")


def test_select_apdu_bytes() -> None:
    assert select_aid(HC_AID).hex().upper() == "00A4040010D158000001000000000000000000110000"


def test_identify_by_select() -> None:
    def card_answering(aid: bytes) -> Callable[[bytes], bytes]:
        return lambda apdu: b"\x90\x00" if apdu == select_aid(aid) else b"\x6a\x82"

    assert identify(card_answering(HC_AID)) == HEALTH_CARD
    assert identify(card_answering(HPC_AID)) == STAFF_CARD
    assert identify(lambda apdu: b"\x6a\x82") == UNKNOWN_CARD
    assert identify(lambda apdu: b"") == UNKNOWN_CARD
