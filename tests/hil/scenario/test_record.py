"""`pumpemu scenario record`: a captured programmer session becomes a scenario whose steps
replay its requests, with the pump's replies as expectations (docs/scenarios.md)."""

from __future__ import annotations

import io
import random
from pathlib import Path

from click.testing import CliRunner

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from hil.capture import CaptureWriter
from hil.cli import main
from hil.key_files import write_key_file
from hil.programmer.core import Outcome, ProgrammerCore
from hil.scenario.backends import build_pump
from hil.scenario.loader import loads
from hil.scenario.runner import run
from hil.two_peer import TO_PUMP, Delivery, ScriptedLink, TwoPeer
from protocol.device_state import AlarmKind, Role
from protocol.keys import generate_keys
from protocol.messages import (
    AcknowledgeAlarm,
    ClinicianBolus,
    CommitPrescription,
    PatientBolusRequest,
    PrescriptionStaged,
    ReadStatus,
    StagePrescription,
    StopTherapy,
)
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat

KEYS = generate_keys("PE-SCENARIO", bytes(range(64)))
SETUP = """\
[setup]
prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", \
rate = "0.5 mL/day", low_reservoir_threshold = "2 mL", patient_bolus = { dose = "0.02 mL", \
duration = "10 min", lockout = "1 h", max_per_24h = 4 } }
"""
FLEX = Prescription(
    "morphine", 10_000, InfusionMode.FLEX, Repeat.DAILY,
    (FlexStep(0, 300_000), FlexStep(6 * 3_600 + 30, 600_000)),
    PatientBolusLimits(20_000, 600, 3_600, 4), 2_000_000,
)  # fmt: skip


def capture_a_visit(path: Path) -> None:
    """A clinic visit through TwoPeer, every chunk captured as ctl would (tx: to the pump);
    the first reply to the bolus is lost on the link, so the programmer retries it."""
    text = io.StringIO()
    writer = CaptureWriter(text, "ctl")
    (scenario,) = loads('id = "s"\ntitle = "s"\n' + SETUP, "s.toml")
    pump = build_pump(scenario.setup)
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes)
    clock = ManualClock(pump.now_ms)
    lose_next_reply = [False]

    def fate(direction: str, index: int, data: bytes) -> list[Delivery]:
        if direction != TO_PUMP and lose_next_reply[0]:
            lose_next_reply[0] = False
            return []  # lost on the link before the programmer's end: not in its capture
        writer.record("tx" if direction == TO_PUMP else "rx", data, sim_ms=clock.now_ms())
        return [Delivery(0, data)]

    link = ScriptedLink(fate)
    rng = random.Random(2)
    clinician = TwoPeer(
        device, ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, rng.randbytes),
        clock, link,
    )  # fmt: skip
    patient = TwoPeer(
        device, ProgrammerCore(KEYS.serial, Role.PATIENT, KEYS.patient, rng.randbytes),
        clock, link,
    )  # fmt: skip
    start = clock.now_ms()

    def at(seconds: int) -> None:
        clinician.run_until(start + seconds * 1_000)

    at(3_600)
    assert clinician.request(ReadStatus()).outcome is Outcome.ANSWERED
    staged = clinician.request(StagePrescription(prescription=FLEX))
    assert isinstance(staged.reply, PrescriptionStaged)
    commit = CommitPrescription(command_id=7, digest=staged.reply.digest)
    assert clinician.request(commit).outcome is Outcome.APPLIED
    clinician.close()
    at(5_400)  # inside the hour of lockout the commit started
    assert patient.request(PatientBolusRequest(command_id=8)).outcome is Outcome.REFUSED
    patient.close()
    at(3 * 3_600)
    assert clinician.request(ReadStatus()).outcome is Outcome.ANSWERED
    lose_next_reply[0] = True  # the bolus's ACK: the programmer resends the same id (C1)
    bolus = clinician.request(ClinicianBolus(command_id=9, dose_nl=50_000, duration_s=600))
    assert bolus.outcome is Outcome.APPLIED
    assert bolus.attempts == 2
    assert clinician.request(AcknowledgeAlarm(command_id=10, alarm=AlarmKind.MOTOR_STALL))
    again = ClinicianBolus(command_id=11, dose_nl=50_000, duration_s=600)
    assert clinician.request(again).outcome is Outcome.REFUSED  # BOLUS_IN_PROGRESS
    assert clinician.request(StopTherapy(command_id=12)).outcome is Outcome.APPLIED
    clinician.close()
    path.write_text(text.getvalue(), encoding="utf-8")


def test_a_recorded_visit_replays_with_the_same_outcomes(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    capture_a_visit(capture)
    keys = tmp_path / "pump.keys"
    write_key_file(keys, KEYS)
    result = CliRunner().invoke(
        main, ["scenario", "record", str(capture), "--keys", str(keys), "--id", "visit"]
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert 'do = "program"' in text
    assert 'start = "06:00:30", rate = "0.6 mL/day"' in text
    assert 'expect = { outcome = "refused", refusal = "LOCKOUT_ACTIVE" }' in text
    assert 'role = "patient"' in text
    assert 'refusal = "NO_SUCH_ALARM"' in text
    assert 'refusal = "BOLUS_IN_PROGRESS"' in text
    # The author fills in [setup]; then the file replays the visit with the same outcomes.
    replay = text.replace('[setup]\nprofile = "peristaltic-20"\n', SETUP)
    (scenario,) = loads(replay, "visit.toml")
    # The retry took the reply timeout (1 s): the steps after it are a second later.
    assert [s.at_ms // 1_000 for s in scenario.steps] == [0, 0, 1_800, 7_200, 7_200] + [7_201] * 3
    assert text.count('do = "clinician-bolus"') == 2  # the retry under the same id: one step
    outcome = run(scenario, "wire")
    assert outcome.verdict == "pass", [f for f in outcome.findings if not f.ok]
    held = [f.what for f in outcome.findings if f.ok]
    assert held.count("outcome") == 8
