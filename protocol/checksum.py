"""The frame check sequence: CRC-16/CCITT-FALSE (docs/protocol.md, "Frame check").

Parameters (Rocksoft model): width 16, poly 0x1021, init 0xFFFF, refin false, refout false,
xorout 0x0000, check 0x29B1 (the CRC of the ASCII bytes ``123456789``).

``binascii.crc_hqx`` computes exactly this variant in C when seeded with 0xFFFF (seeded with 0
it is XMODEM, check 0x31C3: docs/field-notes.md "CRC"). The CRC detects corruption on the link
(C2); it is not a security control, which is the session layer's AEAD tag.
"""

from __future__ import annotations

import binascii

CRC16_NAME = "CRC-16/CCITT-FALSE"
CRC16_POLY = 0x1021
CRC16_INIT = 0xFFFF
CRC16_XOROUT = 0x0000
CRC16_CHECK = 0x29B1
"""CRC of b"123456789": a client in another language checks its implementation with it."""


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE of ``data``, as an integer 0..0xFFFF."""
    return binascii.crc_hqx(data, CRC16_INIT)
