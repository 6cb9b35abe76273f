"""Where a scenario runs (docs/scenarios.md, "Backends").

- ``api``: ``emulator.pump.Pump`` called directly, the fastest;
- ``wire`` (the default, wire_backend.py): the reference programmer and ``PumpDevice`` on
  a manual clock, every programmer step a sealed session, as a clinic visit is.

(``serve`` and ``url``, the pump elsewhere: serve_backend.py, url_backend.py.) This module
holds what every backend shares and the ``api`` backend; each other backend's module is
imported only when that backend is made.

Both start from the same ``build_pump`` (the setup is the pump as the story finds it, not
a step), take the same command ids from the runner, and draw one telemetry session's
battery charge per programmer step, so a file gives the same figures on both. A step a
backend cannot do returns ``StepResult(skipped=REASON)``: reported skipped, never passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from emulator.firmware.results import RefillBegun, RefillCompleted, Refused, Staged
from emulator.profile import Profile, load_profile
from emulator.pump import Pump
from hil.fault_builders import build_fault
from hil.scenario.model import BACKENDS, Setup
from protocol.device_state import AlarmKind, LogEntry
from protocol.refusal import FieldId

if TYPE_CHECKING:
    # The wire backend's stack (the device, the session, the programmer, the proxy's
    # engine) is imported when a wire backend is made, not here: a campaign worker on the
    # api backend never loads it (about 50 ms of every spawned worker's start-up).
    from emulator.command_ledger import CommandLedger
    from hil.proxy.faults import FaultSpec
    from hil.pump_at_url import PumpAtUrl

SERIAL = "PE-SCENARIO"

NO_OPCODE: dict[str, str] = {}
"""Pump commands of the Python API that the wire cannot carry (skipped on wire and serve,
with the reason): none today."""


class SetupError(Exception):
    """The setup cannot be built (the pump refused the setup prescription)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a programmer step ended in, the same shape on every backend."""

    outcome: str = "answered"
    refusal: str | None = None
    field: str | None = None
    limit: int | None = None
    command_ids: tuple[int, ...] = ()
    """The ids the step's commands carried (a refill has two: begin, complete)."""
    predicted_residual_nl: int | None = None
    withdrawn_reported_nl: int | None = None
    resolved_by_status: bool = False
    skipped: str | None = None
    detail: str = ""


PumpFactory = Callable[..., Pump]


class RefillHands(Pump):
    """A pump whose refill puts the drug where the clinician's needle really put it.

    On the wire a REFILL_COMPLETE carries only what the clinician *enters*; where the drug
    physically went (the reservoir, or the pocket: H1, H10) is the plant's side, which the
    runner plays through ``hands`` for the one request it is about to send."""

    hands: tuple[int | None, int] | None = None

    def refill_complete(
        self,
        new_volume_nl: int,
        *,
        withdrawn_nl: int | None = None,
        injected_nl: int | None = None,
        pocket_nl: int = 0,
        new_concentration_ug_per_ml: int | None = None,
        command_id: int | None = None,
        injected_concentration_ug_per_ml: int | None = None,
    ) -> RefillCompleted | Refused:
        if self.hands is not None:
            injected_nl, pocket_nl = self.hands
            self.hands = None
        return super().refill_complete(
            new_volume_nl,
            withdrawn_nl=withdrawn_nl,
            injected_nl=injected_nl,
            pocket_nl=pocket_nl,
            new_concentration_ug_per_ml=new_concentration_ug_per_ml,
            command_id=command_id,
            injected_concentration_ug_per_ml=injected_concentration_ug_per_ml,
        )


def build_pump(setup: Setup, cls: PumpFactory = RefillHands) -> Pump:
    """The pump as the story finds it at ``0d 00:00``: aged ``age`` days (stopped), the
    setup prescription committed (no command id: it predates the scenario)."""
    profile = load_profile(setup.profile)
    strength = {}
    if setup.concentration_ug_per_ml is not None:
        # The drug really in the reservoir and catheter (plant truth, drug mass in pg).
        strength["drug_concentration_ug_per_ml"] = setup.concentration_ug_per_ml
    pump = cls(
        profile,
        start_ms=setup.clock_ms - setup.age_ms,
        reservoir_nl=setup.reservoir_nl,
        catheter_length_cm=setup.catheter_length_cm,
        catheter_primed=setup.catheter_primed,
        **strength,
    )
    pump.advance_to(setup.clock_ms)
    if setup.prescription is not None:
        staged = pump.stage(setup.prescription)
        if isinstance(staged, Refused):
            raise SetupError(f"the pump refused the setup prescription: {staged.code.name}")
        done = pump.commit(staged.digest)
        if isinstance(done, Refused):
            raise SetupError(f"the pump refused to commit the setup prescription: {done.code.name}")
    return pump


class PumpView(Protocol):
    """What the runner and the oracles read of a pump: ``Pump`` itself, or serve's pump
    through its control API (url_backend.RemotePump), or over the wire alone
    (url_backend.WirePump)."""

    @property
    def profile(self) -> Profile: ...

    def status(self) -> Any: ...

    def plant_truth(self) -> Any: ...

    def log(self, since_seq: int = 0) -> tuple[LogEntry, ...]: ...


class Backend(Protocol):
    name: str
    no_truth: str | None
    """Why plant truth cannot be read (the oracles that need it are skipped), or None."""

    @property
    def pump(self) -> PumpView: ...

    def advance_to(self, internal_ms: int) -> str | None:
        """Move pump time on; returns a skip reason if this backend cannot."""
        ...

    def request(self, do: str, params: dict[str, Any], ids: tuple[int, ...]) -> StepResult: ...

    def inject(self, name: str, params: dict[str, Any]) -> str | None:
        """A plant fault by its registry name (hil/control.py FAULTS) and parameters;
        returns a skip reason if this backend cannot reach the plant."""
        ...

    def link_fault(self, spec: FaultSpec, start_ms: int, end_ms: int, seed: int) -> str | None:
        """Arm a link fault for [start, end); returns a skip reason if the backend has no link."""
        ...

    def close(self) -> None: ...


def _refused(refused: Refused) -> StepResult:
    fld = None if refused.field is FieldId.NONE else refused.field.name
    return StepResult("refused", refused.code.name, fld, None if fld is None else refused.limit)


def command_count(do: str) -> int:
    """How many command ids a programmer step uses."""
    if do in ("interrogate",):
        return 0
    return 2 if do == "refill" else 1


# -- api ------------------------------------------------------------------------------------


class ApiBackend:
    """emulator.Pump called directly."""

    name = "api"
    no_truth: str | None = None

    def __init__(self, pump: Pump) -> None:
        self.pump = pump

    def advance_to(self, internal_ms: int) -> str | None:
        self.pump.advance_to(internal_ms)
        return None

    def inject(self, name: str, params: dict[str, Any]) -> str | None:
        self.pump.inject(build_fault(name, params))
        return None

    def link_fault(self, spec: FaultSpec, start_ms: int, end_ms: int, seed: int) -> str | None:
        return "the api backend has no link: link faults run on the wire backend"

    def close(self) -> None:
        return None

    def request(self, do: str, params: dict[str, Any], ids: tuple[int, ...]) -> StepResult:
        pump = self.pump
        if params.get("role") == "patient" and do != "patient-bolus":
            return StepResult(
                skipped="the api backend has no sessions or roles (C4): run it on wire"
            )
        pump.telemetry_session()  # the session a programmer would open (same as wire)
        cid = ids[0] if ids else None
        result: Any
        if do == "interrogate":
            return StepResult("answered")
        if do == "program":
            staged = pump.stage(params["prescription"], overrides=params.get("overrides", 0))
            if isinstance(staged, Refused):
                return _refused(staged)
            assert isinstance(staged, Staged)
            result = pump.commit(staged.digest, command_id=cid)
        elif do == "clinician-bolus":
            result = pump.clinician_bolus(params["dose_nl"], params["duration_s"], command_id=cid)
        elif do == "patient-bolus":
            result = pump.patient_bolus(command_id=cid)
        elif do == "cancel-bolus":
            result = pump.cancel_bolus(command_id=cid)
        elif do == "prime":
            result = pump.prime_volume(params["volume_nl"], command_id=cid)
        elif do == "start":
            result = pump.start(command_id=cid)
        elif do == "stop":
            result = pump.stop(command_id=cid)
        elif do == "acknowledge":
            result = pump.acknowledge_alarm(AlarmKind[params["alarm"]], command_id=cid)
        elif do == "alarm-test":
            result = pump.alarm_test(command_id=cid)
        elif do == "set-clock":
            result = pump.set_clock(params["time_ms"], command_id=cid)
        elif do == "clear-memory-error":
            result = pump.clear_memory_error(command_id=cid)
        elif do == "reset-flow-valve":
            result = pump.reset_flow_valve(command_id=cid)
        elif do == "refill":
            before = pump.plant_truth().withdrawn_nl
            begun = pump.refill_begin(command_id=ids[0])
            if isinstance(begun, Refused):
                return _refused(begun)
            assert isinstance(begun, RefillBegun)
            drawn = pump.plant_truth().withdrawn_nl - before
            reported = params["withdrawn_nl"] if params["withdrawn_nl"] is not None else drawn
            done = pump.refill_complete(
                params["volume_nl"],
                withdrawn_nl=reported,
                injected_nl=params["injected_nl"],
                pocket_nl=params["pocket_nl"],
                new_concentration_ug_per_ml=params["concentration_ug_per_ml"],
                command_id=ids[1],
            )
            if isinstance(done, Refused):
                return _refused(done)
            return StepResult(
                "applied",
                command_ids=ids,
                predicted_residual_nl=begun.predicted_residual_nl,
                withdrawn_reported_nl=reported,
            )
        else:  # pragma: no cover - the loader admits only known steps
            raise ValueError(f"not a programmer step: {do}")
        if isinstance(result, Refused):
            return _refused(result)
        return StepResult("applied", command_ids=ids)


_IMPORTED_WHEN_MADE = {
    "wire": ("hil.scenario.wire_backend",),
    "url": ("hil.scenario.url_backend",),
    "serve": ("hil.scenario.serve_backend",),
}


def backend_modules(name: str) -> tuple[str, ...]:
    """The modules ``make_backend`` imports only when it makes backend ``name``: what a
    parent that forks run workers (hil/local_pool.py) loads first, so each worker inherits
    them rather than importing them itself."""
    return _IMPORTED_WHEN_MADE.get(name, ())


def make_backend(
    name: str,
    setup: Setup,
    seed: int,
    *,
    pump_class: PumpFactory = RefillHands,
    ledger: CommandLedger | None = None,
    target: PumpAtUrl | None = None,
) -> Backend:
    """A backend by name, with the setup's pump built (``pump_class`` and ``ledger``: test
    doubles for broken-pump tests; ``target``: the pump the url backend drives)."""
    if name == "url":
        if target is None:
            raise ValueError("the url backend needs a target (hil/pump_at_url.py)")
        from hil.scenario.url_backend import UrlBackend  # noqa: PLC0415 (imports this module)

        return UrlBackend(target, setup)
    if name == "serve":
        # Imported here: it imports this module, and only the serve backend starts a process.
        from hil.scenario.serve_backend import ServeBackend  # noqa: PLC0415

        return ServeBackend(setup, seed)
    pump = build_pump(setup, pump_class)
    if name == "api":
        return ApiBackend(pump)
    if name == "wire":
        from hil.scenario.wire_backend import WireBackend  # noqa: PLC0415 (see the imports)

        return WireBackend(pump, seed, ledger)
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
