"""Exactly-once therapy commands over a misbehaving link (C1), and two-phase programming (C5).

The programmer core and the emulated pump run in one thread on a manual clock
(``hil.two_peer.TwoPeer``). Hypothesis chooses the fate of every chunk written to the link
(drop, duplicate, delay, corrupt), cuts the link for a while (long enough, sometimes, to
expire the pump's session), and restarts the programmer app (a new ``ProgrammerCore`` with
the same keys, sometimes in the middle of a command). Whatever it picks:

- no command id is ever applied twice;
- a command the programmer reports APPLIED was applied exactly once;
- a command it reports REFUSED or NOT_APPLIED was not applied;
- UNCERTAIN happens only when the link was cut for longer than the programmer's retries.

"Applied" is counted independently of the device's ledger: every pump command method is
wrapped, and each call the firmware accepts is counted by its command id.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.firmware.results import Refused
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore, Result, RetryPolicy
from hil.two_peer import TO_PUMP, Delivery, PerfectLink, ScriptedLink, TwoPeer
from protocol import codec
from protocol.device_state import EventKind, Role
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    AlarmTest,
    CancelBolus,
    ClinicianBolus,
    CommitPrescription,
    KeepAlive,
    Message,
    Nak,
    PatientBolusRequest,
    PrescriptionStaged,
    ReadPrescription,
    StagePrescription,
    StartTherapy,
    StopTherapy,
)
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.refusal import RefusalCode

KEYS = generate_keys("PE-000077", bytes(range(7, 71)))
RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=PatientBolusLimits(10_000, 60, 600, 24),
    low_reservoir_threshold_nl=2_000_000,
)
RX2 = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 700_000),),
    patient_bolus=None,
    low_reservoir_threshold_nl=2_000_000,
)
POLICY = RetryPolicy()
COMMAND_METHODS = (
    "start",
    "stop",
    "clinician_bolus",
    "cancel_bolus",
    "patient_bolus",
    "alarm_test",
    "commit",
)
LOGGED_ID_KINDS = {EventKind.THERAPY_STARTED, EventKind.THERAPY_STOPPED, EventKind.ALARM_TEST}
"""Log entries a command writes, whose value_b is its command id (docs/protocol.md 11)."""


def count_applications(pump: Pump) -> Counter[int]:
    """Wrap the pump's command methods; the counter counts accepted calls by command id."""
    applied: Counter[int] = Counter()

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, command_id: int | None = None, **kwargs: Any) -> Any:
            result = method(*args, command_id=command_id, **kwargs)
            if not isinstance(result, Refused) and command_id is not None:
                applied[command_id] += 1
            return result

        return counted

    for name in COMMAND_METHODS:
        setattr(pump, name, wrap(getattr(pump, name)))
    return applied


def build(link: Any = None, *, seed: int = 0) -> tuple[TwoPeer, Counter[int]]:
    pump = Pump("peristaltic-20", start_ms=0)
    assert not isinstance(pump.program(RX, command_id=1), Refused)
    applied = count_applications(pump)
    device = PumpDevice(pump, KEYS, random.Random(seed).randbytes)
    clock = ManualClock(0)
    tp = TwoPeer(device, new_programmer(Role.CLINICIAN, seed + 1), clock, link)
    return tp, applied


def new_programmer(role: Role, seed: int) -> ProgrammerCore:
    return ProgrammerCore(KEYS.serial, role, KEYS.key_for(role), random.Random(seed).randbytes)


# -- the link script -------------------------------------------------------------------------

fates = st.one_of(
    st.tuples(st.just("delay"), st.integers(0, 3_000)),
    st.tuples(st.just("drop"), st.just(0)),
    st.tuples(st.just("duplicate"), st.integers(0, 5_000)),
    st.tuples(st.just("corrupt"), st.integers(0, 10_000)),
)
MAX_FATES = 6
"""Bad fates per direction. Each can spoil one attempt; the core tolerates four lost
sessions of four attempts each, so a link this bad must still get every command through."""


@dataclass
class Chaos:
    """The fates hypothesis chose, then a good link; plus link cuts set by the test."""

    clock: ManualClock
    to_pump: list[tuple[str, int]]
    to_programmer: list[tuple[str, int]]
    cuts: list[tuple[int, int]] = field(default_factory=list)

    def fate(self, direction: str, index: int, data: bytes) -> list[Delivery]:
        now = self.clock.now_ms()
        if any(start <= now < end for start, end in self.cuts):
            return []
        script = self.to_pump if direction == TO_PUMP else self.to_programmer
        kind, value = script[index] if index < len(script) else ("delay", 1)
        if kind == "delay":
            return [Delivery(value, data)]
        if kind == "drop":
            return []
        if kind == "duplicate":
            return [Delivery(1, data), Delivery(value, data)]
        damaged = bytearray(data)
        damaged[value % len(damaged)] ^= 0x40
        return [Delivery(1, bytes(damaged))]


COMMAND_KINDS = ("patient_bolus", "clinician_bolus", "stop", "start", "alarm_test", "cancel")


def command(kind: str, command_id: int) -> Message:
    match kind:
        case "patient_bolus":
            return PatientBolusRequest(command_id=command_id)
        case "clinician_bolus":
            return ClinicianBolus(command_id=command_id, dose_nl=2_000, duration_s=60)
        case "stop":
            return StopTherapy(command_id=command_id)
        case "start":
            return StartTherapy(command_id=command_id)
        case "alarm_test":
            return AlarmTest(command_id=command_id)
        case _:
            return CancelBolus(command_id=command_id)


@dataclass(frozen=True)
class Step:
    kind: str
    gap_ms: int
    """Time that passes before the command is submitted."""
    restart: Role | None
    """The programmer app restarts (new core, same keys) in this role before the command."""
    crash_after_ms: int | None
    """The app crashes this long after submitting, before the command is resolved."""
    cut: tuple[int, int] | None
    """The link is cut (delay after submission, length) during the command."""


steps = st.builds(
    Step,
    kind=st.sampled_from(COMMAND_KINDS),
    gap_ms=st.sampled_from([0, 30_000, 700_000]),
    restart=st.one_of(st.none(), st.sampled_from([Role.CLINICIAN, Role.PATIENT])),
    crash_after_ms=st.one_of(st.none(), st.integers(0, 5_000)),
    cut=st.one_of(
        st.none(), st.tuples(st.integers(0, 3_000), st.sampled_from([500, 3_000, 400_000]))
    ),
)


@pytest.mark.hazard("C1")
@given(
    to_pump=st.lists(fates, max_size=MAX_FATES),
    to_programmer=st.lists(fates, max_size=MAX_FATES),
    script=st.lists(steps, min_size=1, max_size=6),
)
def test_every_command_is_applied_at_most_once_and_reported_honestly(
    to_pump: list[tuple[str, int]],
    to_programmer: list[tuple[str, int]],
    script: list[Step],
) -> None:
    clock = ManualClock(0)
    chaos = Chaos(clock, to_pump, to_programmer)
    pump = Pump("peristaltic-20", start_ms=0)
    assert not isinstance(pump.program(RX, command_id=1), Refused)
    applied = count_applications(pump)
    device = PumpDevice(pump, KEYS, random.Random(0).randbytes)
    tp = TwoPeer(device, new_programmer(Role.CLINICIAN, 1), clock, ScriptedLink(chaos.fate))
    reports: dict[int, Result] = {}
    cut_lengths: dict[int, int] = {}
    crashed: set[int] = set()
    for index, step in enumerate(script):
        command_id = 1_000 + index
        tp.run_until(clock.now_ms() + step.gap_ms)
        if step.restart is not None:
            tp.programmer = new_programmer(step.restart, 100 + index)
        now = clock.now_ms()
        if step.cut is not None:
            delay, length = step.cut
            chaos.cuts.append((now + delay, now + delay + length))
            cut_lengths[command_id] = length
        # A long cut made during an earlier command can still be on: it counts here too.
        still_cut = [end - max(start, now) for start, end in chaos.cuts if end > now]
        cut_lengths[command_id] = max([cut_lengths.get(command_id, 0), *still_cut])
        message = command(step.kind, command_id)
        if step.crash_after_ms is not None:
            tp.programmer.submit(message, now)
            tp.run_until(now + step.crash_after_ms)
            done = tp.programmer.results()
            if done:
                reports[command_id] = done[-1]
            else:
                crashed.add(command_id)
            tp.programmer = new_programmer(Role.CLINICIAN, 200 + index)
            continue
        reports[command_id] = tp.request(message)
    tp.run_until(clock.now_ms() + 10_000)  # frames still in flight arrive

    # No command id is ever applied twice, by the pump's methods or in its log.
    assert all(n == 1 for n in applied.values()), applied
    logged = Counter(e.value_b for e in pump.log() if e.kind in LOGGED_ID_KINDS)
    assert all(n == 1 for cid, n in logged.items() if cid >= 1_000), logged
    ledger = set(device.ledger.applied_ids())
    for command_id, result in reports.items():
        times = applied[command_id]
        event(f"{result.outcome.name} {result.refusal} {result.detail[:40]}")
        if result.outcome is Outcome.APPLIED:
            assert times == 1, (command_id, result)
            assert command_id in ledger
            if isinstance(result.reply, Ack):
                assert result.reply.command_id == command_id
        elif result.outcome in (Outcome.REFUSED, Outcome.NOT_APPLIED):
            assert times == 0, (command_id, result)
            assert command_id not in ledger
        else:
            assert result.outcome is Outcome.UNCERTAIN, result
            # Only a cut longer than one session's worth of retries leaves a doubt.
            cut = cut_lengths.get(command_id, 0)
            assert cut > POLICY.reply_timeout_ms * POLICY.attempts, (command_id, result, cut)
    assert set(applied) <= set(reports) | crashed | {1}


@pytest.mark.hazard("C1")
def test_a_lost_ack_is_resolved_and_the_retry_applies_nothing() -> None:
    """The reply to a bolus is lost every time: the pump applied it once, the programmer
    reports APPLIED (from the ledger's repeated ACK or from STATUS), and it is applied once."""
    lost = {0, 1, 2, 3}

    def fate(direction: str, index: int, data: bytes) -> list[Delivery]:
        if direction != TO_PUMP and index - 2 in lost:  # after CHALLENGE, SESSION_OPENED
            return []
        return [Delivery(1, data)]

    tp, applied = build(ScriptedLink(fate))
    result = tp.request(ClinicianBolus(command_id=5, dose_nl=2_000, duration_s=60))
    assert result.outcome is Outcome.APPLIED, result
    assert result.resolved_by_status
    assert applied[5] == 1


# -- C5: two-phase programming over the wire ----------------------------------------------------


def staged(tp: TwoPeer, rx: Prescription = RX2) -> PrescriptionStaged:
    result = tp.request(StagePrescription(prescription=rx))
    assert isinstance(result.reply, PrescriptionStaged), result
    assert result.reply.digest == codec.prescription_digest(rx)
    return result.reply


def running_prescription(tp: TwoPeer) -> Prescription | None:
    return tp.device.pump.status().prescription


@pytest.mark.hazard("C5")
def test_session_cut_between_stage_and_commit_changes_nothing() -> None:
    cut: list[tuple[int, int]] = []
    clock_ref: list[ManualClock] = []

    def fate(direction: str, index: int, data: bytes) -> list[Delivery]:
        now = clock_ref[0].now_ms()
        return [] if any(a <= now < b for a, b in cut) else [Delivery(1, data)]

    tp, applied = build(ScriptedLink(fate))
    clock_ref.append(tp.clock)
    reply = staged(tp)
    # The link goes down for longer than the pump's idle timeout: the session expires and
    # the staged prescription goes with it.
    idle_ms = tp.device.pump.profile.session_idle_timeout_s * 1000
    now = tp.clock.now_ms()
    cut.append((now, now + idle_ms + 1_000))
    tp.run_until(now + idle_ms + 1_000)
    assert tp.device.pump.snapshot()  # still a consistent pump
    assert running_prescription(tp) == RX
    result = tp.request(CommitPrescription(command_id=60, digest=reply.digest))
    assert result.outcome is Outcome.REFUSED
    assert result.refusal is RefusalCode.NOTHING_STAGED
    assert running_prescription(tp) == RX
    assert applied[60] == 0


@pytest.mark.hazard("C5")
def test_closing_the_session_discards_the_stage() -> None:
    tp, applied = build()
    reply = staged(tp)
    tp.close()
    result = tp.request(CommitPrescription(command_id=61, digest=reply.digest))
    assert result.refusal is RefusalCode.NOTHING_STAGED
    assert running_prescription(tp) == RX
    assert applied[61] == 0


@pytest.mark.hazard("C5")
def test_wrong_digest_is_refused_and_the_stage_survives() -> None:
    tp, applied = build()
    reply = staged(tp)
    wrong = bytes(b ^ 0xFF for b in reply.digest)
    result = tp.request(CommitPrescription(command_id=62, digest=wrong))
    assert isinstance(result.reply, Nak)
    assert result.refusal is RefusalCode.DIGEST_MISMATCH
    assert running_prescription(tp) == RX
    assert applied[62] == 0
    ok = tp.request(CommitPrescription(command_id=63, digest=reply.digest))
    assert ok.outcome is Outcome.APPLIED
    assert running_prescription(tp) == RX2
    read = tp.request(ReadPrescription())
    assert getattr(read.reply, "prescription", None) == RX2


@pytest.mark.hazard("C5")
def test_expired_stage_is_refused() -> None:
    tp, applied = build()
    reply = staged(tp)
    lifetime_ms = tp.device.pump.profile.stage_lifetime_s * 1000
    start = tp.clock.now_ms()
    # Keep the session alive (idle timeout 120 s) until the stage has expired.
    while tp.clock.now_ms() < start + lifetime_ms:
        tp.run_until(tp.clock.now_ms() + 60_000)
        assert tp.request(KeepAlive()).outcome is Outcome.ANSWERED
    result = tp.request(CommitPrescription(command_id=64, digest=reply.digest))
    assert result.refusal is RefusalCode.STAGE_EXPIRED
    assert running_prescription(tp) == RX
    assert applied[64] == 0


def test_perfect_link_smoke() -> None:
    """The harness itself: on a perfect link every command is applied once, first time."""
    tp, applied = build(PerfectLink(latency_ms=0))
    result = tp.request(AlarmTest(command_id=70))
    assert result.outcome is Outcome.APPLIED
    assert result.attempts == 1
    assert applied == Counter({70: 1})
