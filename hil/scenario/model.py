"""A parsed scenario: immutable values the loader builds and the runner reads
(docs/scenarios.md). Times are integer ms from the scenario's start (``0d 00:00``), volumes
nL, masses pg, concentrations ug/mL, tolerances ppm: a float never touches a dose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.prescription import Prescription

ACTIONS = (
    "interrogate",
    "program",
    "clinician-bolus",
    "patient-bolus",
    "cancel-bolus",
    "prime",
    "refill",
    "start",
    "stop",
    "acknowledge",
    "alarm-test",
    "set-clock",
    "clear-memory-error",
    "reset-flow-valve",
    "fault",
    "link-fault",
    "advance",
)
"""Every ``do`` a step may name."""

PROGRAMMER_ACTIONS = frozenset(ACTIONS) - {"fault", "link-fault", "advance"}
"""Steps that are a programmer's request (a session on the wire backend)."""

BACKENDS = ("wire", "api", "serve", "url")
"""Where a scenario runs (backends.py; serve_backend.py; url_backend.py)."""

OUTCOMES = ("answered", "applied", "refused", "not applied", "uncertain")


@dataclass(frozen=True, slots=True)
class Expect:
    """What a step must show. None: not checked."""

    outcome: str | None = None
    refusal: str | None = None
    field: str | None = None
    limit: int | None = None
    state: str | None = None
    alarms: tuple[str, ...] | None = None
    """Alarm kinds raised from this step until the next (exactly this set)."""
    log: tuple[str, ...] | None = None
    """Event kinds that must be among those written from this step until the next."""
    no_log: tuple[str, ...] | None = None
    """Event kinds that must not be written from this step until the next."""
    discrepancy: str | None = None
    """refill: "flagged" or "none"."""


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    line: int
    at_ms: int
    do: str
    name: str
    params: Mapping[str, Any]
    """The action's own values, parsed to integer units (see loader)."""
    expect: Expect | None


@dataclass(frozen=True, slots=True)
class Oracle:
    index: int
    line: int
    check: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Setup:
    profile: str
    """A built-in profile name or an absolute path to a profile file."""
    age_ms: int
    clock_ms: int
    """The pump clock at the scenario's start (ms since 1970-01-01, local)."""
    reservoir_nl: int | None
    drug: str | None
    concentration_ug_per_ml: int | None
    catheter_length_cm: int | None
    catheter_primed: bool
    prescription: Prescription | None


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    hazards: tuple[str, ...]
    tags: tuple[str, ...]
    seed: int
    path: str
    setup: Setup
    steps: tuple[Step, ...]
    oracles: tuple[Oracle, ...]
    end_ms: int
    """When the run ends (the last step, or ``end`` if later)."""
    sweep: Mapping[str, Any] = field(default_factory=dict)
    """The sweep values this run was expanded with (empty if none)."""
