"""Staging and committing a prescription: the two-step programming of C5.

STAGE_PRESCRIPTION checks a prescription in full (the profile's limits, the drug library,
the interlocks: drug_checks.py) and answers what it means (daily volume and mass, when the
reservoir runs low and empty) with its digest, without applying it. COMMIT_PRESCRIPTION
applies the staged prescription only if it quotes that digest before the stage expires
(docs/protocol.md, "Digest"; section 7). The staged prescription is volatile: a reset or a
session cut drops it. ``Firmware`` calls these functions as its methods.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from emulator.firmware.drug_checks import Review, check_stage
from emulator.firmware.interlocks import daily_volume_with_boluses_nl, prescription_digest
from emulator.firmware.results import Accepted, Refused, Staged
from emulator.firmware.therapy_table import Go, Target, TherapyInput
from protocol.device_state import AlarmKind, EventKind, TherapyState
from protocol.messages import Opcode
from protocol.prescription import InfusionMode, Prescription
from protocol.refusal import FieldId, RefusalCode
from protocol.units import MS_PER_S

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = ["StagedPrescription", "commit", "discard", "expire", "stage", "stage_reviewed"]


@dataclass(frozen=True, slots=True)
class StagedPrescription:
    """A prescription that passed STAGE, held until COMMIT or expiry (volatile: C5)."""

    rx: Prescription
    digest: bytes
    expires_ms: int | None
    """None: the stage lifetime runs on a timeline the pump does not keep (the device's link
    timeline, docs/security.md section 6), which ends it with ``expire_staged``."""
    expired: bool = False
    overrides_used: int = 0
    """The drug library overrides this stage needed (logged again at its commit)."""


def stage(
    fw: Firmware, rx: Prescription, now_ms: int, *, expires: bool = True, overrides: int = 0
) -> Staged | Refused:
    """Check a prescription and compute what it means, without applying it (C5).

    ``expires=False``: the caller times the stage lifetime on its own timeline and ends
    it with ``expire_staged`` (the device does, on link time). ``overrides``: the
    STAGE_PRESCRIPTION_OVERRIDE flags (protocol.messages.OVERRIDE_*); 0 is a plain
    STAGE_PRESCRIPTION, which the drug library's soft limits refuse."""
    what = TherapyInput.STAGE
    opcode = Opcode.STAGE_PRESCRIPTION_OVERRIDE if overrides else Opcode.STAGE_PRESCRIPTION
    gate = fw._gate(what, now_ms, None, opcode=opcode)
    if isinstance(gate, Refused):
        return gate
    if fw._refill_predicted is not None:
        return fw._refuse(
            Refused(RefusalCode.REFILL_IN_PROGRESS), what, now_ms, None, opcode=opcode
        )
    pending = None if fw._change is None else fw._change.new_concentration
    review = check_stage(
        fw.library,
        fw.profile,
        rx,
        running=fw.rx,
        pending_concentration=pending,
        overrides=overrides,
    )
    if isinstance(review, Refused):
        return fw._refuse(review, what, now_ms, None, opcode=opcode)
    return fw._stage_reviewed(rx, review, now_ms, expires)


def stage_reviewed(
    fw: Firmware, rx: Prescription, review: Review, now_ms: int, expires: bool
) -> Staged:
    """Hold a prescription that passed its checks, log it and say what it means."""
    digest = prescription_digest(rx)
    # The figure the daily mass limit was checked on (interlocks), so the review shows
    # exactly what the pump accepted: mass = volume x concentration (protocol.md 7).
    daily_volume = daily_volume_with_boluses_nl(rx)
    daily_mass = daily_volume * rx.concentration_ug_per_ml
    lifetime_ms = fw.profile.stage_lifetime_s * MS_PER_S
    fw._staged = StagedPrescription(
        rx, digest, now_ms + lifetime_ms if expires else None, False, review.overrides_used
    )
    low, empty = fw.predictions(now_ms, rx, running=rx.mode is not InfusionMode.STOPPED)
    seq = fw._log(now_ms, EventKind.PRESCRIPTION_STAGED, int(rx.mode), daily_volume, daily_mass)
    if review.overrides_used:
        # Every override is in the log, with what it let through (H9).
        fw._log(
            now_ms,
            EventKind.OVERRIDE_STAGED,
            review.overrides_used,
            daily_mass,
            review.reference_daily_mass_pg,
        )
    return Staged(
        digest,
        daily_volume,
        daily_mass,
        low,
        empty,
        fw.local_ms(now_ms + lifetime_ms),
        fw._stamp(now_ms),
        seq,
        overrides_used=review.overrides_used,
        soft_limit_pg=review.soft_limit_pg,
        reference_daily_mass_pg=review.reference_daily_mass_pg,
    )


def expire(fw: Firmware) -> None:
    """The stage lifetime ran out on the caller's timeline: COMMIT now refuses it with
    STAGE_EXPIRED, exactly as when it runs out on pump time."""
    if fw._staged is not None:
        fw._staged = replace(fw._staged, expired=True)


def discard(fw: Firmware) -> None:
    """A session cut between stage and commit: the staged prescription is gone (C5)."""
    fw._staged = None


def commit(fw: Firmware, digest: bytes, now_ms: int, command_id: int | None) -> Accepted | Refused:
    """COMMIT_PRESCRIPTION: the staged prescription takes effect if ``digest`` is its
    digest and it has not expired (C5), or the refusal, logged."""
    what = TherapyInput.COMMIT
    staged = fw._staged
    # Committing a stopped prescription starts nothing, so a stall does not block it.
    delivers = staged is not None and staged.rx.mode is not InfusionMode.STOPPED
    gate = fw._gate(what, now_ms, command_id, delivers=delivers)
    if isinstance(gate, Refused):
        return gate
    if fw._refill_predicted is not None:
        return fw._refuse(Refused(RefusalCode.REFILL_IN_PROGRESS), what, now_ms, command_id)
    if staged is None:
        return fw._refuse(Refused(RefusalCode.NOTHING_STAGED), what, now_ms, command_id)
    if staged.expired or (staged.expires_ms is not None and now_ms > staged.expires_ms):
        fw._staged = None
        return fw._refuse(
            Refused(RefusalCode.STAGE_EXPIRED, FieldId.NONE, fw.profile.stage_lifetime_s),
            what,
            now_ms,
            command_id,
        )
    if digest != staged.digest:
        return fw._refuse(
            Refused(RefusalCode.DIGEST_MISMATCH, FieldId.DIGEST), what, now_ms, command_id
        )
    if delivers and gate.starts_delivery and fw._estimate < fw._stroke:
        # Like START: a command that would start the motor on an empty estimate is
        # refused with the specific code, not accepted and suspended at the next step.
        return fw._refuse(Refused(RefusalCode.RESERVOIR_EMPTY), what, now_ms, command_id)
    fw._staged = None
    change = fw._change
    bridge_runs = change is not None and change.bridging and not change.new_drug_at_tip
    if change is not None and bridge_runs and fw._intent_running:
        # The bridge (docs/pump-model.md): the old drug keeps its old rates until it is
        # out of the tip, then this prescription takes effect (_check_concentration_change).
        fw._change = replace(change, next_rx=staged.rx)
    else:
        fw._change = None  # the prescription in effect is for what is in the reservoir
        fw._install(staged.rx)
        fw._intent_running = staged.rx.mode is not InfusionMode.STOPPED
    pb = staged.rx.patient_bolus
    # A lockout starts right after programming (docs/domain.md section 2).
    fw._lockout_until_ms = now_ms + (pb.lockout_s * MS_PER_S if pb else 0)
    fw._transition(gate, now_ms)
    if change is not None and change.suspended and fw._change is None:
        # The prescription for the new concentration: the suspension's cause is gone.
        fw._clear_alarm(AlarmKind.CONCENTRATION_UNPROGRAMMED, now_ms)
        if fw.state is TherapyState.SUSPENDED_BY_ALARM:
            fw._transition(Go(Target.RESUME), now_ms)
    fw._check_reservoir_alarms(now_ms)
    digest_u64 = int.from_bytes(staged.digest[:8], "little")
    seq = fw._log(now_ms, EventKind.PRESCRIPTION_COMMITTED, int(staged.rx.mode), digest_u64)
    if staged.overrides_used:
        fw._log(now_ms, EventKind.OVERRIDE_COMMITTED, staged.overrides_used, digest_u64)
    return fw._accepted(command_id, now_ms, seq)
