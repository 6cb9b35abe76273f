"""PumpDevice on two timelines: pump time (``now_ms``) and link time (``link_ms``) move apart.

The session's idle timeout and maximum length, the opening lockout, the stage lifetime and
the give-up on a partial frame run on link time (docs/security.md section 6, docs/protocol.md
section 1); therapy runs on pump time. Each test moves one timeline and holds the other, and
checks what the programmer is told.
"""

from __future__ import annotations

import random

import pytest

from emulator.device import RX_IDLE_MS, PumpDevice
from emulator.pump import Pump
from protocol import codec
from protocol.device_state import Role
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    Challenge,
    CommitPrescription,
    Message,
    Nak,
    OpenSession,
    PrescriptionStaged,
    ReadStatus,
    SessionOpened,
    StagePrescription,
    Status,
)
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import RefusalCode
from protocol.session import SessionLimits, SessionState
from tests.raw_programmer import RawProgrammer

KEYS = generate_keys("PE-000777", bytes(range(9, 73)))
DAY_MS = 86_400_000
IDLE_S = 2
MAX_S = 60
LIMITS = SessionLimits(idle_timeout_s=IDLE_S, max_session_s=MAX_S, max_failed_openings=3,
                       lockout_s=30)  # fmt: skip
RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=None,
    low_reservoir_threshold_nl=2_000_000,
)


class Rig:
    """A device and a raw programmer, with both timelines set by hand."""

    def __init__(self, limits: SessionLimits = LIMITS) -> None:
        self.device = PumpDevice(Pump("peristaltic-20"), KEYS, random.Random(5).randbytes,
                                 limits=limits)  # fmt: skip
        self.now = 0
        self.link = 0

    def send(self, data: bytes, programmer: RawProgrammer) -> Message:
        """Deliver ``data`` at (now, link); the one reply the pump sends."""
        self.device.receive_data(data, self.now, self.link)
        replies = programmer.receive(self.device.data_to_send())
        assert len(replies) == 1, replies
        return replies[0][1]

    def open(self, role: Role = Role.CLINICIAN) -> RawProgrammer:
        programmer = RawProgrammer(KEYS, role)
        challenge = self.send(programmer.open_session(), programmer)
        assert isinstance(challenge, Challenge), challenge
        opened = self.send(programmer.authenticate(challenge), programmer)
        assert isinstance(opened, SessionOpened), opened
        programmer.confirm(opened)
        return programmer

    def request(self, programmer: RawProgrammer, message: Message) -> Message:
        return self.send(programmer.sealed(message)[1], programmer)

    def state(self) -> SessionState:
        return self.device.session.state

    def tick(self) -> None:
        """Fire what is due at (now, link), as the serve loop does between reads."""
        self.device.handle_timer(self.now, self.link)


def test_the_idle_timeout_runs_on_link_time_while_pump_time_stands_still() -> None:
    rig = Rig()
    programmer = rig.open()
    rig.link = 1_000
    assert isinstance(rig.request(programmer, ReadStatus()), Status)  # restarts the idle timer
    assert rig.device.get_link_timer() == 1_000 + IDLE_S * 1000
    rig.link = 1_000 + IDLE_S * 1000 - 1
    rig.tick()
    assert rig.state() is SessionState.OPEN  # 1 ms before: still open
    rig.link += 1
    rig.tick()
    assert rig.state() is SessionState.EXPIRED
    assert rig.device.now_ms == 0  # pump time never moved
    reply = rig.request(programmer, ReadStatus())
    assert isinstance(reply, Nak)
    assert reply.code is RefusalCode.SESSION_EXPIRED


def test_the_maximum_session_length_runs_on_link_time() -> None:
    rig = Rig()
    programmer = rig.open()
    while rig.link < MAX_S * 1000 - 1_000:  # busy all along: the idle timer never fires
        rig.link += 1_000
        assert isinstance(rig.request(programmer, ReadStatus()), Status)
    rig.link = MAX_S * 1000
    reply = rig.request(programmer, ReadStatus())
    assert isinstance(reply, Nak)
    assert reply.code is RefusalCode.SESSION_EXPIRED
    assert rig.device.now_ms == 0


def test_days_of_pump_time_never_expire_a_session() -> None:
    """A rig running pump time at x1000 or by hand: 30 days pass for the pump within one
    link second, and the session (2 s idle, 60 s maximum) is still open."""
    rig = Rig()
    programmer = rig.open()
    for day in range(1, 31):
        rig.now = day * DAY_MS
        rig.link += 30
        rig.tick()
        assert rig.state() is SessionState.OPEN
    status = rig.request(programmer, ReadStatus())
    assert isinstance(status, Status)
    assert status.pump_time_ms == 30 * DAY_MS


def test_session_busy_names_the_link_seconds_left() -> None:
    rig = Rig()
    rig.open()
    rig.now = 7 * DAY_MS  # pump time is irrelevant to the answer
    rig.link = 500
    other = RawProgrammer(KEYS)
    busy = rig.send(other.open_session(), other)
    assert isinstance(busy, Nak)
    assert busy.code is RefusalCode.SESSION_BUSY
    assert busy.limit == 2  # 1.5 s until the idle timeout, rounded up
    rig.link = 1_001
    busy = rig.send(other.open_session(), other)
    assert isinstance(busy, Nak)
    assert busy.limit == 1  # 0.999 s
    rig.link = IDLE_S * 1000  # the orphaned session idles out on link time: the pump is free
    assert isinstance(rig.send(other.open_session(), other), Challenge)


def stage(rig: Rig, programmer: RawProgrammer) -> bytes:
    staged = rig.request(programmer, StagePrescription(RX))
    assert isinstance(staged, PrescriptionStaged), staged
    return staged.digest


LONG = SessionLimits(idle_timeout_s=3_600, max_session_s=7_200, max_failed_openings=3,
                     lockout_s=30)  # fmt: skip
"""Session timers far away, so only the stage lifetime decides."""


@pytest.mark.parametrize("late_ms", [0, 1])
def test_the_stage_lifetime_runs_on_link_time(late_ms: int) -> None:
    """COMMIT exactly one stage lifetime after STAGE (link time) applies; 1 ms later it is
    STAGE_EXPIRED ("older than the stage lifetime"), with pump time never moved."""
    rig = Rig(LONG)
    programmer = rig.open()
    rig.link = 10_000
    digest = stage(rig, programmer)
    lifetime_s = rig.device.pump.profile.stage_lifetime_s
    rig.link += lifetime_s * 1000 + late_ms
    rig.tick()
    reply = rig.request(programmer, CommitPrescription(command_id=5, digest=digest))
    if late_ms == 0:
        assert isinstance(reply, Ack), reply
    else:
        assert isinstance(reply, Nak), reply
        assert reply.code is RefusalCode.STAGE_EXPIRED
        assert reply.limit == lifetime_s
    assert rig.device.now_ms == 0


def test_days_of_pump_time_never_expire_a_stage() -> None:
    rig = Rig(LONG)
    programmer = rig.open()
    digest = stage(rig, programmer)
    rig.now = 3 * DAY_MS  # far past the 600 s lifetime, on pump time only
    rig.link = 1_500
    rig.tick()
    reply = rig.request(programmer, CommitPrescription(command_id=6, digest=digest))
    assert isinstance(reply, Ack), reply
    assert rig.device.pump.status().last_command_id == 6


def test_a_partial_frame_is_given_up_on_link_time() -> None:
    """A header whose payload never comes: the pump answers FRAME_CORRUPT naming its SEQ
    RX_IDLE_MS of link time later, with pump time held, and then reads a fresh frame."""
    rig = Rig()
    programmer = RawProgrammer(KEYS)
    whole = codec.encode(OpenSession(Role.CLINICIAN, bytes(range(16))), seq=9)
    rig.device.receive_data(whole[:20], rig.now, rig.link)
    assert rig.device.data_to_send() == b""
    assert rig.device.get_link_timer() == RX_IDLE_MS
    rig.now = DAY_MS  # pump time alone never gives it up
    rig.link = RX_IDLE_MS - 1
    rig.tick()
    assert rig.device.data_to_send() == b""
    rig.link = RX_IDLE_MS
    rig.tick()
    [(frame, nak)] = programmer.receive(rig.device.data_to_send())
    assert isinstance(nak, Nak)
    assert nak.code is RefusalCode.FRAME_CORRUPT
    assert frame.ref == 9
    assert isinstance(rig.send(programmer.open_session(), programmer), Challenge)


def test_a_caller_on_two_timelines_must_keep_passing_link_time() -> None:
    rig = Rig()
    rig.device.get_timer()  # one timeline so far: allowed
    rig.tick()  # link_ms given: the device now keeps two timelines
    with pytest.raises(RuntimeError, match="two timelines"):
        rig.device.get_timer()
    with pytest.raises(ValueError, match="pass link_ms every time"):
        rig.device.handle_timer(rig.now)
    with pytest.raises(ValueError, match="must not go backwards"):
        rig.device.handle_timer(rig.now, rig.link - 1)  # link time never goes back
