"""Therapy commands through a noisy link, tallied against the pump's own log (C1, C2).

``run_lossy_campaign`` drives the reference programmer (``ProgrammerCore``, default
``RetryPolicy`` unless told otherwise) against an emulated pump in the two-peer simulation
on a manual clock, over a ``LossyLink`` that drops, damages and duplicates frames. Every
command gets a fresh command id. After each one, the new entries of the pump's event log say
which command ids the pump applied, so the tally compares what the programmer *reported*
with what the pump *did*, command by command:

- ``double_applied``: a command id the pump applied more than once (never allowed);
- ``silently_lost``: a command reported APPLIED that the pump never applied, or reported
  REFUSED or NOT_APPLIED that it did apply (the user was told something false);
- ``uncertain``: a command the programmer honestly could not resolve;
- ``locked_out``: lockouts the link alone caused (LOCKED_OUT refusals, lockouts started).

It is what ``benchmarks/lossy_link.py`` prints and what the lossy-link tests assert; a CI
pipeline can run it against its own retry policy the same way.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.profile import load_profile
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore, RetryPolicy
from hil.two_peer import LossyLink, TwoPeer
from protocol.device_state import EventKind, Role
from protocol.keys import generate_keys
from protocol.messages import (
    AlarmTest,
    Message,
    PatientBolusRequest,
    StartTherapy,
    StopTherapy,
)
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.refusal import RefusalCode

__all__ = ["CampaignResult", "run_lossy_campaign"]

_APPLIED_EVENTS = frozenset(
    {
        EventKind.ALARM_TEST,
        EventKind.THERAPY_STARTED,
        EventKind.THERAPY_STOPPED,
        EventKind.PATIENT_BOLUS_GRANTED,
    }
)
"""The log entry each campaign command writes when the pump applies it; its ``value_b`` is
the command id (docs/protocol.md section 11)."""

_COMMANDS: tuple[Callable[[int], Message], ...] = (
    lambda cid: AlarmTest(command_id=cid),
    lambda cid: PatientBolusRequest(command_id=cid),
    lambda cid: StopTherapy(command_id=cid),
    lambda cid: StartTherapy(command_id=cid),
)


@dataclass(frozen=True, slots=True)
class CampaignResult:
    commands: int
    applied: int
    refused: int
    not_applied: int
    uncertain: int
    locked_out: int
    double_applied: int
    silently_lost: int
    failed_openings: int
    """AUTHENTICATION_FAILED events in the pump's log: proofs that failed (never from the
    link alone, docs/security.md section 5)."""
    link: dict[str, int]
    pump_time_ms: int

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def run_lossy_campaign(
    commands: int,
    *,
    drop: float = 0.1,
    corrupt: float = 0.1,
    duplicate: float = 0.1,
    seed: int = 1,
    policy: RetryPolicy | None = None,
    progress: Callable[[int], None] | None = None,
) -> CampaignResult:
    """Send ``commands`` therapy commands through a lossy link and tally them.

    ``progress(done)`` is called every 1,000 commands, for a progress bar.
    """
    if commands < 0:
        raise ValueError("commands must be >= 0")
    # Seeded on purpose: one seed, one run, keys and nonces included. A simulated pump.
    rng = random.Random(seed)  # noqa: S311
    keys = generate_keys("PE-LOSSY-1", rng.randbytes(64))
    pump = Pump(load_profile("peristaltic-20"))
    rx = Prescription(
        "morphine", 1_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 500_000),),
        PatientBolusLimits(dose_nl=1_000, duration_s=60, lockout_s=600, max_per_24h=24),
        2_000_000,
    )  # fmt: skip
    staged = pump.stage(rx)
    if not staged.ok or not pump.commit(staged.digest, command_id=1).ok:
        raise RuntimeError("the campaign prescription was refused")
    device = PumpDevice(pump, keys, random.Random(seed + 1).randbytes)  # noqa: S311
    core = ProgrammerCore(
        keys.serial, Role.CLINICIAN, keys.clinician, rng.randbytes, policy or RetryPolicy()
    )
    link = LossyLink(drop, corrupt, duplicate, seed=seed + 2)
    pair = TwoPeer(device, core, ManualClock(pump.now_ms), link)

    outcomes: Counter[Outcome] = Counter()
    applied_times: Counter[int] = Counter()
    reported: dict[int, Outcome] = {}
    locked_out = failed_openings = 0
    lockout_seen: int | None = None
    log_seq = pump.status().log_next_seq
    for index in range(commands):
        command_id = index + 2
        result = pair.request(_COMMANDS[index % len(_COMMANDS)](command_id))
        outcomes[result.outcome] += 1
        reported[command_id] = result.outcome
        lockout = device.session.lockout_until_ms
        if result.refusal is RefusalCode.LOCKED_OUT or (
            lockout is not None and lockout != lockout_seen
        ):
            locked_out += 1
        lockout_seen = lockout
        for entry in pump.log(log_seq):
            log_seq = entry.seq + 1
            if entry.kind in _APPLIED_EVENTS and entry.value_b:
                applied_times[entry.value_b] += 1
            elif entry.detail == RefusalCode.AUTHENTICATION_FAILED:
                # One event per SECURITY_EVENT, value_a more per SECURITY_SUMMARY
                # (docs/protocol.md section 11.3).
                if entry.kind is EventKind.SECURITY_EVENT:
                    failed_openings += 1
                elif entry.kind is EventKind.SECURITY_SUMMARY:
                    failed_openings += entry.value_a
        log_seq = max(log_seq, pump.status().log_next_seq)
        if progress is not None and (index + 1) % 1_000 == 0:
            progress(index + 1)
    pair.close()
    # Failures a coalescing run has counted but not yet summarised in the log.
    failed_openings += device.uncounted_security_events().get(RefusalCode.AUTHENTICATION_FAILED, 0)

    told_applied = {cid for cid, outcome in reported.items() if outcome is Outcome.APPLIED}
    told_not = {
        cid
        for cid, outcome in reported.items()
        if outcome in (Outcome.REFUSED, Outcome.NOT_APPLIED)
    }
    silently_lost = len(told_applied - set(applied_times)) + len(told_not & set(applied_times))
    return CampaignResult(
        commands=commands,
        applied=outcomes[Outcome.APPLIED],
        refused=outcomes[Outcome.REFUSED],
        not_applied=outcomes[Outcome.NOT_APPLIED],
        uncertain=outcomes[Outcome.UNCERTAIN],
        locked_out=locked_out,
        double_applied=sum(1 for n in applied_times.values() if n > 1),
        silently_lost=silently_lost,
        failed_openings=failed_openings,
        link=dict(link.counts),
        pump_time_ms=pump.now_ms,
    )
