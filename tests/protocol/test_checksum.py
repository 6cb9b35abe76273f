"""The frame check is CRC-16/CCITT-FALSE, cross-checked against an independent implementation."""

from __future__ import annotations

from crccheck.crc import Crc16CcittFalse
from hypothesis import given
from hypothesis import strategies as st

from protocol.checksum import CRC16_CHECK, CRC16_INIT, CRC16_NAME, CRC16_POLY, crc16


def test_check_value_of_the_standard_string() -> None:
    assert crc16(b"123456789") == CRC16_CHECK == 0x29B1


def test_parameters_match_the_independent_implementation() -> None:
    assert CRC16_NAME == "CRC-16/CCITT-FALSE"
    assert Crc16CcittFalse._poly == CRC16_POLY
    assert Crc16CcittFalse._initvalue == CRC16_INIT
    assert Crc16CcittFalse._check_result == CRC16_CHECK


def test_is_not_xmodem() -> None:
    # crc_hqx seeded with 0 is XMODEM (check 0x31C3): the seed is what makes this variant.
    assert crc16(b"123456789") != 0x31C3


@given(st.binary(max_size=1100))
def test_agrees_with_crccheck(data: bytes) -> None:
    assert crc16(data) == Crc16CcittFalse.calc(data)


@given(st.binary(max_size=64))
def test_accepts_every_bytes_like_type(data: bytes) -> None:
    assert crc16(bytearray(data)) == crc16(memoryview(data)) == crc16(data)
