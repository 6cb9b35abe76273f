"""The therapy state machine as data (docs/architecture.md principle 6).

One table maps every (TherapyState, TherapyInput) pair to either a ``Go(target)`` or a
``Refuse(code)``: nothing is left to an ``if`` buried in the firmware, and an input with no
transition is refused with a specific code, never ignored. ``tests/emulator`` checks that
the table is total.

Targets are symbolic where the next state depends on data the table cannot hold:

- ``BASAL``: the committed prescription's own state (STOPPED, CONTINUOUS or FLEX);
- ``AFTER_BOLUS``: where a bolus returns: STOPPED if it started from STOPPED, else BASAL;
- ``RESUME``: BASAL if no suspension cause (stall, empty, memory error, a new
  concentration with no prescription for it) remains, else stay;
- ``SAME``: no state change (the input acts on data only, e.g. staging, a refill).

``Refuse(None)`` in SUSPENDED_BY_ALARM means "the suspension's own code": MOTOR_STALLED,
RESERVOIR_EMPTY or MEMORY_ERROR, whichever holds (in that order of precedence after memory).
A memory error (H8) refuses every therapy input before the table is consulted; it is a
device condition, not a therapy state.

A detected motor stall is also a device condition, not a state: after a STOP the pump can
be STOPPED with the stall still detected (the firmware keeps retrying the rotor). So an
entry that can start delivery from a state where the motor is not turning is marked
``Go(target, starts_delivery=True)``, and the firmware refuses it with MOTOR_STALLED while a
stall is detected (H5, H12): the rotor is not known to turn, and a delivery started then
would be counted but not given, then given in full when the rotor frees. Only the firmware's
own retry (MOTOR_RECOVERED) may resume therapy, at the programmed rate with no catch-up;
after a STOP during a stall the clinician restarts explicitly once the recovery is logged.
A COMMIT starts delivery only if the prescription is not a stopped one; the firmware checks
the flag against the staged prescription. A COMMIT while SUSPENDED_BY_ALARM starts nothing:
it is stored and runs when the suspension clears (``SAME``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from protocol.device_state import TherapyState
from protocol.refusal import RefusalCode

__all__ = [
    "BASAL_UNDER_BOLUS_STATES",
    "BOLUS_STATES",
    "DELIVERING_STATES",
    "FIXED_TARGETS",
    "RUNNING_STATES",
    "TABLE",
    "Go",
    "Refuse",
    "Target",
    "TherapyInput",
    "lookup",
]

RUNNING_STATES = frozenset({TherapyState.CONTINUOUS, TherapyState.FLEX})
"""The basal schedule runs (no bolus on top)."""
BOLUS_STATES = frozenset(
    {TherapyState.CLINICIAN_BOLUS, TherapyState.PATIENT_BOLUS, TherapyState.PRIMING}
)
DELIVERING_STATES = RUNNING_STATES | BOLUS_STATES
"""The motor is commanded: the reservoir crossings and an empty estimate matter."""
BASAL_UNDER_BOLUS_STATES = frozenset({TherapyState.CLINICIAN_BOLUS, TherapyState.PATIENT_BOLUS})
"""A bolus on top of the basal, which keeps running if therapy was running (a priming
bolus replaces the basal)."""


class TherapyInput(IntEnum):
    """Everything that can ask the therapy state machine to move."""

    STAGE = 1
    COMMIT = 2
    START = 3
    STOP = 4
    CLINICIAN_BOLUS = 5
    PATIENT_BOLUS = 6
    PRIME = 7
    CANCEL_BOLUS = 8
    REFILL_BEGIN = 9
    REFILL_COMPLETE = 10
    CLEAR_MEMORY_ERROR = 11
    BRIDGE_BOLUS = 12
    # Inputs from the firmware's own sensing and timers:
    BOLUS_COMPLETE = 20
    STALL_DETECTED = 21
    MOTOR_RECOVERED = 22
    RESERVOIR_EMPTY = 23
    END_OF_SERVICE = 24
    MEMORY_ERROR = 25
    LOW_BATTERY_RESET = 26
    NEW_CONCENTRATION_AT_TIP = 27
    """A refill's new concentration reached the catheter tip with no prescription for it
    (emulator/firmware/concentration_change.py): it must not run at the old rates."""


class Target(Enum):
    SAME = "same"
    BASAL = "basal"
    AFTER_BOLUS = "after-bolus"
    RESUME = "resume"
    STOPPED = "stopped"
    CLINICIAN_BOLUS = "clinician-bolus"
    PATIENT_BOLUS = "patient-bolus"
    PRIMING = "priming"
    SUSPENDED = "suspended"
    END_OF_SERVICE = "end-of-service"


FIXED_TARGETS: dict[Target, TherapyState] = {
    Target.STOPPED: TherapyState.STOPPED,
    Target.CLINICIAN_BOLUS: TherapyState.CLINICIAN_BOLUS,
    Target.PATIENT_BOLUS: TherapyState.PATIENT_BOLUS,
    Target.PRIMING: TherapyState.PRIMING,
    Target.SUSPENDED: TherapyState.SUSPENDED_BY_ALARM,
    Target.END_OF_SERVICE: TherapyState.END_OF_SERVICE,
}
"""The targets that name one state whatever the firmware's state (the rest, SAME, BASAL,
AFTER_BOLUS and RESUME, depend on it: ``Firmware._resolve``)."""


@dataclass(frozen=True, slots=True)
class Go:
    target: Target
    starts_delivery: bool = False
    """The transition can start the motor from a state where it is not turning: refused
    MOTOR_STALLED while a stall is detected (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    code: RefusalCode | None
    """None: the suspension's own code (see the module docstring)."""


S = TherapyState
I = TherapyInput  # noqa: E741 - a one-letter alias keeps the table readable
T = Target
R = RefusalCode

_SAME = Go(T.SAME)


def _starts(target: Target) -> Go:
    """A transition that can start delivery: refused MOTOR_STALLED while a stall is detected."""
    return Go(target, starts_delivery=True)


_RUNNING: dict[TherapyInput, Go | Refuse] = {
    I.STAGE: _SAME,
    # Running means no stall is detected (detection suspends); the guard is defence in depth.
    I.COMMIT: _starts(T.BASAL),
    I.START: Refuse(R.BAD_STATE),  # already running
    I.STOP: Go(T.STOPPED),
    I.CLINICIAN_BOLUS: _starts(T.CLINICIAN_BOLUS),
    I.PATIENT_BOLUS: _starts(T.PATIENT_BOLUS),
    I.PRIME: _starts(T.PRIMING),
    I.CANCEL_BOLUS: Refuse(R.NO_BOLUS_IN_PROGRESS),
    I.REFILL_BEGIN: _SAME,
    I.REFILL_COMPLETE: _SAME,
    I.CLEAR_MEMORY_ERROR: Refuse(R.NO_SUCH_ALARM),
    I.BOLUS_COMPLETE: Refuse(R.NO_BOLUS_IN_PROGRESS),
    I.STALL_DETECTED: Go(T.SUSPENDED),
    I.MOTOR_RECOVERED: Refuse(R.BAD_STATE),  # never suspended for a stall
    I.RESERVOIR_EMPTY: Go(T.SUSPENDED),
    I.END_OF_SERVICE: Go(T.END_OF_SERVICE),
    I.MEMORY_ERROR: Go(T.SUSPENDED),
    I.LOW_BATTERY_RESET: Go(T.BASAL),  # the low-rate prescription runs (H4, H6)
    # The old drug in the path keeps running at the old rates; the bridge changes only
    # what a COMMIT does (docs/pump-model.md, "Concentration changes").
    I.BRIDGE_BOLUS: _SAME,
    I.NEW_CONCENTRATION_AT_TIP: Go(T.SUSPENDED),  # never the new drug at the old rates
}

_BOLUS: dict[TherapyInput, Go | Refuse] = {
    I.STAGE: _SAME,
    # Reprogramming mid-bolus would have to decide what happens to the rest of the dose;
    # the pump makes the clinician cancel it explicitly instead.
    I.COMMIT: Refuse(R.BOLUS_IN_PROGRESS),
    I.START: Refuse(R.BOLUS_IN_PROGRESS),
    I.STOP: Go(T.STOPPED),  # the rest of the bolus is dropped, never caught up (H12)
    I.CLINICIAN_BOLUS: Refuse(R.BOLUS_IN_PROGRESS),
    I.PATIENT_BOLUS: Refuse(R.BOLUS_IN_PROGRESS),
    I.PRIME: Refuse(R.BOLUS_IN_PROGRESS),
    I.CANCEL_BOLUS: Go(T.AFTER_BOLUS),
    I.REFILL_BEGIN: Refuse(R.BOLUS_IN_PROGRESS),
    I.REFILL_COMPLETE: Refuse(R.BOLUS_IN_PROGRESS),
    I.CLEAR_MEMORY_ERROR: Refuse(R.NO_SUCH_ALARM),
    I.BOLUS_COMPLETE: Go(T.AFTER_BOLUS),
    I.STALL_DETECTED: Go(T.SUSPENDED),
    I.MOTOR_RECOVERED: Refuse(R.BAD_STATE),
    I.RESERVOIR_EMPTY: Go(T.SUSPENDED),
    I.END_OF_SERVICE: Go(T.END_OF_SERVICE),
    I.MEMORY_ERROR: Go(T.SUSPENDED),
    I.LOW_BATTERY_RESET: Go(T.AFTER_BOLUS),  # the bolus is dropped; the low rate runs
    I.BRIDGE_BOLUS: Refuse(R.BOLUS_IN_PROGRESS),
    I.NEW_CONCENTRATION_AT_TIP: Go(T.SUSPENDED),
}

TABLE: dict[TherapyState, dict[TherapyInput, Go | Refuse]] = {
    S.STOPPED: {
        I.STAGE: _SAME,
        # Stopped after a stall, the stall stays detected until a retry sees the rotor turn:
        # starting delivery is refused MOTOR_STALLED until then (H5, H12).
        I.COMMIT: _starts(T.BASAL),
        I.START: _starts(T.BASAL),
        I.STOP: Refuse(R.THERAPY_STOPPED),
        I.CLINICIAN_BOLUS: _starts(T.CLINICIAN_BOLUS),  # a single bolus, then back to stopped
        I.PATIENT_BOLUS: Refuse(R.THERAPY_STOPPED),
        I.PRIME: _starts(T.PRIMING),  # after implant or a catheter revision (H3)
        I.CANCEL_BOLUS: Refuse(R.NO_BOLUS_IN_PROGRESS),
        I.REFILL_BEGIN: _SAME,
        I.REFILL_COMPLETE: _SAME,
        I.CLEAR_MEMORY_ERROR: Refuse(R.NO_SUCH_ALARM),
        I.BOLUS_COMPLETE: Refuse(R.NO_BOLUS_IN_PROGRESS),
        I.STALL_DETECTED: Refuse(R.BAD_STATE),  # no stroke is commanded, none can fail
        I.MOTOR_RECOVERED: _SAME,  # stopped during a stall: the alarm clears, no restart
        I.RESERVOIR_EMPTY: Refuse(R.BAD_STATE),  # nothing is delivered while stopped
        I.END_OF_SERVICE: Go(T.END_OF_SERVICE),
        I.MEMORY_ERROR: Go(T.SUSPENDED),
        I.LOW_BATTERY_RESET: _SAME,  # the low rate is stored; a stopped pump stays stopped
        I.BRIDGE_BOLUS: Refuse(R.THERAPY_STOPPED),  # nothing moves the old drug out
        I.NEW_CONCENTRATION_AT_TIP: Refuse(R.BAD_STATE),  # nothing flows while stopped
    },
    S.CONTINUOUS: dict(_RUNNING),
    S.FLEX: dict(_RUNNING),
    S.CLINICIAN_BOLUS: dict(_BOLUS),
    S.PATIENT_BOLUS: dict(_BOLUS),
    S.PRIMING: dict(_BOLUS),
    S.SUSPENDED_BY_ALARM: {
        I.STAGE: _SAME,
        I.COMMIT: _SAME,  # stored; it runs when the suspension clears, starts nothing now
        I.START: Refuse(None),
        I.STOP: Go(T.STOPPED),  # the clinician takes over; no automatic resume
        I.CLINICIAN_BOLUS: Refuse(None),
        I.PATIENT_BOLUS: Refuse(None),
        I.PRIME: Refuse(None),
        I.CANCEL_BOLUS: Refuse(R.NO_BOLUS_IN_PROGRESS),
        I.REFILL_BEGIN: _SAME,
        I.REFILL_COMPLETE: Go(T.RESUME),  # an empty reservoir refilled
        I.CLEAR_MEMORY_ERROR: Go(T.STOPPED),  # RAM may be stale: restart explicitly (H8)
        I.BOLUS_COMPLETE: Refuse(R.NO_BOLUS_IN_PROGRESS),
        I.STALL_DETECTED: Refuse(R.BAD_STATE),  # nothing is commanded while suspended
        I.MOTOR_RECOVERED: Go(T.RESUME),  # at the programmed rate, no catch-up (H12)
        I.RESERVOIR_EMPTY: Refuse(R.BAD_STATE),
        I.END_OF_SERVICE: Go(T.END_OF_SERVICE),
        I.MEMORY_ERROR: _SAME,
        I.LOW_BATTERY_RESET: _SAME,
        I.BRIDGE_BOLUS: Refuse(None),
        I.NEW_CONCENTRATION_AT_TIP: Refuse(R.BAD_STATE),  # nothing flows while suspended
    },
    S.END_OF_SERVICE: {
        **{i: Refuse(R.END_OF_SERVICE) for i in TherapyInput},
        I.MEMORY_ERROR: _SAME,  # logged and alarmed; the pump is already inert
    },
}


def lookup(state: TherapyState, what: TherapyInput) -> Go | Refuse:
    return TABLE[state][what]
