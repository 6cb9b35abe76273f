"""Link damage to the session opening never fails a proof or counts toward the lockout.

docs/security.md section 5: a copy of a handshake frame gets a copy of the original answer,
and a late copy of an ended handshake is HANDSHAKE_STALE. Each handshake frame is duplicated
in turn, at delays from at once to well past the programmer's reply timeout, and each answer
is lost in turn so the programmer resends: the session opens, the command applies exactly
once, and the pump's failed-opening count stays 0.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore, RetryPolicy
from hil.two_peer import TO_PROGRAMMER, TO_PUMP, Delivery, ScriptedLink, TwoPeer
from protocol.device_state import EventKind, Role
from protocol.keys import generate_keys
from protocol.messages import AlarmTest, ReadStatus, Status
from protocol.refusal import RefusalCode

pytestmark = pytest.mark.hazard("C2", "C3")

KEYS = generate_keys("PE-000777", bytes(range(3, 67)))
POLICY = RetryPolicy()
COMMAND = AlarmTest(command_id=9)

# The handshake, in the order it crosses the link: (direction, index of the chunk).
HANDSHAKE = {
    "OPEN_SESSION": (TO_PUMP, 0),
    "CHALLENGE": (TO_PROGRAMMER, 0),
    "AUTHENTICATE": (TO_PUMP, 1),
    "SESSION_OPENED": (TO_PROGRAMMER, 1),
}
DELAYS_MS = [0, 1, 999, 1_000, 2_500, 30_000]
"""At once, just after, either side of the reply timeout (1 s), and long after."""


def run(fate: Callable[[str, int, bytes], list[Delivery]]) -> TwoPeer:
    pump = Pump("peristaltic-20")
    device = PumpDevice(pump, KEYS, random.Random(11).randbytes)
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(12).randbytes)
    return TwoPeer(device, core, ManualClock(0), ScriptedLink(fate))


def assert_clean_opening(tp: TwoPeer) -> None:
    result = tp.request(COMMAND)
    assert result.outcome is Outcome.APPLIED, result
    status = tp.request(ReadStatus())
    assert isinstance(status.reply, Status)
    tp.run_until(tp.clock.now_ms() + 60_000)  # every late copy has arrived by now
    assert tp.device.session.failed_openings == 0
    log = tp.device.pump.log()
    failed = [
        e
        for e in log
        if e.kind is EventKind.SECURITY_EVENT
        and e.detail in (RefusalCode.AUTHENTICATION_FAILED, RefusalCode.LOCKED_OUT)
    ]
    assert failed == []
    tests = [e for e in log if e.kind is EventKind.ALARM_TEST]
    assert [e.value_b for e in tests] == [COMMAND.command_id]  # applied exactly once (C1)


@pytest.mark.parametrize("delay_ms", DELAYS_MS, ids=[f"{d}ms" for d in DELAYS_MS])
@pytest.mark.parametrize("frame", list(HANDSHAKE), ids=list(HANDSHAKE))
def test_a_duplicated_handshake_frame_never_fails_the_opening(frame: str, delay_ms: int) -> None:
    target = HANDSHAKE[frame]

    def fate(direction: str, index: int, data: bytes) -> list[Delivery]:
        if (direction, index) == target:
            return [Delivery(1, data), Delivery(1 + delay_ms, data)]
        return [Delivery(1, data)]

    assert_clean_opening(run(fate))


@pytest.mark.parametrize("frame", list(HANDSHAKE), ids=list(HANDSHAKE))
def test_a_lost_handshake_frame_is_resent_and_its_copy_answered_alike(frame: str) -> None:
    """The frame (or its answer) is lost: the programmer sends the same frame again, and the
    pump answers the copy as it answered, or would have answered, the original."""
    target = HANDSHAKE[frame]

    def fate(direction: str, index: int, data: bytes) -> list[Delivery]:
        return [] if (direction, index) == target else [Delivery(1, data)]

    tp = run(fate)
    assert_clean_opening(tp)


@pytest.mark.parametrize("frame", list(HANDSHAKE), ids=list(HANDSHAKE))
def test_a_handshake_frame_delayed_past_a_new_opening_is_stale_not_a_failure(frame: str) -> None:
    """The frame arrives only after the programmer has given up on it and opened again with
    fresh nonces: the late copy must not replace or fail the newer handshake."""
    target = HANDSHAKE[frame]
    late_ms = POLICY.reply_timeout_ms * (POLICY.attempts + 1) + 500

    def fate(direction: str, index: int, data: bytes) -> list[Delivery]:
        if (direction, index) == target:
            return [Delivery(late_ms, data)]
        return [Delivery(1, data)]

    assert_clean_opening(run(fate))
