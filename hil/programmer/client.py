"""The reference programmer as a blocking client over a real link.

``Programmer`` runs a ``ProgrammerCore`` (sans-IO) against a ``Link``: a pyserial URL, a pty
or an in-memory pair. Each call sends one request and returns its ``Result``: ANSWERED,
APPLIED, REFUSED, NOT_APPLIED or UNCERTAIN, never a guess. The retry policy bounds how long
any call can take:
``reply_timeout_ms x attempts x (reopen_attempts + 1)`` plus the handshakes.

Command ids come from a random 32-bit starting point and count up. A programmer started
again never reuses the ids of an earlier run by accident, and a collision is refused by the
pump (COMMAND_ID_CONFLICT), not applied.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import TracebackType

from emulator.clock import Clock
from hil.clock import SystemClock
from hil.links import Link
from hil.programmer.core import Entropy, ProgrammerCore, Result, RetryPolicy
from protocol.device_state import AlarmKind, Role
from protocol.messages import (
    AcknowledgeAlarm,
    AlarmTest,
    CancelBolus,
    ClearMemoryError,
    ClinicianBolus,
    CommitPrescription,
    Message,
    PatientBolusRequest,
    PrimingBolus,
    ReadAlarms,
    ReadCatheter,
    ReadClock,
    ReadDeviceInfo,
    ReadEventLog,
    ReadPatientView,
    ReadPrescription,
    ReadStatus,
    ReadStatusDetail,
    RefillBegin,
    RefillComplete,
    ResetFlowValve,
    SetCatheter,
    SetClock,
    StagePrescription,
    StartTherapy,
    StopTherapy,
)
from protocol.prescription import Prescription
from protocol.units import U32_MAX

POLL_S = 0.05
"""The longest one link read blocks, so timers fire on time whatever the link does."""

TrafficHook = Callable[[str, bytes], None]
"""Called with ("tx" | "rx", bytes) for every chunk written or read: captures, demos."""


class Programmer:
    """A clinician or patient programmer connected to one pump over ``link``."""

    def __init__(
        self,
        link: Link,
        serial: str,
        role: Role,
        role_key: bytes,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        entropy: Entropy = secrets.token_bytes,
        on_traffic: TrafficHook | None = None,
    ) -> None:
        self._link = link
        self._clock = clock or SystemClock()
        self._core = ProgrammerCore(serial, role, role_key, entropy, policy)
        self._next_id = int.from_bytes(entropy(4), "little") % U32_MAX + 1
        self._on_traffic = on_traffic

    def __enter__(self) -> Programmer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def core(self) -> ProgrammerCore:
        return self._core

    def command_id(self) -> int:
        """A fresh command id (1..2^32-1) for a therapy-changing request."""
        value = self._next_id
        self._next_id = value % U32_MAX + 1
        return value

    # -- the one blocking primitive --

    def request(self, message: Message) -> Result:
        """Send one request and wait until it is resolved (bounded by the retry policy)."""
        self._core.submit(message, self._clock.now_ms())
        while True:
            self._flush()
            finished = self._core.results()
            if finished:
                return finished[-1]
            self._wait_once()

    def close(self) -> None:
        """Close the session politely; returns once the pump answered or gave up waiting."""
        if not self._core.is_open:
            return
        self._core.close(self._clock.now_ms())
        self._flush()
        while not self._core.idle:
            self._wait_once()
            self._flush()
        self._core.results()

    def _flush(self) -> None:
        out = self._core.data_to_send()
        if out:
            self._link.write(out)
            if self._on_traffic is not None:
                self._on_traffic("tx", out)

    def _wait_once(self) -> None:
        now = self._clock.now_ms()
        deadline = self._core.get_timer()
        wait_s = POLL_S if deadline is None else min(POLL_S, max(deadline - now, 0) / 1000)
        data = self._link.read(wait_s)
        now = self._clock.now_ms()
        if data:
            if self._on_traffic is not None:
                self._on_traffic("rx", data)
            self._core.receive_data(data, now)
        deadline = self._core.get_timer()
        if deadline is not None and now >= deadline:
            self._core.handle_timer(now)

    # -- reads --

    def info(self) -> Result:
        return self.request(ReadDeviceInfo())

    def status(self) -> Result:
        return self.request(ReadStatus())

    def prescription(self) -> Result:
        return self.request(ReadPrescription())

    def event_log(self, from_seq: int = 0, count: int = 32) -> Result:
        return self.request(ReadEventLog(from_seq=from_seq, count=count))

    def alarms(self) -> Result:
        return self.request(ReadAlarms())

    def pump_clock(self) -> Result:
        return self.request(ReadClock())

    # -- programming and therapy --

    def stage(self, prescription: Prescription) -> Result:
        return self.request(StagePrescription(prescription=prescription))

    def commit(self, digest: bytes) -> Result:
        return self.request(CommitPrescription(command_id=self.command_id(), digest=digest))

    def set_clock(self, pump_time_ms: int) -> Result:
        return self.request(SetClock(command_id=self.command_id(), pump_time_ms=pump_time_ms))

    def start(self) -> Result:
        return self.request(StartTherapy(command_id=self.command_id()))

    def stop(self) -> Result:
        return self.request(StopTherapy(command_id=self.command_id()))

    def clinician_bolus(self, dose_nl: int, duration_s: int) -> Result:
        return self.request(
            ClinicianBolus(command_id=self.command_id(), dose_nl=dose_nl, duration_s=duration_s)
        )

    def cancel_bolus(self) -> Result:
        return self.request(CancelBolus(command_id=self.command_id()))

    def patient_bolus(self) -> Result:
        return self.request(PatientBolusRequest(command_id=self.command_id()))

    def prime(self, catheter_volume_nl: int) -> Result:
        return self.request(
            PrimingBolus(command_id=self.command_id(), catheter_volume_nl=catheter_volume_nl)
        )

    def refill_begin(self) -> Result:
        return self.request(RefillBegin(command_id=self.command_id()))

    def refill_complete(
        self, withdrawn_nl: int, new_volume_nl: int, new_concentration_ug_per_ml: int
    ) -> Result:
        return self.request(
            RefillComplete(
                command_id=self.command_id(),
                withdrawn_nl=withdrawn_nl,
                new_volume_nl=new_volume_nl,
                new_concentration_ug_per_ml=new_concentration_ug_per_ml,
            )
        )

    def acknowledge_alarm(self, alarm: AlarmKind) -> Result:
        return self.request(AcknowledgeAlarm(command_id=self.command_id(), alarm=alarm))

    def alarm_test(self) -> Result:
        return self.request(AlarmTest(command_id=self.command_id()))

    # -- issue 12: detailed reads and service procedures (docs/protocol.md section 7) --

    def status_detail(self) -> Result:
        """STATUS_DETAIL: forecasts (ERI, end of service, low and empty) and totals."""
        return self.request(ReadStatusDetail())

    def catheter(self) -> Result:
        """CATHETER_INFO: the catheter as the pump was told it."""
        return self.request(ReadCatheter())

    def patient_view(self) -> Result:
        """PATIENT_VIEW: the next patient bolus and the boluses left (a patient may ask)."""
        return self.request(ReadPatientView())

    def clear_memory_error(self) -> Result:
        """CLEAR_MEMORY_ERROR (H8): the pump stays stopped; check, then START."""
        return self.request(ClearMemoryError(command_id=self.command_id()))

    def reset_flow_valve(self) -> Result:
        """RESET_FLOW_VALVE (H15): reopen a valve-gated pump's flow-activated valve."""
        return self.request(ResetFlowValve(command_id=self.command_id()))

    def set_catheter(self, length_cm: int, *, primed: bool) -> Result:
        """SET_CATHETER: the catheter after an implant or a revision (H3)."""
        return self.request(
            SetCatheter(command_id=self.command_id(), length_cm=length_cm, primed=primed)
        )
