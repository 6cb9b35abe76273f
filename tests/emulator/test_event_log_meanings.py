"""The event log means what docs/protocol.md section 11 says, for every kind, read from the doc.

Section 11 gives each EventKind's ``detail``, ``value_a`` and ``value_b`` as one token of a
small vocabulary (``command_id``, ``reservoir_nl``, ``nak_limit`` ...). This test parses both
tables out of the document, drives pumps through a scenario that writes every EventKind, and
checks every entry against the meaning its kind's tokens name, computed from what the test
itself asked and what the pump answered. Change a token in the doc, or a value in the
firmware, and this fails: the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from emulator.clock import ManualClock
from emulator.device import SECURITY_RUN_MS, PumpDevice
from emulator.faults import BatteryDrain, MemoryCorruption, MotorStall, Reset
from emulator.firmware.firmware import BY_COMMAND, FirmwareStatus
from emulator.firmware.results import (
    BolusStarted,
    RefillBegun,
    RefillCompleted,
    Refused,
    Staged,
)
from emulator.pump import Pump
from hil.programmer.core import ProgrammerCore
from hil.two_peer import PerfectLink, TwoPeer
from protocol import codec
from protocol.codec import prescription_digest
from protocol.device_state import AlarmKind, EventKind, LogEntry, Role
from protocol.keys import generate_keys
from protocol.messages import AlarmTest, CloseSession, Opcode, ReadStatus, StopTherapy
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.refusal import RefusalCode
from protocol.units import MS_PER_S, S_PER_DAY

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
ML = 1_000_000

# -- the tables, parsed out of the document -----------------------------------------------------


def section_11() -> str:
    text = SPEC.read_text(encoding="utf-8")
    return text[text.index("## 11. Event log") : text.index("## 12. Refusal codes")]


def vocabulary() -> dict[str, str]:
    """token -> meaning, from section 11.1."""
    text = section_11()
    table = text[text.index("### 11.1") : text.index("### 11.2")]
    return dict(re.findall(r"^\| `([a-z0-9_]+)` \| (.+) \|$", table, re.MULTILINE))


def meanings() -> dict[EventKind, tuple[str, str, str]]:
    """EventKind -> (detail, value_a, value_b) tokens, from section 11.2."""
    text = section_11()
    table = text[text.index("### 11.2") :]
    rows = re.findall(
        r"^\| ([A-Z_]+) \| (\d+) \| `(\w+)` \| `(\w+)` \| `(\w+)` \|$", table, re.MULTILINE
    )
    out: dict[EventKind, tuple[str, str, str]] = {}
    for name, value, detail, a, b in rows:
        kind = EventKind[name]
        assert int(value) == kind.value, name
        assert kind not in out, f"{name} is listed twice"
        out[kind] = (detail, a, b)
    return out


MEANINGS = meanings()
VOCABULARY = vocabulary()


def test_the_tables_cover_every_kind_with_defined_tokens() -> None:
    assert set(MEANINGS) == set(EventKind)
    used = {token for tokens in MEANINGS.values() for token in tokens}
    assert used <= set(VOCABULARY), used - set(VOCABULARY)
    assert set(VOCABULARY) <= used | {"zero"}, "a token no kind uses"
    assert set(VOCABULARY) == set(CHECKS), "every token has a check here"


def test_the_command_rule_is_the_firmwares() -> None:
    """The kinds whose value_b the doc says is the command id are exactly those the firmware
    fills from the command in effect."""
    by_command = {kind for kind, (_d, _a, b) in MEANINGS.items() if b == "command_id"}
    assert by_command == set(BY_COMMAND)
    # command_id is only ever value_b: no other value holds a command id.
    assert all("command_id" not in (d, a) for d, a, _b in MEANINGS.values())


# -- what each token means, computed from the scenario ---------------------------------------


@dataclass
class Ctx:
    """An entry and what the test knows about the moment it was written."""

    entry: LogEntry
    command_id: int
    """The command id the test was sending when the entry was written, 0 if none."""
    result: object
    before: FirmwareStatus
    after: FirmwareStatus
    facts: dict[str, int]
    bolus_volume: int
    stroke_nl: int
    retry_ms: int
    battery_capacity_nah: int


Check = int | Callable[[int], bool]


def _of(kind: type[Any], ctx: Ctx) -> Any:
    assert isinstance(ctx.result, kind), (ctx.entry, ctx.result)
    return ctx.result


def _enum(enum: type[Any]) -> Check:
    values = {int(m) for m in enum}
    return lambda v: v in values


def _reservoir(c: Ctx) -> Check:
    if c.command_id:  # commands do not deliver: the estimate is the one after the command
        return c.after.reservoir_estimate_nl
    low, high = c.after.reservoir_estimate_nl, c.before.reservoir_estimate_nl
    return lambda v: min(low, high) <= v <= max(low, high)


def _delivered(c: Ctx) -> Check:
    if c.entry.kind is not EventKind.BOLUS_CANCELLED:
        return c.bolus_volume  # completed: all of it
    if c.command_id:
        return c.bolus_volume - c.before.bolus_strokes_remaining * c.stroke_nl
    return lambda v: 0 <= v <= c.bolus_volume and v % c.stroke_nl == 0


def _alarm(c: Ctx) -> Check:
    if "alarm_kind" in c.facts:
        return c.facts["alarm_kind"]
    return _enum(AlarmKind)


def _refusal(c: Ctx) -> Check:
    if isinstance(c.result, Refused):
        return int(c.result.code)
    return c.facts.get("refusal_code", -1)


CHECKS: dict[str, Callable[[Ctx], Check]] = {
    "zero": lambda c: 0,
    "command_id": lambda c: c.command_id,
    "infusion_mode": lambda c: c.facts["infusion_mode"],
    "alarm_kind": _alarm,
    "refusal_code": _refusal,
    "role": lambda c: c.facts["role"],
    "record_ok": lambda c: c.facts["record_ok"],
    "concentration_changed": lambda c: c.facts["concentration_changed"],
    "withdrawn_above_predicted": lambda c: int(_of(RefillCompleted, c).discrepancy_nl > 0),
    "reservoir_nl": _reservoir,
    "daily_volume_nl": lambda c: _of(Staged, c).daily_volume_nl,
    "daily_mass_pg": lambda c: _of(Staged, c).daily_mass_pg,
    "digest_u64": lambda c: c.facts["digest_u64"],
    "rate_nl_per_day": lambda c: c.after.basal_rate_nl_per_day,
    "bolus_volume_nl": lambda c: _of(BolusStarted, c).volume_nl,
    "delivered_nl": _delivered,
    "nak_limit": lambda c: _of(Refused, c).limit or 0,
    "opcode": lambda c: c.facts.get("opcode", 0),
    "predicted_residual_nl": lambda c: _of(RefillBegun, c).predicted_residual_nl,
    "new_volume_nl": lambda c: c.facts["new_volume_nl"],
    "discrepancy_nl": lambda c: abs(_of(RefillCompleted, c).discrepancy_nl),
    "pump_clock_ms": lambda c: c.facts["pump_clock_ms"],
    "stall_ms": lambda c: lambda v: v > 0 and v % c.retry_ms == 0,
    "battery_percent": lambda c: c.after.battery_nah * 100 // c.battery_capacity_nah,
    "end_of_service_ms": lambda c: c.after.end_of_service_ms or -1,
    "frame_seq": lambda c: c.facts["frame_seq"],
    "coalesced_count": lambda c: c.facts["coalesced_count"],
    "last_event_ms": lambda c: c.facts["last_event_ms"],
    "catheter_primed": lambda c: c.facts["catheter_primed"],
    "catheter_length_cm": lambda c: c.facts["catheter_length_cm"],
}


def check(ctx: Ctx) -> list[str]:
    """What is wrong with one entry, per the doc's tokens (empty if nothing)."""
    problems = []
    e = ctx.entry
    for name, token, value in zip(
        ("detail", "value_a", "value_b"),
        MEANINGS[e.kind],
        (e.detail, e.value_a, e.value_b),
        strict=True,
    ):
        expected = CHECKS[token](ctx)
        ok = expected(value) if callable(expected) else value == expected
        if not ok:
            shown = "a value it does not allow" if callable(expected) else expected
            problems.append(f"{e.kind.name} {name}={value}: `{token}` means {shown}")
    return problems


# -- the scenario -------------------------------------------------------------------------------

T = TypeVar("T")

RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=PatientBolusLimits(dose_nl=10_000, duration_s=60, lockout_s=600, max_per_24h=24),
    low_reservoir_threshold_nl=2_000_000,
)
TOO_FAST = Prescription(
    "morphine", 10_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 99_000_000),),
    None, 2_000_000,
)  # fmt: skip


@dataclass
class Recorder:
    """Runs the scenario's steps and remembers, for each entry, the moment it was written."""

    pump: Pump
    contexts: list[Ctx] = field(default_factory=list)
    bolus_volume: int = 0
    next_id: int = 100

    def cid(self) -> int:
        self.next_id += 1
        return self.next_id

    def run(self, call: Callable[[], T], command_id: int = 0, **facts: int) -> T:
        before = self.pump.status()
        start = before.log_next_seq
        result = call()
        self.note(start, command_id, result, before, facts)
        return result

    def note(
        self, start: int, command_id: int, result: object, before: FirmwareStatus, facts: Any
    ) -> None:
        after = self.pump.status()
        p = self.pump.profile
        for entry in self.pump.log(start):
            ctx = Ctx(
                entry,
                command_id,
                result,
                before,
                after,
                dict(facts),
                self.bolus_volume,
                p.stroke_nl,
                p.stall_retry_interval_s * MS_PER_S,
                p.battery_capacity_nah,
            )
            self.contexts.append(ctx)
            if isinstance(result, BolusStarted):
                self.bolus_volume = result.volume_nl

    def command(self, name: str, *args: Any, **facts: int) -> Any:
        command_id = self.cid()
        method = getattr(self.pump, name)
        return self.run(lambda: method(*args, command_id=command_id), command_id, **facts)

    def advance(self, seconds: int, **facts: int) -> None:
        self.run(lambda: self.pump.advance(seconds), 0, **facts)

    def inject(self, fault: Any, **facts: int) -> None:
        self.run(lambda: self.pump.inject(fault), 0, **facts)


def drive_every_pump_event() -> Recorder:
    pump = Pump("peristaltic-20", start_ms=0)
    rec = Recorder(pump)
    status = pump.status()
    rec.note(0, 0, None, status, {})  # POWER_ON
    mode = {"infusion_mode": int(InfusionMode.CONTINUOUS)}

    # Programming, the clock.
    rec.command("set_clock", 1_767_225_600_000, pump_clock_ms=1_767_225_600_000)
    assert isinstance(rec.run(lambda: pump.stage(TOO_FAST), opcode=Opcode.STAGE_PRESCRIPTION),
                      Refused)  # fmt: skip
    staged = rec.run(lambda: pump.stage(RX), **mode)
    assert isinstance(staged, Staged)
    digest = int.from_bytes(prescription_digest(RX)[:8], "little")
    assert rec.command("commit", staged.digest, digest_u64=digest, **mode).ok

    # Patient boluses: refused in the lockout, granted, completed.
    refused = rec.command("patient_bolus")
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.LOCKOUT_ACTIVE
    rec.advance(600)
    assert rec.command("patient_bolus").ok
    rec.advance(120)

    # Clinician boluses: cancelled by a command, completed, cancelled by a stop.
    assert rec.command("clinician_bolus", 20_000, 3_600).ok
    rec.advance(600)
    assert rec.command("cancel_bolus").ok
    assert rec.command("clinician_bolus", 2_000, 60).ok
    rec.advance(120)
    assert rec.command("clinician_bolus", 20_000, 3_600).ok
    rec.advance(300)
    assert rec.command("stop").ok

    # Priming from stopped, then start.
    assert rec.command("prime_volume", 2_000).ok
    rec.advance(60)
    assert rec.command("start", **mode).ok

    # Alarms: a refused acknowledgement, a test, a low-reservoir alarm a refill raised, its
    # acknowledgement, and the refill (with a discrepancy and a new concentration) clearing it.
    low = {"alarm_kind": int(AlarmKind.LOW_RESERVOIR)}
    assert not rec.command(
        "acknowledge_alarm", AlarmKind.LOW_RESERVOIR, opcode=Opcode.ACKNOWLEDGE_ALARM
    ).ok
    assert rec.command("alarm_test").ok
    assert rec.command("refill_begin").ok
    done = rec.command(
        "refill_complete", 1_500_000, new_volume_nl=1_500_000, concentration_changed=0, **low
    )
    assert isinstance(done, RefillCompleted)
    assert not done.discrepancy_flagged
    assert rec.command("acknowledge_alarm", AlarmKind.LOW_RESERVOIR, **low).ok
    begun = rec.command("refill_begin")
    assert isinstance(begun, RefillBegun)
    refill_id = rec.cid()
    done = rec.run(
        lambda: pump.refill_complete(
            20 * ML,
            withdrawn_nl=begun.predicted_residual_nl + 2 * ML,
            new_concentration_ug_per_ml=12_000,
            command_id=refill_id,
        ),
        refill_id,
        new_volume_nl=20 * ML,
        concentration_changed=1,
        **low,
    )
    assert isinstance(done, RefillCompleted)
    assert done.discrepancy_flagged

    # A stall during a bolus: the pump drops the bolus itself, then recovers.
    assert rec.command("clinician_bolus", 20_000, 3_600).ok
    rec.advance(300)
    rec.inject(MotorStall(recover_after_s=3_000))
    rec.advance(2 * 3_600)

    # Memory error, cleared; resets with a good and a corrupt record.
    rec.inject(MemoryCorruption(bit=1_000))
    rec.advance(1)
    assert rec.command("clear_memory_error").ok
    assert rec.command("start", **mode).ok
    rec.inject(Reset(), record_ok=1)
    rec.inject(MemoryCorruption(bit=2_000))
    rec.inject(Reset(), record_ok=0)
    assert rec.command("clear_memory_error").ok
    # A peristaltic pump has no flow-activated valve to reset (issue 12: NO_FLOW_VALVE).
    no_valve = rec.command(
        "reset_flow_valve",
        refusal_code=RefusalCode.NO_FLOW_VALVE,
        opcode=Opcode.RESET_FLOW_VALVE,
    )
    assert no_valve == Refused(RefusalCode.NO_FLOW_VALVE)
    # A catheter revision: the clinician enters the new length (SET_CATHETER).
    assert rec.command("set_catheter", 90, catheter_length_cm=90, catheter_primed=0).ok

    # Empty: a small refill runs dry, then a refill resumes therapy.
    assert rec.command("start", **mode).ok
    assert rec.command("refill_begin").ok
    small = 1_000
    assert rec.command("refill_complete", small, new_volume_nl=small, concentration_changed=0).ok
    rec.advance(S_PER_DAY)
    assert rec.command("refill_begin").ok
    assert rec.command(
        "refill_complete", 20 * ML, new_volume_nl=20 * ML, concentration_changed=0
    ).ok

    # Battery: ERI, the low-battery reset, end of service.
    p = pump.profile
    rec.inject(BatteryDrain(pump.plant_truth().battery_nah - p.battery_eri_threshold_nah + 1))
    rec.advance(p.battery_check_interval_s)
    rec.inject(BatteryDrain(p.battery_eri_threshold_nah - p.battery_low_reset_threshold_nah))
    rec.advance(p.battery_check_interval_s)
    eos_ms = pump.status().end_of_service_ms
    assert eos_ms is not None
    rec.run(lambda: pump.advance_to(eos_ms))
    return rec


def drive_valve_events() -> Recorder:
    """A valve-gated pump: the flow-activated valve reset after an MRI (H15)."""
    pump = Pump("valve-gated-20", start_ms=0)
    rec = Recorder(pump)
    rec.note(0, 0, None, pump.status(), {})  # POWER_ON
    assert rec.command("reset_flow_valve").ok
    return rec


def drive_every_device_event() -> list[Ctx]:
    """Session and security events (and a command-id conflict) come from the wire layer."""
    keys = generate_keys("PE-LOG-1", bytes(range(64)))
    pump = Pump("peristaltic-20", start_ms=0)
    assert pump.program(RX, command_id=1).ok
    device = PumpDevice(pump, keys, random.Random(1).randbytes)
    core = ProgrammerCore(keys.serial, Role.CLINICIAN, keys.clinician, random.Random(2).randbytes)
    contexts: list[Ctx] = []
    p = pump.profile

    def record(start: int, command_id: int, **facts: int) -> None:
        status = pump.status()
        for entry in pump.log(start):
            contexts.append(
                Ctx(
                    entry,
                    command_id,
                    None,
                    status,
                    status,
                    dict(facts),
                    0,
                    p.stroke_nl,
                    1,
                    p.battery_capacity_nah,
                )
            )

    # An unsealed request before any session: a security event naming the frame.
    start = pump.status().log_next_seq
    device.receive_data(codec.encode(ReadStatus(), seq=7, ref=0), 0)
    device.data_to_send()
    record(
        start,
        0,
        refusal_code=RefusalCode.NOT_AUTHENTICATED,
        opcode=Opcode.READ_STATUS,
        frame_seq=7,
    )
    # Two more within the window (section 11.3): counted, then summarised when it ends.
    start = pump.status().log_next_seq
    for seq, at_ms in ((8, 1_000), (9, 2_000)):
        device.receive_data(codec.encode(ReadStatus(), seq=seq, ref=0), at_ms)
        device.data_to_send()
    last_ms = pump.pump_clock_ms()
    assert pump.status().log_next_seq == start
    device.handle_timer(SECURITY_RUN_MS)
    record(
        start,
        0,
        refusal_code=RefusalCode.NOT_AUTHENTICATED,
        coalesced_count=2,
        last_event_ms=last_ms,
    )
    tp = TwoPeer(device, core, ManualClock(SECURITY_RUN_MS), PerfectLink(latency_ms=0))
    # A session: opened, a command applied, the same id on another request, closed.
    start = pump.status().log_next_seq
    tp.request(AlarmTest(command_id=50))
    tp.request(StopTherapy(command_id=50))
    tp.request(CloseSession())
    record(
        start,
        50,
        role=Role.CLINICIAN,
        refusal_code=RefusalCode.COMMAND_ID_CONFLICT,
        opcode=Opcode.STOP_THERAPY,
    )
    return contexts


def test_every_pump_event_means_what_section_11_says() -> None:
    rec = drive_every_pump_event()
    device = drive_every_device_event()
    contexts = rec.contexts + device + drive_valve_events().contexts
    seen = {ctx.entry.kind for ctx in contexts}
    # Only a refusal of the firmware's own input is not produced: the state table leaves no
    # reachable one (a defence in depth). COMMAND_REFUSED is produced by commands here.
    assert seen == set(EventKind), set(EventKind) - seen
    problems = [problem for ctx in contexts for problem in check(ctx)]
    assert problems == []


def test_a_wrong_value_is_caught() -> None:
    """The checker can fail: an entry with a command id where the doc says a volume."""
    rec = drive_every_pump_event()
    ctx = next(c for c in rec.contexts if c.entry.kind is EventKind.PATIENT_BOLUS_GRANTED)
    e = ctx.entry
    swapped = LogEntry(e.seq, e.time_ms, e.kind, e.detail, e.value_b, e.value_a)
    assert check(ctx) == []
    assert check(dataclasses.replace(ctx, entry=swapped)) != []
