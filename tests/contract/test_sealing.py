"""The contract, frame by frame: what a pump does with frames no honest programmer sends.

These tests build every frame themselves (tests/raw_programmer.py) on the plugin's
``pump_link`` fixture: raw bytes to the pump under test, on any backend.
"""

from __future__ import annotations

import time

import pytest

from hil.links import Link
from hil.pytest_plugin import PumpTarget
from protocol import codec
from protocol.codec import Frame
from protocol.messages import Challenge, Message, Nak, ReadStatus, SessionOpened, Status
from protocol.refusal import RefusalCode
from tests.raw_programmer import RawProgrammer

WAIT_S = 5.0
"""The longest a reply may take on a real link (the wire backend answers at once)."""


def exchange(
    link: Link, raw: RawProgrammer, data: bytes, target: PumpTarget
) -> list[tuple[Frame, Message]]:
    """Send ``data`` and return the first replies that come back."""
    link.write(data)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        replies = raw.receive(link.read(0.1 if target.backend != "wire" else 1.0))
        if replies:
            return replies
    pytest.fail(f"no reply within {WAIT_S} s")


def opened(link: Link, target: PumpTarget) -> RawProgrammer:
    raw = RawProgrammer(target.keys)
    ((_, challenge),) = exchange(link, raw, raw.open_session(), target)
    assert isinstance(challenge, Challenge)
    ((_, welcome),) = exchange(link, raw, raw.authenticate(challenge), target)
    assert isinstance(welcome, SessionOpened)
    raw.confirm(welcome)
    return raw


@pytest.mark.hazard("C3")
def test_a_replayed_sealed_frame_is_refused_and_changes_nothing(
    pump_link: Link, pump_target: PumpTarget
) -> None:
    raw = opened(pump_link, pump_target)
    _seq, frame = raw.sealed(ReadStatus())
    ((_, first),) = exchange(pump_link, raw, frame, pump_target)
    assert isinstance(first, Status)
    ((header, again),) = exchange(pump_link, raw, frame, pump_target)
    assert isinstance(again, Nak)
    assert again.code is RefusalCode.REPLAY_DETECTED
    assert header.is_sealed  # a refusal inside the session is sealed (protocol.md 4)


@pytest.mark.hazard("C4")
def test_an_unsealed_request_is_not_authenticated(pump_link: Link, pump_target: PumpTarget) -> None:
    raw = RawProgrammer(pump_target.keys)
    ((header, reply),) = exchange(pump_link, raw, codec.encode(ReadStatus(), seq=1), pump_target)
    assert isinstance(reply, Nak)
    assert reply.code is RefusalCode.NOT_AUTHENTICATED
    assert not header.is_sealed


@pytest.mark.hazard("C2")
def test_a_frame_with_a_bad_crc_is_answered_frame_corrupt(
    pump_link: Link, pump_target: PumpTarget
) -> None:
    raw = RawProgrammer(pump_target.keys)
    frame = bytearray(raw.open_session())
    frame[-1] ^= 0x01  # the CRC's last byte
    ((_, reply),) = exchange(pump_link, raw, bytes(frame), pump_target)
    assert isinstance(reply, Nak)
    assert reply.code is RefusalCode.FRAME_CORRUPT
