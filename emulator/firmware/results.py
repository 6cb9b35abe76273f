"""Reply values of the pump's commands. A refusal is a value, never an exception
(docs/architecture.md principle 8), so a caller can pattern-match ``Accepted`` / ``Refused``.

Every ``*_ms`` field here is an instant on the pump clock (the one SET_CLOCK sets and STATUS
reports, ``FirmwareStatus.local_time_ms``), as it goes on the wire: ``time_ms`` is the stamp
of the result's log entry (``log_seq``), and instants to come (a bolus's end, predictions, a
stage's expiry) are on the clock as it read when the result was made. None is on the
pump's internal timeline (``Pump.now_ms``); see docs/pump-model.md, "Time".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from protocol.refusal import FieldId, RefusalCode

__all__ = [
    "Accepted",
    "BolusStarted",
    "RefillBegun",
    "RefillCompleted",
    "Refused",
    "Staged",
]


@dataclass(frozen=True, slots=True)
class Refused:
    """The pump refused; nothing was applied. ``limit`` is the bound broken, if any."""

    code: RefusalCode
    field: FieldId = FieldId.NONE
    limit: int | None = None
    ok: Literal[False] = False


@dataclass(frozen=True, slots=True)
class Accepted:
    """The command was applied at ``time_ms`` (pump clock: its log entry's stamp);
    ``log_seq`` is its event-log entry."""

    command_id: int | None
    time_ms: int
    log_seq: int
    ok: Literal[True] = True


@dataclass(frozen=True, slots=True)
class Staged:
    """What the pump computed for a staged prescription, for the clinician to review (C5).

    Predictions are basal-only, from the staging time and the current reservoir estimate,
    on the pump clock (PRESCRIPTION_STAGED's ``low_reservoir_at_ms`` / ``empty_at_ms``);
    None when the prescription never gets there (stopped, or zero rates).
    """

    digest: bytes
    daily_volume_nl: int
    """The most basal volume any 24 h window delivers (Prescription.max_24h_volume_nl)."""
    daily_mass_pg: int
    """The most mass any 24 h window delivers, every allowed patient bolus included (H9)."""
    predicted_low_reservoir_ms: int | None
    predicted_empty_ms: int | None
    expires_ms: int
    time_ms: int
    log_seq: int
    ok: Literal[True] = True
    overrides_used: int = 0
    """The drug-library override flags the prescription needed (protocol.messages
    OVERRIDE_*); 0 if it passed without any (docs/protocol.md STAGED_WITH_OVERRIDE)."""
    soft_limit_pg: int = 0
    """The drug's soft daily-mass limit, pg/day (0 for a STOPPED prescription's review)."""
    reference_daily_mass_pg: int = 0
    """The running prescription's daily mass a change was measured against; 0 if none."""


@dataclass(frozen=True, slots=True)
class BolusStarted:
    """A bolus (clinician, patient or priming) was granted and is being delivered."""

    command_id: int | None
    time_ms: int
    log_seq: int
    volume_nl: int
    """Whole strokes: the dose rounded down to a stroke multiple (never more than asked)."""
    strokes: int
    ends_ms: int
    """Pump clock: when the bolus will end (the ACK value, docs/protocol.md 8.1)."""
    ok: Literal[True] = True


@dataclass(frozen=True, slots=True)
class RefillBegun:
    command_id: int | None
    time_ms: int
    log_seq: int
    predicted_residual_nl: int
    """What the firmware believes is left: the number to compare with the syringe."""
    withdrawn_nl: int
    """What the needle actually drew out (plant truth)."""
    ok: Literal[True] = True


@dataclass(frozen=True, slots=True)
class RefillCompleted:
    command_id: int | None
    time_ms: int
    log_seq: int
    discrepancy_nl: int
    """Withdrawn (as entered) minus predicted residual; signed."""
    discrepancy_flagged: bool
    """True when |discrepancy| is above the profile's threshold (H1, H10)."""
    predicted_low_reservoir_ms: int | None
    predicted_empty_ms: int | None
    ok: Literal[True] = True
