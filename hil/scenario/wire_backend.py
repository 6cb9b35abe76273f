"""The ``wire`` scenario backend (docs/scenarios.md, "Backends").

The reference programmer (``ProgrammerCore``) and ``PumpDevice`` joined by
``hil.two_peer.TwoPeer`` on a manual clock, so every programmer step opens an
authenticated session, is sealed, carries a command id through the device's ledger, and
closes the session, as a clinic visit does. ``ProgrammerSteps`` (a programmer step as
requests) is shared with the url backend.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Protocol

from emulator.clock import ManualClock
from emulator.command_ledger import CommandLedger
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.fault_builders import build_fault
from hil.programmer.core import Outcome, ProgrammerCore, Result
from hil.proxy.engine import ProxyEngine
from hil.proxy.faults import Direction, FaultSpec
from hil.scenario.backends import NO_OPCODE, SERIAL, PumpView, RefillHands, StepResult
from hil.two_peer import TO_PUMP, Delivery, StalledError, TwoPeer
from protocol.device_state import AlarmKind, Role
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    AcknowledgeAlarm,
    AlarmTest,
    CancelBolus,
    ClearMemoryError,
    ClinicianBolus,
    CommitPrescription,
    Message,
    Nak,
    PatientBolusRequest,
    PrescriptionStaged,
    PrimingBolus,
    ReadAlarms,
    ReadClock,
    ReadDeviceInfo,
    ReadEventLog,
    ReadPrescription,
    ReadStatus,
    RefillBegin,
    RefillComplete,
    ResetFlowValve,
    SetClock,
    StagedWithOverride,
    StagePrescription,
    StagePrescriptionOverride,
    StartTherapy,
    StopTherapy,
)
from protocol.prescription import Prescription
from protocol.refusal import FieldId

__all__ = ["Peer", "ProgrammerSteps", "WindowedLink", "WireBackend"]


@dataclass(slots=True)
class WindowedLink:
    """A link with no latency (so steps land on the same ms as on the api backend) that
    passes the frames written inside a link fault's window through the proxy's own
    engine (hil/proxy/engine.py): the proxy's fault kinds, triggers and parameters."""

    windows: list[tuple[int, int, ProxyEngine]] = dataclasses.field(default_factory=list)

    def carry(self, direction: str, data: bytes, now_ms: int) -> list[Delivery]:
        for start, end, engine in self.windows:
            if start <= now_ms < end:
                way = Direction.A2B if direction == TO_PUMP else Direction.B2A
                outputs = engine.receive(way, data, now_ms)
                if engine.next_timer_ms() is not None:
                    outputs += engine.flush(now_ms)
                return [Delivery(max(o.due_ms - now_ms, 0), o.data) for o in outputs]
        return [Delivery(0, data)]


class Peer(Protocol):
    """A reference programmer that sends one request and resolves it: ``TwoPeer`` (in
    memory) or the blocking ``Programmer`` (a real link)."""

    def request(self, message: Message) -> Result: ...

    def close(self) -> None: ...


class ProgrammerSteps:
    """Programmer steps as the reference programmer does them, over any ``Peer``: one
    session per step, closed after it (a clinic visit). The clinician's programmer does
    every step but those with ``role = "patient"`` (the patient's own programmer and key)."""

    pump: PumpView
    clinician: Peer
    patient: Peer
    no_truth: str | None = None

    def request(self, do: str, params: dict[str, Any], ids: tuple[int, ...]) -> StepResult:
        peer = self.patient if params.get("role") == "patient" else self.clinician
        try:
            return self._request(peer, do, params, ids)
        except StalledError as exc:
            # The retry policy bounds every request far below this; reported, not raised.
            return StepResult("uncertain", command_ids=ids, detail=str(exc))
        finally:
            peer.close()

    def _ask(self, peer: Peer, message: Message) -> Result:
        return peer.request(message)

    def _hands(self, injected_nl: int | None, pocket_nl: int) -> str | None:
        """A skip reason if this backend cannot put a refill's drug where the needle put
        it (the plant's side of a refill), else None."""
        return None

    def _request(
        self, peer: Peer, do: str, params: dict[str, Any], ids: tuple[int, ...]
    ) -> StepResult:
        cid = ids[0] if ids else 0
        message: Message
        if do in NO_OPCODE:
            return StepResult(skipped=NO_OPCODE[do])
        if do == "interrogate":
            reads: dict[str, Message] = {
                "status": ReadStatus(),
                "log": ReadEventLog(from_seq=0, count=32),
                "alarms": ReadAlarms(),
                "prescription": ReadPrescription(),
                "clock": ReadClock(),
                "info": ReadDeviceInfo(),
            }
            return _from_result(self._ask(peer, reads[params["read"]]), ids)
        if do == "program":
            rx: Prescription = params["prescription"]
            flags = params.get("overrides", 0)
            stage: Message = (
                StagePrescriptionOverride(overrides=flags, prescription=rx)
                if flags
                else StagePrescription(prescription=rx)
            )
            staged = self._ask(peer, stage)
            if not isinstance(staged.reply, PrescriptionStaged | StagedWithOverride):
                return _from_result(staged, ids)
            message = CommitPrescription(command_id=cid, digest=staged.reply.digest)
        elif do == "clinician-bolus":
            message = ClinicianBolus(
                command_id=cid, dose_nl=params["dose_nl"], duration_s=params["duration_s"]
            )
        elif do == "patient-bolus":
            message = PatientBolusRequest(command_id=cid)
        elif do == "cancel-bolus":
            message = CancelBolus(command_id=cid)
        elif do == "prime":
            message = PrimingBolus(command_id=cid, catheter_volume_nl=params["volume_nl"])
        elif do == "start":
            message = StartTherapy(command_id=cid)
        elif do == "stop":
            message = StopTherapy(command_id=cid)
        elif do == "acknowledge":
            message = AcknowledgeAlarm(command_id=cid, alarm=AlarmKind[params["alarm"]])
        elif do == "alarm-test":
            message = AlarmTest(command_id=cid)
        elif do == "set-clock":
            message = SetClock(command_id=cid, pump_time_ms=params["time_ms"])
        elif do == "clear-memory-error":
            message = ClearMemoryError(command_id=cid)
        elif do == "reset-flow-valve":
            message = ResetFlowValve(command_id=cid)
        elif do == "refill":
            return self._refill(peer, params, ids)
        else:  # pragma: no cover - the loader admits only known steps
            raise ValueError(f"not a programmer step: {do}")
        return _from_result(self._ask(peer, message), ids)

    def _refill(self, peer: Peer, params: dict[str, Any], ids: tuple[int, ...]) -> StepResult:
        skip = self._hands(params["injected_nl"], params["pocket_nl"])
        if skip is not None:  # checked before REFILL_BEGIN: never leave a refill half done
            return StepResult(skipped=skip)
        entered = params["withdrawn_nl"]
        # The syringe's reading is plant truth: read only when the file does not enter one.
        before = self.pump.plant_truth().withdrawn_nl if entered is None else 0
        begun = self._ask(peer, RefillBegin(command_id=ids[0]))
        if begun.outcome is not Outcome.APPLIED or not isinstance(begun.reply, Ack):
            return _from_result(begun, ids)
        predicted = begun.reply.value
        reported = entered if entered is not None else self.pump.plant_truth().withdrawn_nl - before
        concentration = params["concentration_ug_per_ml"]
        if concentration is None:
            rx = self.pump.status().prescription
            concentration = rx.concentration_ug_per_ml if rx is not None else 1
        if isinstance(self.pump, RefillHands):
            self.pump.hands = (params["injected_nl"], params["pocket_nl"])
        done = self._ask(
            peer,
            RefillComplete(
                command_id=ids[1],
                withdrawn_nl=reported,
                new_volume_nl=params["volume_nl"],
                new_concentration_ug_per_ml=concentration,
            ),
        )
        if isinstance(self.pump, RefillHands):
            self.pump.hands = None
        out = _from_result(done, ids)
        if out.outcome != "applied":
            return out
        return StepResult(
            "applied",
            command_ids=ids,
            predicted_residual_nl=predicted,
            withdrawn_reported_nl=reported,
            resolved_by_status=done.resolved_by_status,
        )


class WireBackend(ProgrammerSteps):
    """The reference programmer and PumpDevice over an in-memory link, one thread, a manual
    clock (``TwoPeer``)."""

    name = "wire"

    def __init__(self, pump: Pump, seed: int, ledger: CommandLedger | None = None) -> None:
        rng = random.Random(seed)  # noqa: S311 (a seeded simulation: one seed, one run)
        keys = generate_keys(SERIAL, rng.randbytes(64))
        self.pump = self.real = pump
        entropy = random.Random(seed + 1).randbytes  # noqa: S311 (seeded: one seed, one run)
        self.device = PumpDevice(pump, keys, entropy, ledger=ledger)
        self.clock = ManualClock(pump.now_ms)
        self.link = WindowedLink()
        clinician = ProgrammerCore(SERIAL, Role.CLINICIAN, keys.clinician, rng.randbytes)
        patient = ProgrammerCore(SERIAL, Role.PATIENT, keys.patient, rng.randbytes)
        self.joint = TwoPeer(self.device, clinician, self.clock, self.link)
        self.clinician = self.joint
        self.patient = TwoPeer(self.device, patient, self.clock, self.link)

    def advance_to(self, internal_ms: int) -> str | None:
        self.joint.run_until(internal_ms)
        return None

    def inject(self, name: str, params: dict[str, Any]) -> str | None:
        self.real.inject(build_fault(name, params))
        return None

    def link_fault(self, spec: FaultSpec, start_ms: int, end_ms: int, seed: int) -> str | None:
        self.link.windows.append(
            (start_ms, end_ms, ProxyEngine([spec], seed=seed, start_ms=start_ms))
        )
        return None

    def close(self) -> None:
        return None


def _from_result(result: Result, ids: tuple[int, ...]) -> StepResult:
    reply = result.reply
    if isinstance(reply, Nak) and result.outcome is Outcome.REFUSED:
        fld = None if reply.field is FieldId.NONE else reply.field.name
        return StepResult(
            "refused",
            reply.code.name,
            fld,
            None if fld is None else reply.limit,
            ids,
            resolved_by_status=result.resolved_by_status,
        )
    return StepResult(
        result.outcome.value, command_ids=ids, resolved_by_status=result.resolved_by_status
    )
