"""hil/replay.py on manual clocks: a capture recorded through an in-process device
(hil/device_link.py) is read into a script, replayed against fresh devices, and compared."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.capture import CaptureWriter, parse_capture
from hil.device_link import DeviceLink
from hil.programmer.client import Programmer
from hil.programmer.core import Result
from hil.replay import (
    NORMALISED,
    Difference,
    Exchange,
    FaultStep,
    Script,
    compare,
    normalise,
    parse_fault_note,
    play,
    recorded_script,
)
from protocol.device_state import Role, TherapyState
from protocol.keys import PumpKeys, generate_keys
from protocol.messages import (
    Ack,
    Message,
    Nak,
    Opcode,
    PrescriptionStaged,
    ReadStatus,
    Status,
)
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode

KEYS = generate_keys("PE-000042", bytes(range(64)))
RX = Prescription(
    "morphine",
    1_000,
    InfusionMode.FLEX,
    Repeat.DAILY,
    (FlexStep(0, 300_000), FlexStep(8 * 3600, 600_000)),
    PatientBolusLimits(20_000, 600, 3_600, 4),
    2_000_000,
)
WALL_NS = 1_700_000_000_000_000_000


def seeded(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class DeviceTarget:
    """A ReplayTarget: an in-process device on a manual clock, with a bench."""

    def __init__(self, device: PumpDevice, clock: ManualClock, *, bench: bool = True) -> None:
        self.link = DeviceLink(device, clock)
        self.clock = clock
        self.device = device
        self._bench = bench
        self._programmer: Programmer | None = None
        self.advanced: list[int] = []
        self.injected: list[tuple[str, Mapping[str, Any]]] = []

    @property
    def has_bench(self) -> bool:
        return self._bench

    def open_session(self, role: Role) -> Callable[[Message], Result]:
        self._programmer = Programmer(
            self.link, KEYS.serial, role, KEYS.key_for(role), clock=self.clock, entropy=seeded(7)
        )
        return self._programmer.request

    def close_session(self) -> None:
        assert self._programmer is not None
        self._programmer.close()

    def advance(self, ms: int) -> None:
        self.advanced.append(ms)
        self.link.advance(ms)

    def inject(self, name: str, params: Mapping[str, Any]) -> None:
        self.injected.append((name, dict(params)))


def record_visit(profile: str = "peristaltic-20", keys: PumpKeys = KEYS) -> list[str]:
    """A clinician session (interrogate, program), a noted time step, a patient session."""
    clock = ManualClock(0)
    device = PumpDevice(Pump(profile), keys, seeded(1))
    link = DeviceLink(device, clock)
    out = io.StringIO()
    with CaptureWriter(out, source="test", wall_ns=WALL_NS) as writer:

        def on_traffic(direction: str, data: bytes) -> None:
            writer.record(direction, data, sim_ms=clock.now_ms(), wall_ns=WALL_NS)

        def programmer(role: Role) -> Programmer:
            return Programmer(
                link,
                keys.serial,
                role,
                keys.key_for(role),
                clock=clock,
                entropy=seeded(2),
                on_traffic=on_traffic,
            )

        with programmer(Role.CLINICIAN) as clinician:
            clinician.info()
            clinician.status()
            staged = clinician.stage(RX)
            assert isinstance(staged.reply, PrescriptionStaged)
            clinician.commit(staged.reply.digest)
        link.advance(3_600_000)
        writer.note("time advanced 3600000 ms: T+0 -> T+1h", sim_ms=clock.now_ms())
        writer.note("fault injected: MotorStall(recover_after_s=60)", sim_ms=clock.now_ms())
        with programmer(Role.PATIENT) as handset:
            handset.patient_bolus()
            handset.stop()
    return out.getvalue().splitlines()


@pytest.fixture(scope="module")
def visit() -> list[str]:
    return record_visit()


def script_of(lines: list[str]) -> Script:
    return recorded_script(parse_capture(lines, "visit.jsonl"), KEYS)


def test_the_script_holds_each_session_its_requests_and_recorded_answers(
    visit: list[str],
) -> None:
    script = script_of(visit)
    assert [s.role for s in script.sessions if not s.bench_only] == [
        Role.CLINICIAN,
        Role.PATIENT,
    ]
    clinician = script.sessions[0]
    assert [type(e.request).__name__ for e in clinician.exchanges] == [
        "ReadDeviceInfo",
        "ReadStatus",
        "StagePrescription",
        "CommitPrescription",
    ]
    assert all(e.recorded is not None for e in clinician.exchanges)
    assert isinstance(clinician.exchanges[3].recorded, Ack)
    steps = [step for s in script.sessions for step in s.steps]
    assert [type(s).__name__ for s in steps if not isinstance(s, Exchange)] == [
        "TimeStep",
        "FaultStep",
    ]
    fault = next(s for s in steps if isinstance(s, FaultStep))
    assert (fault.name, dict(fault.params)) == ("stall", {"recover_after_s": 60})
    patient = next(s for s in script.sessions if s.role is Role.PATIENT)
    assert isinstance(patient.exchanges[-1].recorded, Nak)
    assert patient.exchanges[-1].recorded.code is RefusalCode.NOT_PERMITTED_FOR_ROLE
    assert script.unopened == 0


def test_with_the_wrong_keys_nothing_opens(visit: list[str]) -> None:
    other = generate_keys("PE-000042", bytes(range(1, 65)))
    script = recorded_script(parse_capture(visit, "visit.jsonl"), other)
    assert all(not s.exchanges for s in script.sessions)
    assert script.unopened > 0


def test_replay_against_the_same_fresh_pump_reports_no_difference(visit: list[str]) -> None:
    target = DeviceTarget(PumpDevice(Pump("peristaltic-20"), KEYS, seeded(9)), ManualClock(0))
    outcomes = play(script_of(visit), target)
    assert len(outcomes) == 6
    assert [(o.status, o.differences) for o in outcomes] == [("same", ())] * 6
    assert target.advanced == [3_600_000]  # pump time followed the recording
    assert target.injected == [("stall", {"recover_after_s": 60})]


def test_without_a_bench_time_and_faults_are_not_replayed(visit: list[str]) -> None:
    target = DeviceTarget(
        PumpDevice(Pump("peristaltic-20"), KEYS, seeded(9)), ManualClock(0), bench=False
    )
    play(script_of(visit), target)
    assert (target.advanced, target.injected) == ([], [])


def test_replay_against_another_profile_reports_the_differing_answer(visit: list[str]) -> None:
    target = DeviceTarget(PumpDevice(Pump("peristaltic-40"), KEYS, seeded(9)), ManualClock(0))
    outcomes = play(script_of(visit), target)
    info = outcomes[0]
    assert type(info.exchange.request).__name__ == "ReadDeviceInfo"
    assert info.status == "differs"
    paths = {d.path for d in info.differences}
    assert "limits.reservoir_capacity_nl" in paths


def status(**changes: Any) -> Status:
    fields: dict[str, Any] = {
        "state": TherapyState.FLEX,
        "rate_nl_per_day": 300_000,
        "reservoir_nl": 18_000_000,
        "battery_percent": 90,
        "active_alarms": frozenset(),
        "last_command_id": 7,
        "pump_time_ms": 5_000,
    }
    fields.update(changes)
    return Status(**fields)


def test_instants_are_normalised_unless_exact_times() -> None:
    assert compare(status(), status(pump_time_ms=9_999)) == []
    assert compare(status(), status(pump_time_ms=9_999), exact_times=True) == [
        Difference("pump_time_ms", 5_000, 9_999)
    ]
    assert normalise(status())["pump_time_ms"] == NORMALISED


def test_other_fields_are_compared() -> None:
    assert compare(status(), status(reservoir_nl=1)) == [Difference("reservoir_nl", 18_000_000, 1)]


@pytest.mark.parametrize(
    ("request_opcode", "normalised"),
    [
        pytest.param(Opcode.PATIENT_BOLUS_REQUEST, True, id="bolus-end-instant"),
        pytest.param(Opcode.SET_CLOCK, True, id="clock-before-instant"),
        pytest.param(Opcode.REFILL_BEGIN, False, id="refill-volume-compared"),
    ],
)
def test_an_ack_value_is_normalised_only_when_it_is_an_instant(
    request_opcode: Opcode, normalised: bool
) -> None:
    recorded = Ack(5, request_opcode, TherapyState.FLEX, 1_000, 10)
    replayed = Ack(5, request_opcode, TherapyState.FLEX, 1_000, 20)
    assert (compare(recorded, replayed) == []) is normalised


def test_a_session_dependent_nak_limit_is_not_compared() -> None:
    busy = Nak(RefusalCode.SESSION_BUSY, FieldId.NONE, 30)
    assert compare(busy, Nak(RefusalCode.SESSION_BUSY, FieldId.NONE, 12)) == []
    lockout = Nak(RefusalCode.LOCKOUT_ACTIVE, FieldId.PATIENT_BOLUS_LOCKOUT, 30)
    assert compare(lockout, Nak(RefusalCode.LOCKOUT_ACTIVE, FieldId.PATIENT_BOLUS_LOCKOUT, 12))


def test_another_message_type_is_one_difference() -> None:
    nak = Nak(RefusalCode.LOCKOUT_ACTIVE, FieldId.NONE, 0)
    ack = Ack(5, Opcode.PATIENT_BOLUS_REQUEST, TherapyState.FLEX, 1_000, 10)
    assert compare(ack, nak) == [Difference("type", "Ack", "Nak")]
    assert compare(ack, None) == [Difference("answer", normalise(ack), None)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "fault injected: MagnetExposure(scan_s=1800, recovery_s=28800)",
            ("magnet", {"scan_s": 1800, "recovery_s": 28800}),
            id="magnet",
        ),
        pytest.param(
            "fault injected: MotorStall(recover_after_s=None)", ("stall", {}), id="stall-for-good"
        ),
        pytest.param("fault injected: CatheterLeak(ppm=5000)", ("leak", {"ppm": 5000}), id="leak"),
        pytest.param("fault injected: Nonsense(x=1)", None, id="unknown-fault"),
        pytest.param("fault injected: MotorStall(recover_after_s=-1)", None, id="invalid"),
        pytest.param("fault injected: os.system('x')", None, id="not-a-plain-call"),
        pytest.param("session opened (clinician)", None, id="another-note"),
    ],
)
def test_fault_notes_are_read_back_as_control_api_faults(
    text: str, expected: tuple[str, dict[str, Any]] | None
) -> None:
    assert parse_fault_note(text) == expected


def test_a_request_without_a_recorded_answer_is_unrecorded(visit: list[str]) -> None:
    script = script_of(visit)
    first = script.sessions[0]
    first.steps = [Exchange(1, 0, ReadStatus(), None)]
    script.sessions = [first]
    target = DeviceTarget(PumpDevice(Pump("peristaltic-20"), KEYS, seeded(9)), ManualClock(0))
    (outcome,) = play(script, target)
    assert outcome.status == "unrecorded"
    assert isinstance(outcome.replayed, Status)
