"""Deliberately broken pumps make the matching built-in scenario fail, with a message that
names the step and the oracle: no oracle and no expectation can pass vacuously.

Each double breaks one safety property through the pump's public API only (a subclass or
a factory of ``RefillHands``, the wire backend's pump; a ledger that forgets)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from emulator.device import CommandLedger
from emulator.faults import MechanicalBias
from emulator.profile import Profile
from emulator.pump import Pump
from hil.scenario.backends import RefillHands
from hil.scenario.command import builtin_scenarios
from hil.scenario.loader import loads
from hil.scenario.model import Scenario
from hil.scenario.oracles import Finding
from hil.scenario.runner import RunResult, run
from protocol.device_state import EventKind
from protocol.messages import Ack
from protocol.refusal import RefusalCode

BUILTIN = {s.id: s for s in builtin_scenarios()}


def _failures(result: RunResult) -> list[Finding]:
    assert result.verdict == "fail", result.findings
    return [f for f in result.findings if f.ok is False]


class CatchUpPump(RefillHands):
    """Restarts after a stall with a catch-up dose: the missed basal as a bolus (H12)."""

    seen = 0

    def advance_to(self, time_ms: int) -> None:
        super().advance_to(time_ms)
        for entry in self.log(self.seen):
            self.seen = entry.seq + 1
            if entry.kind is EventKind.MOTOR_RECOVERED:
                self.clinician_bolus(125_000, 600)  # the 6 h missed at 0.5 mL/day


class NeverFlagsPump(RefillHands):
    """Reports every refill as matching its prediction: no discrepancy is ever seen (H1)."""

    def refill_complete(self, new_volume_nl: int, **kw: Any) -> Any:
        kw["withdrawn_nl"] = self.status().reservoir_estimate_nl
        return super().refill_complete(new_volume_nl, **kw)


class NoPocketPump(RefillHands):
    """Its plant puts every refill into the reservoir, whatever the needle did (H1)."""

    def refill_complete(self, new_volume_nl: int, **kw: Any) -> Any:
        self.hands = (new_volume_nl, 0)
        return super().refill_complete(new_volume_nl, **kw)


class LenientPump(RefillHands):
    """Clips an oversize clinician bolus to the maximum instead of refusing it (H11)."""

    def clinician_bolus(self, dose_nl: int, duration_s: int, **kw: Any) -> Any:
        return super().clinician_bolus(
            min(dose_nl, self.profile.max_clinician_bolus_nl), duration_s, **kw
        )


def blind_to_stalls(profile: Profile, **kw: Any) -> Pump:
    """A pump without a working stall sensor (H5)."""
    return RefillHands(dataclasses.replace(profile, sensor_motor_stall=False), **kw)


def hidden_bias(profile: Profile, **kw: Any) -> Pump:
    """A mechanism that moves 20 % more than the firmware counts (H10 drift)."""
    pump = RefillHands(profile, **kw)
    pump.inject(MechanicalBias(200_000))
    return pump


class ForgetfulLedger(CommandLedger):
    """Forgets every command id: a repeat is applied again (C1)."""

    def __bool__(self) -> bool:
        # PumpDevice takes ``ledger or CommandLedger()``, and an empty ledger is falsy
        # (it has __len__): without this the double would be silently replaced.
        return True

    def lookup(self, command_id: int, fingerprint: bytes) -> Ack | RefusalCode | None:
        return None


def test_catch_up_dose_fails_the_dose_oracle_naming_the_stall() -> None:
    failed = _failures(
        run(BUILTIN["h12-stall-restart-no-catch-up"], "wire", pump_class=CatchUpPump)
    )
    dose = [f for f in failed if "oracle" in f.where and "dose" in f.what]
    assert {f.where.rsplit(": ", 1)[-1] for f in dose} == {"oracle 2 (dose)", "oracle 3 (dose)"}
    assert all("'stall'" in f.what for f in dose)
    assert "to the patient" in dose[0].happened


def test_forgetful_ledger_fails_exactly_once_naming_the_bolus() -> None:
    failed = _failures(
        run(
            BUILTIN["c1-reply-lost-after-bolus-no-second-dose"],
            "wire",
            ledger_factory=ForgetfulLedger,
        )
    )
    once = [f for f in failed if "(exactly-once)" in f.where]
    assert once
    assert "step 2 'bolus'" in once[0].happened


def test_a_command_applied_twice_is_named() -> None:
    (scenario,) = loads(
        'id = "twice"\ntitle = "t"\n'
        '[[steps]]\nat = "1h"\ndo = "link-fault"\nkind = "drop"\nwhen = "@3"\ndir = "b2a"\n'
        'duration = "1 h"\n'
        '[[steps]]\nat = "1h"\ndo = "alarm-test"\nname = "test"\n'
        '[[oracles]]\ncheck = "exactly-once"\n',
        "twice.toml",
    )
    assert run(scenario, "wire").verdict == "pass"
    failed = _failures(run(scenario, "wire", ledger_factory=ForgetfulLedger))
    assert any(
        "applied 2 times (ALARM_TEST)" in f.happened and "'test'" in f.happened for f in failed
    )


def test_a_refill_check_that_never_flags_fails_the_refill_oracle() -> None:
    failed = _failures(
        run(BUILTIN["h01-pocket-fill-found-at-next-refill"], "wire", pump_class=NeverFlagsPump)
    )
    refill = [f for f in failed if "(refill-discrepancy)" in f.where]
    assert refill
    assert refill[0].expected == "flagged"
    step = [f for f in failed if "step 2 'next-refill'" in f.where]
    assert any(f.what == "refill discrepancy" for f in step)


def test_a_plant_without_pocket_fill_fails_the_reservoir_oracle() -> None:
    failed = _failures(
        run(BUILTIN["h01-pocket-fill-found-at-next-refill"], "wire", pump_class=NoPocketPump)
    )
    assert any("(reservoir)" in f.where and "at least" in f.expected for f in failed)


def test_hidden_bias_fails_the_reservoir_max_gap() -> None:
    failed = _failures(run(BUILTIN["h04-reset-during-bolus"], "wire", pump_class=hidden_bias))
    gap = [f for f in failed if "(reservoir)" in f.where]
    assert gap
    assert "at most" in gap[0].expected
    assert gap[0].at is not None  # belief beside truth at the worst instant


def test_a_blind_stall_sensor_fails_the_alarm_latency_oracle() -> None:
    failed = _failures(run(BUILTIN["h05-permanent-stall"], "wire", pump_class=blind_to_stalls))
    latency = [f for f in failed if "(alarm-latency)" in f.where]
    assert latency
    assert "after fault 'stall'" in latency[0].what
    assert latency[0].happened == "never"


def test_a_lenient_pump_fails_the_step_expectation() -> None:
    failed = _failures(
        run(BUILTIN["h11-misprogramming-refused-with-limits"], "wire", pump_class=LenientPump)
    )
    step = [f for f in failed if "step 1 'clinician-bolus-1'" in f.where]
    assert {"refusal", "field", "limit"} <= {f.what for f in step}  # another refusal
    assert "h11-misprogramming-limits.toml:" in step[0].where


@pytest.mark.parametrize("scenario", list(BUILTIN.values()), ids=lambda s: s.id)
def test_every_builtin_oracle_kind_is_broken_by_some_double(scenario: Scenario) -> None:
    """The doubles above cover every oracle kind a built-in scenario uses."""
    covered = {"dose", "exactly-once", "refill-discrepancy", "reservoir", "alarm-latency"}
    assert {o.check for o in scenario.oracles} <= covered


class ExplodingPump(RefillHands):
    """A pump (or a runner bug) that raises mid-run."""

    def inject(self, fault: Any) -> None:
        raise RuntimeError("boom")


def test_a_run_that_breaks_is_an_error_verdict_not_a_traceback() -> None:
    result = run(BUILTIN["h05-permanent-stall"], "api", pump_class=ExplodingPump)
    assert result.verdict == "error"
    assert result.error.endswith("the run broke: RuntimeError: boom")
