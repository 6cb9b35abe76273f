"""A programmer, the emulated pump and a conformance monitor on the programmer's side of the
link, in one thread on a manual clock.

``Rig`` moves real frames: a ``RawProgrammer`` (tests/raw_programmer.py) builds them, the
``PumpDevice`` answers, and the monitor sees what the programmer sent and received. A reply
can be dropped on its way back (``drop_reply=True``), as a lossy link would: the monitor
then never sees it, like the programmer.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.conformance import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor, Violation
from protocol import codec
from protocol.codec import Frame
from protocol.device_state import Role
from protocol.keys import generate_keys
from protocol.messages import (
    Authenticate,
    Challenge,
    CloseSession,
    Message,
    OpenSession,
    SessionOpened,
)
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from tests.raw_programmer import RawProgrammer

KEYS = generate_keys("PE-000316", bytes(range(16, 80)))
CLOCK_2026_MS = 1_767_225_600_000
"""2026-01-01 00:00, pump local time: a pump clock that was set."""
RX = Prescription(
    drug_name="Baclofen",
    concentration_ug_per_ml=2_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 250_000),),
    patient_bolus=PatientBolusLimits(10_000, 60, 600, 24),
    low_reservoir_threshold_nl=2_000_000,
)
RX_TOO_FAST = Prescription(
    drug_name="Baclofen",
    concentration_ug_per_ml=2_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 90_000_000),),
    patient_bolus=None,
    low_reservoir_threshold_nl=2_000_000,
)


def new_pump(*, clock_set: bool = True) -> Pump:
    pump = Pump("peristaltic-20", start_ms=0)
    if clock_set:
        pump.set_clock(CLOCK_2026_MS)
    return pump


class Rig:
    def __init__(
        self, pump: Pump | None = None, *, role: Role = Role.CLINICIAN, seed: int = 0
    ) -> None:
        self.pump = pump if pump is not None else new_pump()
        self.device = PumpDevice(self.pump, KEYS, random.Random(seed).randbytes)
        self.monitor = ConformanceMonitor(KEYS)
        self.programmer = RawProgrammer(KEYS, role)
        self.now = self.device.now_ms
        self.handshake_seq = 0x8000_0000
        self.tamper: Callable[[bytes], bytes] | None = None
        """Rewrites the pump's bytes on their way to the programmer (a forging link)."""

    # -- moving frames --

    def send(self, data: bytes, *, drop_reply: bool = False) -> list[tuple[Frame, Message]]:
        """``data`` from the programmer to the pump; the replies the programmer received."""
        self.now += 1
        self.monitor.feed(TO_PUMP, data, self.now)
        self.device.receive_data(data, self.now)
        out = self.device.data_to_send()
        if drop_reply:
            return []
        if self.tamper is not None:
            out = self.tamper(out)
        self.monitor.feed(TO_PROGRAMMER, out, self.now)
        return self.programmer.receive(out)

    def advance(self, ms: int) -> None:
        self.now += ms
        self.device.handle_timer(self.now)
        self.device.data_to_send()

    # -- a programmer's steps --

    def open(self, *, check_proof: bool = True) -> None:
        request = self.programmer.session.start(random.Random(self.now).randbytes(16))
        opening = codec.encode(
            OpenSession(role=request.role, programmer_nonce=request.programmer_nonce),
            seq=self.handshake_seq,
        )
        [(_, challenge)] = self.send(opening)
        assert isinstance(challenge, Challenge)
        answer = self.programmer.session.answer_challenge(challenge.pump_nonce, challenge.serial)
        auth = codec.encode(Authenticate(proof=answer.proof), seq=self.handshake_seq + 1)
        self.handshake_seq += 2
        [(_, opened)] = self.send(auth)
        assert isinstance(opened, SessionOpened)
        if check_proof:
            self.programmer.confirm(opened)

    def request(self, message: Message, *, drop_reply: bool = False) -> Message | None:
        """``message`` sealed in the next frame; the reply the programmer received."""
        _seq, frame = self.programmer.sealed(message)
        replies = self.send(frame, drop_reply=drop_reply)
        return replies[-1][1] if replies else None

    def close(self) -> None:
        self.request(CloseSession())

    def finish(self) -> tuple[Violation, ...]:
        return self.monitor.finish(self.now)

    def broken(self) -> set[str]:
        return {v.rule for v in self.finish()}
