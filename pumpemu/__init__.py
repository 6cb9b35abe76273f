"""pumpemu: an emulator and test harness for implanted programmable drug pumps.

The stable Python API (docs/api.md). Import from here, not from the layers: the names
below keep their meaning across releases, while the modules they live in (protocol/,
emulator/, hil/) may be reorganised. The layers stay where they are; this package only
re-exports them.

- The pump in-process: ``Pump`` and its results, profiles, faults, ``PlantTruth``.
- The pump behind the wire: ``PumpDevice`` (sans-IO), ``PumpServer`` (serves a device on a
  link, as ``pumpemu serve`` does), ``CpuLatencyRequest`` (idle CPUs kept from halting
  while a rig times round trips, as ``pumpemu serve --low-latency`` does).
- The reference programmer: ``Programmer`` (blocking, on a link), ``ProgrammerCore``
  (sans-IO), ``Result``, ``Outcome``, ``RetryPolicy``, and ``TwoPeer`` (a device and a
  programmer core on one manual clock, no threads).
- The trial: ``Trial``, ``TrialRecord``, ``TrialKind``, ``TrialOutcome``, ``TrialError``,
  ``Conversion``, ``implant_daily_dose``, ``implant_prescription``; accuracy:
  ``run_trumpet``, ``TrumpetRun``, ``TrumpetPoint``.
- Prescriptions: ``Prescription``, ``FlexStep``, ``PatientBolusLimits``, ``InfusionMode``,
  ``Repeat``.
- Keys: ``PumpKeys``, ``generate_keys``, ``load_keys``, ``write_key_file``.
- Links: ``open_link`` (a pyserial URL or device path), ``PtyLink``, ``memory_pair``.
- Clocks: ``ManualClock``, ``ScaledClock``, ``SystemClock``.
- The control API client: ``ControlClient``.
- Captures: ``CaptureWriter``, ``read_capture``.
- Every wire message, as ``messages`` (``pumpemu.messages.ReadStatus()``; docs/protocol.md).
- Errors: ``ProtocolError``, ``EmulatorError``, ``HilError`` (every error pumpemu raises for
  bad input is one of these families: docs/architecture.md principle 8).
"""

from __future__ import annotations

from emulator.accuracy import TrumpetPoint, TrumpetRun, run_trumpet
from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.errors import EmulatorError
from emulator.faults import (
    BatteryDrain,
    CatheterDisconnect,
    CatheterLeak,
    CatheterOcclusion,
    CatheterRepair,
    Fault,
    MagnetExposure,
    MechanicalBias,
    MemoryCorruption,
    MotorRepair,
    MotorStall,
    PocketFill,
    Reset,
)
from emulator.plant import PlantTruth
from emulator.profile import Profile, builtin_profile_names, load_profile
from emulator.pump import (
    Accepted,
    BolusStarted,
    Pump,
    RefillBegun,
    RefillCompleted,
    Refused,
    SnapshotError,
    Staged,
)
from emulator.trial import (
    Conversion,
    Trial,
    TrialError,
    TrialKind,
    TrialOutcome,
    TrialRecord,
    implant_daily_dose,
    implant_prescription,
)
from hil.capture import CaptureWriter, read_capture
from hil.clock import ScaledClock, SystemClock
from hil.control import ControlClient
from hil.cpu_latency import CpuLatencyError, CpuLatencyRequest
from hil.errors import HilError
from hil.key_files import load_keys, write_key_file
from hil.links import PtyLink, memory_pair, open_link
from hil.programmer.client import Programmer
from hil.programmer.core import Outcome, ProgrammerCore, Result, RetryPolicy
from hil.serve import PumpServer
from hil.two_peer import TwoPeer
from protocol import messages
from protocol.device_state import AlarmKind, EventKind, Role, TherapyState
from protocol.errors import ProtocolError
from protocol.keys import PumpKeys, generate_keys
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import FieldId, RefusalCode

__all__ = [
    "Accepted",
    "AlarmKind",
    "BatteryDrain",
    "BolusStarted",
    "CaptureWriter",
    "CatheterDisconnect",
    "CatheterLeak",
    "CatheterOcclusion",
    "CatheterRepair",
    "ControlClient",
    "Conversion",
    "CpuLatencyError",
    "CpuLatencyRequest",
    "EmulatorError",
    "EventKind",
    "Fault",
    "FieldId",
    "FlexStep",
    "HilError",
    "InfusionMode",
    "MagnetExposure",
    "ManualClock",
    "MechanicalBias",
    "MemoryCorruption",
    "MotorRepair",
    "MotorStall",
    "Outcome",
    "PatientBolusLimits",
    "PlantTruth",
    "PocketFill",
    "Prescription",
    "Profile",
    "Programmer",
    "ProgrammerCore",
    "ProtocolError",
    "PtyLink",
    "Pump",
    "PumpDevice",
    "PumpKeys",
    "PumpServer",
    "RefillBegun",
    "RefillCompleted",
    "RefusalCode",
    "Refused",
    "Repeat",
    "Reset",
    "Result",
    "RetryPolicy",
    "Role",
    "ScaledClock",
    "SnapshotError",
    "Staged",
    "SystemClock",
    "TherapyState",
    "Trial",
    "TrialError",
    "TrialKind",
    "TrialOutcome",
    "TrialRecord",
    "TrumpetPoint",
    "TrumpetRun",
    "TwoPeer",
    "builtin_profile_names",
    "generate_keys",
    "implant_daily_dose",
    "implant_prescription",
    "load_keys",
    "load_profile",
    "memory_pair",
    "messages",
    "open_link",
    "read_capture",
    "run_trumpet",
    "write_key_file",
]
