"""A RuleBasedStateMachine drives the whole pump (docs/architecture.md, "Testing").

Random programs, clinician and patient boluses, priming, refills (with pocket fills, wrong
entries and wrong concentrations), faults (catheter occlusions, masses, kinks, migrations,
erosions, a flipped pump), catheter access port aspirations and injections (H2), and time
jumps from a millisecond to two months. After every rule the
invariants below must hold. The oracle keeps its own record of what was granted and checks it
against the profile's limits independently of the firmware's bookkeeping.
"""

from __future__ import annotations

import itertools

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from emulator.faults import (
    BatteryDrain,
    CapInjection,
    CatheterDisconnect,
    CatheterErosion,
    CatheterKink,
    CatheterLeak,
    CatheterMigration,
    CatheterOcclusion,
    CatheterRepair,
    Fault,
    InflammatoryMass,
    MagnetExposure,
    MechanicalBias,
    MemoryCorruption,
    MotorRepair,
    MotorStall,
    PocketFill,
    PumpFlip,
    PumpReseat,
    Reset,
)
from emulator.firmware.results import BolusStarted, Refused
from emulator.plant import AspirationResult, CatheterState
from emulator.profile import Profile, load_profile
from emulator.pump import Pump
from protocol.device_state import EventKind, TherapyState
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.units import MS_PER_DAY, MS_PER_S, S_PER_DAY

PROFILES = ("peristaltic-20", "peristaltic-40", "valve-gated-20")
NOT_DELIVERING = {TherapyState.STOPPED, TherapyState.END_OF_SERVICE}
DELIVERING = {
    TherapyState.CONTINUOUS,
    TherapyState.FLEX,
    TherapyState.CLINICIAN_BOLUS,
    TherapyState.PATIENT_BOLUS,
    TherapyState.PRIMING,
}
BOLUS_STARTS = {
    EventKind.CLINICIAN_BOLUS_STARTED,
    EventKind.PATIENT_BOLUS_GRANTED,
    EventKind.PRIMING_STARTED,
}

faults = st.one_of(
    st.builds(MotorStall, st.none() | st.integers(1, 3 * S_PER_DAY)),
    st.just(MotorRepair()),
    st.builds(MagnetExposure, st.integers(0, 7_200), st.integers(0, S_PER_DAY)),
    st.just(CatheterOcclusion()),
    st.builds(CatheterOcclusion, st.integers(0, 999_999)),
    st.builds(InflammatoryMass, st.integers(1, 90 * S_PER_DAY), st.integers(0, 999_999)),
    st.integers(1, 7 * S_PER_DAY).flatmap(
        lambda period: st.builds(CatheterKink, st.just(period), st.integers(0, period))
    ),
    st.just(CatheterMigration()),
    st.builds(CatheterErosion, st.integers(1, 1_000_000)),
    st.just(PumpFlip()),
    st.just(PumpReseat()),
    st.builds(CapInjection, st.integers(0, 2_000_000), st.integers(0, 50_000)),
    st.builds(CatheterLeak, st.integers(1, 1_000_000)),
    st.just(CatheterDisconnect()),
    st.just(CatheterRepair()),
    st.builds(BatteryDrain, st.integers(0, 400_000_000)),
    st.builds(PocketFill, st.integers(0, 5_000_000)),
    st.builds(PocketFill, st.integers(0, 5_000_000), st.integers(0, 50_000)),
    st.builds(MechanicalBias, st.integers(-100_000, 100_000)),
    st.just(Reset()),
    st.builds(MemoryCorruption, st.integers(0, 10_000)),
)


def mostly(
    valid: st.SearchStrategy[int], anything: st.SearchStrategy[int]
) -> st.SearchStrategy[int]:
    """Valid values most of the time, so therapy runs; anything now and then, so refusals
    are exercised too."""
    return st.integers(0, 9).flatmap(lambda pick: anything if pick == 0 else valid)


class PumpMachine(RuleBasedStateMachine):
    pump: Pump
    profile: Profile

    @initialize(
        name=st.sampled_from(PROFILES),
        fill=st.integers(0, 100),
        data=st.data(),
        conc=st.sampled_from([0, 1, 1_000, 25_000, 50_000]),
        primed=st.booleans(),
    )
    def build(self, name: str, fill: int, data: st.DataObject, conc: int, primed: bool) -> None:
        self.profile = load_profile(name)
        volume = self.profile.reservoir_usable_nl * fill // 100
        self.pump = Pump(
            self.profile,
            start_ms=0,
            reservoir_nl=volume,
            drug_concentration_ug_per_ml=conc,
            catheter_primed=primed,
        )
        self.grants: list[int] = []
        self.lockout_until = 0
        self.last_seq = 0
        # Most runs start with therapy running, so the rules below meet a live pump.
        if data.draw(st.integers(0, 4)):
            self.program(data, data.draw(st.booleans()), 100, "morphine", True)

    def _rate(self) -> st.SearchStrategy[int]:
        p = self.profile
        low = max(p.rate_min_nl_per_day, 1)
        return mostly(
            st.integers(low, 2_000_000), st.integers(0, p.rate_max_nl_per_day + 1_000_000)
        )

    @rule(
        data=st.data(),
        flex=st.booleans(),
        concentration=st.sampled_from([1, 100, 100, 1_000, 10_000, 50_000]),
        drug=st.sampled_from(["morphine", "ziconotide", "baclofen", "clonidine"]),
        with_pb=st.booleans(),
    )
    def program(
        self, data: st.DataObject, flex: bool, concentration: int, drug: str, with_pb: bool
    ) -> None:
        p = self.profile
        rate = self._rate()
        if flex:
            count = data.draw(st.integers(1, p.max_flex_steps + 2))
            starts = sorted(data.draw(st.sets(st.integers(1, S_PER_DAY - 1), max_size=count - 1)))
            steps = tuple(FlexStep(s, data.draw(rate)) for s in [0, *starts])
        else:
            steps = (FlexStep(0, data.draw(rate)),)
        pb = None
        if with_pb:
            dose = p.patient_bolus_dose
            pb = PatientBolusLimits(
                dose_nl=data.draw(mostly(st.integers(dose.low, 50_000), st.integers(1, 10**6))),
                duration_s=data.draw(mostly(st.integers(60, 7_200), st.integers(1, 7_200))),
                lockout_s=data.draw(mostly(st.integers(600, 14_400), st.integers(0, 14_400))),
                max_per_24h=data.draw(mostly(st.integers(1, 12), st.integers(1, 30))),
            )
        low = p.low_reservoir_threshold
        rx = Prescription(
            drug_name=drug,
            concentration_ug_per_ml=concentration,
            mode=InfusionMode.FLEX if flex else InfusionMode.CONTINUOUS,
            repeat=Repeat.DAILY,
            steps=steps,
            patient_bolus=pb,
            low_reservoir_threshold_nl=data.draw(
                mostly(st.integers(low.low, low.high), st.integers(0, 8_000_000))
            ),
        )
        staged = self.pump.stage(rx)
        if isinstance(staged, Refused):
            event(f"stage refused {staged.code.name} {staged.field.name}")
            return
        self.check_prescription_within_limits(rx)
        if data.draw(st.integers(0, 9)) == 0:
            self.pump.advance(data.draw(st.integers(0, 900)))  # sometimes past expiry
        result = self.pump.commit(staged.digest, command_id=data.draw(st.integers(1, 2**32)))
        event(f"commit {'accepted' if result.ok else 'refused'}")
        if result.ok:
            self.lockout_until = self.pump.now_ms + (pb.lockout_s * MS_PER_S if pb else 0)

    def check_prescription_within_limits(self, rx: Prescription) -> None:
        p = self.profile
        assert len(rx.steps) <= p.max_flex_steps
        for step in rx.steps:
            assert step.rate_nl_per_day <= p.rate_max_nl_per_day
            assert step.rate_nl_per_day == 0 or step.rate_nl_per_day >= p.rate_min_nl_per_day
        pb = rx.patient_bolus
        allowance = 0
        if pb is not None:
            assert p.patient_bolus_dose.low <= pb.dose_nl <= p.patient_bolus_dose.high
            assert pb.max_per_24h <= p.patient_bolus_max_per_24h.high
            assert pb.lockout_s >= p.patient_bolus_lockout_s.low
            allowance = pb.max_per_24h * pb.dose_nl
        worst = rx.max_24h_volume_nl() + allowance
        assert worst * rx.concentration_ug_per_ml <= p.max_daily_mass_for(rx.drug_name)

    @rule(
        dose=st.integers(0, 3_000_000) | st.integers(200, 200_000),
        duration=st.integers(0, 2 * S_PER_DAY) | st.integers(600, 7_200),
    )
    def clinician_bolus(self, dose: int, duration: int) -> None:
        before = self.pump.status()
        result = self.pump.clinician_bolus(dose, duration)
        event(f"clinician bolus {'granted' if result.ok else result.code.name}")
        if isinstance(result, BolusStarted):
            p = self.profile
            assert dose <= p.max_clinician_bolus_nl
            assert result.volume_nl <= dose
            assert before.prescription is not None
            basal = before.prescription.max_rate_nl_per_day() if before.state in (
                TherapyState.CONTINUOUS, TherapyState.FLEX) else 0  # fmt: skip
            assert result.volume_nl * S_PER_DAY // duration + basal <= p.rate_max_nl_per_day

    @rule(wait=st.integers(0, 3 * 3_600))
    def patient_bolus(self, wait: int) -> None:
        self.pump.advance(wait)  # a patient presses the button some time later
        now = self.pump.now_ms
        rx = self.pump.status().prescription
        result = self.pump.patient_bolus()
        event(f"patient bolus {'granted' if result.ok else result.code.name}")
        if isinstance(result, BolusStarted):
            assert rx is not None
            assert rx.patient_bolus is not None
            assert now >= self.lockout_until, "patient bolus granted during lockout"
            recent = [t for t in self.grants if t > now - MS_PER_DAY]
            assert len(recent) < rx.patient_bolus.max_per_24h
            assert result.volume_nl <= rx.patient_bolus.dose_nl
            self.grants.append(now)
            self.lockout_until = now + rx.patient_bolus.lockout_s * MS_PER_S

    @rule(length=st.integers(0, 120))
    def prime(self, length: int) -> None:
        self.pump.prime(length)

    @rule()
    def stop(self) -> None:
        self.pump.stop()

    @rule()
    def start(self) -> None:
        self.pump.start()

    @rule()
    def cancel_bolus(self) -> None:
        self.pump.cancel_bolus()

    @rule(
        entered=st.integers(0, 45_000_000),
        injected=st.none() | st.integers(0, 45_000_000),
        pocket=st.integers(0, 3_000_000),
        report=st.none() | st.integers(0, 25_000_000),
        real_conc=st.none() | st.sampled_from([0, 100, 1_000, 10_000, 50_000]),
    )
    def refill(
        self,
        entered: int,
        injected: int | None,
        pocket: int,
        report: int | None,
        real_conc: int | None,
    ) -> None:
        begun = self.pump.refill_begin()
        if not begun.ok:
            return
        done = self.pump.refill_complete(
            entered,
            injected_nl=injected,
            pocket_nl=pocket,
            withdrawn_nl=report,
            injected_concentration_ug_per_ml=real_conc,
        )
        rx = self.pump.status().prescription
        if done.ok and rx is not None and rx.patient_bolus is not None:
            self.lockout_until = max(
                self.lockout_until, self.pump.now_ms + rx.patient_bolus.lockout_s * MS_PER_S
            )

    @rule(fault=faults)
    def inject(self, fault: Fault) -> None:
        self.pump.inject(fault)

    @rule(volume=st.integers(0, 1_000_000))
    def cap_aspirate(self, volume: int) -> None:
        """A patency check through the catheter access port: what returns follows the
        catheter's state, and the firmware is never told."""
        before = self.pump.plant_truth()
        status = self.pump.status()
        got = self.pump.cap_aspirate(volume)
        after = self.pump.plant_truth()
        assert 0 <= got.drug_nl <= min(volume, before.catheter_nl)
        assert got.drug_nl + got.csf_nl <= volume
        assert after.aspirated_pg - before.aspirated_pg == got.drug_pg
        assert after.catheter_pg == before.catheter_pg - got.drug_pg
        if got.result is AspirationResult.CSF:
            assert got.drug_nl + got.csf_nl == volume
        else:
            assert got.csf_nl == 0
        if before.flipped or before.catheter is CatheterState.DISCONNECTED:
            assert got.drug_nl == 0
        assert self.pump.status() == status

    @rule(volume=st.integers(0, 2_000_000), conc=st.none() | st.integers(0, 50_000))
    def cap_inject(self, volume: int, conc: int | None) -> None:
        """H2: straight to the catheter (or the pocket), never through the firmware."""
        before = self.pump.plant_truth()
        status = self.pump.status()
        got = self.pump.cap_inject(volume, conc)
        after = self.pump.plant_truth()
        assert after.cap_injected_pg - before.cap_injected_pg == got.mass_pg
        assert after.reservoir_nl == before.reservoir_nl
        assert after.pumped_nl == before.pumped_nl
        assert self.pump.status() == status

    @rule()
    def clear_memory_error(self) -> None:
        self.pump.clear_memory_error()

    @rule()
    def reset_valve(self) -> None:
        self.pump.reset_flow_valve()

    @rule(length=st.integers(0, 120), primed=st.booleans())
    def set_catheter(self, length: int, primed: bool) -> None:
        """A catheter revision entered (issue 12); out-of-range lengths are refused."""
        result = self.pump.set_catheter(length, primed=primed)
        if result.ok:
            assert self.pump.catheter_info().length_cm == length

    @rule(clock_ms=st.integers(0, 2_000_000_000_000))
    def set_clock(self, clock_ms: int) -> None:
        """The clinician sets the pump clock, forwards or back (flex steps follow it)."""
        assert self.pump.set_clock(clock_ms).ok
        status = self.pump.status()
        assert (status.time_ms, status.local_time_ms) == (self.pump.now_ms, clock_ms)

    @rule(
        seconds=st.one_of(
            st.integers(0, 120), st.integers(0, S_PER_DAY), st.integers(0, 60 * S_PER_DAY)
        )
    )
    def advance(self, seconds: int) -> None:
        before = self.pump.status()
        pumped = self.pump.plant_truth().pumped_nl
        self.pump.advance(seconds)
        frozen = before.state in NOT_DELIVERING or (
            before.state is TherapyState.SUSPENDED_BY_ALARM and not before.motor_stall_detected
        )
        if frozen:
            # Stopped, end of service, empty or memory error: only a command restarts it.
            assert self.pump.plant_truth().pumped_nl == pumped
            assert self.pump.status().delivered_nl == before.delivered_nl

    @precondition(lambda self: self.pump.status().motor_stall_detected)
    @rule()
    def stalled_pump_delivers_nothing(self) -> None:
        delivered = self.pump.status().delivered_nl
        pumped = self.pump.plant_truth().pumped_nl
        self.pump.advance(60)
        if self.pump.status().motor_stall_detected:
            assert self.pump.status().delivered_nl == delivered
            assert self.pump.plant_truth().pumped_nl == pumped

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def plant_reservoir_never_negative(self) -> None:
        truth = self.pump.plant_truth()
        assert truth.reservoir_nl >= 0
        assert truth.battery_nah >= 0

    @invariant()
    def fluid_is_conserved_exactly(self) -> None:
        t = self.pump.plant_truth()
        start_plus_filled = t.initial_nl + t.injected_nl
        start_plus_filled += t.cap_injected_nl
        accounted = (
            t.reservoir_nl + t.path_nl + t.catheter_nl + t.retained_nl + t.delivered_nl
            + t.misplaced_nl + t.leaked_nl + t.pocket_nl + t.withdrawn_nl + t.aspirated_nl
        )  # fmt: skip
        assert start_plus_filled == accounted
        assert t.balance_nl() == 0

    @invariant()
    def drug_mass_is_conserved_exactly(self) -> None:
        """Every picogram is somewhere: reservoir + path + catheter + retained + delivered
        + misplaced + pocket + leaked + withdrawn + aspirated == initial + injected + CAP."""
        t = self.pump.plant_truth()
        start_plus_filled = t.initial_pg + t.injected_pg + t.cap_injected_pg
        accounted = (
            t.reservoir_pg + t.path_pg + t.catheter_pg + t.retained_pg + t.delivered_pg
            + t.misplaced_pg + t.pocket_pg + t.leaked_pg + t.withdrawn_pg + t.aspirated_pg
        )  # fmt: skip
        assert start_plus_filled == accounted
        assert t.balance_pg() == 0
        assert t.systemic_pg == t.pocket_pg + t.leaked_pg + t.misplaced_pg
        parts = (
            t.reservoir_pg, t.path_pg, t.catheter_pg, t.retained_pg, t.delivered_pg,
            t.misplaced_pg, t.pocket_pg, t.leaked_pg, t.withdrawn_pg, t.aspirated_pg,
        )  # fmt: skip
        assert min(parts) >= 0
        assert sum(m for _, m in t.catheter_slugs) == t.catheter_pg
        assert sum(v for v, _ in t.catheter_slugs) == t.catheter_nl

    @invariant()
    def fluid_path_within_its_physical_bounds(self) -> None:
        """The internal path is always full, the catheter never holds more than its dead
        volume, and a closed catheter never holds more than its compliance (H13)."""
        t = self.pump.plant_truth()
        assert t.path_nl == self.profile.internal_path_nl
        assert 0 <= t.catheter_nl <= t.catheter_volume_nl
        assert 0 <= t.retained_nl <= self.profile.catheter_compliance_nl
        assert 0 <= t.delivered_fraction_ppm <= 1_000_000

    @invariant()
    def firmware_within_limits(self) -> None:
        status = self.pump.status()
        engine = self.pump.engine
        assert status.reservoir_estimate_nl >= 0
        assert 0 <= engine.basal_rate_nl_per_day <= self.profile.rate_max_nl_per_day
        if status.state in (
            TherapyState.STOPPED, TherapyState.SUSPENDED_BY_ALARM, TherapyState.END_OF_SERVICE,
        ):  # fmt: skip
            assert engine.basal_rate_nl_per_day == 0
            assert not engine.bolus_active
        if status.state is TherapyState.PRIMING:
            assert engine.basal_rate_nl_per_day == 0

    @invariant()
    def nothing_delivers_while_a_stall_is_detected(self) -> None:
        status = self.pump.status()
        if status.motor_stall_detected:
            assert status.state not in DELIVERING, status.state
            assert self.pump.engine.basal_rate_nl_per_day == 0
            assert not self.pump.engine.bolus_active

    @invariant()
    def bolus_cancel_accounts_for_the_whole_bolus(self) -> None:
        """BOLUS_CANCELLED: value_a, the volume delivered, is whole strokes within the bolus
        volume (its STARTED entry's value_a; the rest was not delivered)."""
        started: int | None = None  # the last bolus's volume, if still in the bounded log
        for e in self.pump.log():
            if e.kind in BOLUS_STARTS:
                started = e.value_a
            elif e.kind is EventKind.BOLUS_CANCELLED and started is not None:
                assert 0 <= e.value_a <= started, e
                assert e.value_a % self.profile.stroke_nl == 0

    @invariant()
    def log_sequence_strictly_increases(self) -> None:
        entries = self.pump.log()
        seqs = [e.seq for e in entries]
        assert all(a < b for a, b in itertools.pairwise(seqs))
        # Stamps are the pump clock when written: they only jump at a CLOCK_SET (stamped
        # with the clock before it, value_a the clock after), and undoing each jump puts the
        # whole log back on the internal timeline, in order and never after now.
        for a, b in itertools.pairwise(entries):
            if a.kind is not EventKind.CLOCK_SET:
                assert a.time_ms <= b.time_ms, (a, b)
            else:
                assert a.value_a <= b.time_ms, (a, b)
        status = self.pump.status()
        offset = status.local_time_ms - status.time_ms
        internal = []
        for e in reversed(entries):
            if e.kind is EventKind.CLOCK_SET:
                offset -= e.value_a - e.time_ms
            internal.append(e.time_ms - offset)
        internal.reverse()
        assert all(a <= b for a, b in itertools.pairwise(internal))
        assert not internal or internal[-1] <= self.pump.now_ms
        if seqs:
            assert seqs[-1] >= self.last_seq  # the newest entry never goes back
            self.last_seq = seqs[-1]
        assert len(entries) <= self.profile.log_capacity

    @invariant()
    def delivered_totals_are_consistent_belief(self) -> None:
        """Issue 12: STATUS_DETAIL's totals agree with the firmware's count, and the day's
        and since-refill masses are parts of the whole."""
        d = self.pump.status_detail()
        assert d.delivered_nl == self.pump.status().delivered_nl
        assert 0 <= d.mass_today_pg <= d.delivered_pg
        assert 0 <= d.mass_since_refill_pg <= d.delivered_pg
        for instant in (d.low_reservoir_ms, d.empty_ms):
            assert instant is None or instant >= d.local_time_ms
        if d.low_reservoir_ms is not None and d.empty_ms is not None:
            assert d.low_reservoir_ms <= d.empty_ms

    @invariant()
    def every_state_the_pump_reaches_can_be_saved_and_resumed(self) -> None:
        # The restore rules (emulator/snapshot_rules.py) must never refuse a pump the
        # emulator itself produced: that would lose a real rig's pump at restart. Every
        # fourth step keeps the cost down; the steps between still vary the state.
        self.saves = getattr(self, "saves", 0) + 1
        if self.saves % 4:
            return
        twin = Pump.restore(self.pump.snapshot())
        assert twin.status() == self.pump.status()
        assert twin.snapshot() == self.pump.snapshot()


# The loaded profile (dev or ci) sets max_examples; each example runs up to 40 rules.
PumpMachine.TestCase.settings = settings(stateful_step_count=40)
TestPumpMachine = PumpMachine.TestCase
