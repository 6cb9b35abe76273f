"""Issue 11: every row of docs/protocol.md section 12, provoked over the wire.

The refusal table is parsed out of the document (tests/protocol_doc.py). For every code there
is at least one scenario that sends bytes into ``PumpDevice.receive_data`` (sealed requests
in a real session, built with ``protocol.session.ProgrammerSession`` through
tests/raw_programmer.py) and checks the NAK it gets back:

- its ``code``, ``field`` and ``limit`` exactly, the limit computed from the
  ``peristaltic-20`` profile so a profile change cannot silently change its meaning;
- that the field is one the row's "field / limit" cell names, and that every field a cell
  names has a scenario (a row listing several fields is covered alternative by alternative);
- that the scenario's limit is the one the cell describes (its ``means`` text is in the cell);
- whether the NAK is sealed, by the rule of section 4.

The set of codes with a scenario must equal the set of codes in the table and RefusalCode,
so a new row (or a new code) without a scenario fails.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from emulator.device import RX_IDLE_MS, PumpDevice
from emulator.faults import BatteryDrain, MemoryCorruption, MotorStall
from emulator.firmware.results import Refused
from emulator.profile import Profile, load_profile
from emulator.pump import Pump
from protocol import codec, wire
from protocol.checksum import crc16
from protocol.codec import Frame
from protocol.device_state import AlarmKind, Role
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    AcknowledgeAlarm,
    AlarmTest,
    Authenticate,
    CancelBolus,
    Challenge,
    ClearMemoryError,
    ClinicianBolus,
    CloseSession,
    CommitPrescription,
    KeepAlive,
    Message,
    Nak,
    Opcode,
    PatientBolusRequest,
    PrescriptionStaged,
    PrimingBolus,
    ReadCatheter,
    ReadDeviceInfo,
    ReadStatus,
    ReadStatusDetail,
    RefillBegin,
    RefillComplete,
    ResetFlowValve,
    SessionOpened,
    SetCatheter,
    StagePrescription,
    StartTherapy,
    StopTherapy,
)
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode
from protocol.session import SessionState
from protocol.units import MS_PER_S, S_PER_DAY
from tests.protocol_doc import section, table
from tests.raw_programmer import RawProgrammer

P: Profile = load_profile("peristaltic-20")
SERIAL = "PE-000123"
KEYS = generate_keys(SERIAL, bytes(range(1, 65)))
C = RefusalCode
F = FieldId

FRAME_LEVEL = frozenset({C.FRAME_CORRUPT, C.UNSUPPORTED_VERSION, C.UNKNOWN_OPCODE})
"""Refused from the header alone, before the session layer reads the frame (section 4)."""


# -- the table, from the document ------------------------------------------------------------


@cache
def refusal_table() -> dict[RefusalCode, str]:
    """code -> its "field / limit" cell, from docs/protocol.md section 12."""
    rows = table(section(12))
    out: dict[RefusalCode, str] = {}
    for row in rows:
        code = RefusalCode[row["name"].strip("`")]
        assert int(row["code"], 16) == code.value, row
        assert code not in out, f"{code.name} is listed twice"
        out[code] = row["field / limit"]
    return out


def fields_named(cell: str) -> set[FieldId]:
    return {f for f in FieldId if re.search(rf"\b{f.name}\b", cell)}


def sealed_by_section_4(code: RefusalCode, request_sealed: bool, in_session: bool) -> bool:
    """docs/protocol.md section 4: a NAK is sealed exactly when it answers a sealed frame
    that reached an open session; frame-level refusals and everything else are unsealed."""
    return request_sealed and in_session and code not in FRAME_LEVEL


# -- prescriptions ---------------------------------------------------------------------------

PB = PatientBolusLimits(dose_nl=20_000, duration_s=600, lockout_s=600, max_per_24h=4)
RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=1_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=PB,
    low_reservoir_threshold_nl=2_000_000,
)
RATE = RX.steps[0].rate_nl_per_day
MORPHINE_MAX_PG = P.max_daily_mass_for("morphine")


def rx(**changes: Any) -> Prescription:
    return dataclasses.replace(RX, **changes)


def flex(*steps: tuple[int, int], repeat: Repeat = Repeat.DAILY) -> Prescription:
    return rx(mode=InfusionMode.FLEX, repeat=repeat, steps=tuple(FlexStep(*s) for s in steps))


def rx_payload(
    *,
    name: bytes = b"morphine",
    concentration: int = 1_000,
    mode: int = InfusionMode.CONTINUOUS,
    repeat: int = Repeat.DAILY,
    steps: tuple[tuple[int, int], ...] = ((0, RATE),),
    pb: tuple[int, int, int, int] | None = (20_000, 600, 600, 4),
    low: int = 2_000_000,
) -> bytes:
    """A STAGE_PRESCRIPTION payload written from the layout of docs/protocol.md section 6,
    byte by byte, so it can carry values no Prescription would accept."""
    out = bytes([len(name)]) + name + struct.pack("<IBB", concentration, mode, repeat)
    out += bytes([len(steps)]) + b"".join(struct.pack("<II", s, r) for s, r in steps)
    out += b"\x00" if pb is None else b"\x01" + struct.pack("<IIIB", *pb)
    return out + struct.pack("<I", low)


# -- the bench: one pump, bytes in and out ---------------------------------------------------


@dataclass
class Sent:
    """What one provoking frame got back."""

    frame: Frame
    message: Message
    request_sealed: bool
    limit: int | None = None
    """The limit expected, where it is the pump's state when it answered (the reservoir
    estimate) rather than a number of the profile."""


@dataclass
class Bench:
    pump: Pump
    device: PumpDevice = field(init=False)
    now: int = 0
    raw: RawProgrammer | None = None
    """The programmer whose session is open, if any."""
    next_id: int = 1000
    openings: int = 0
    persist: Callable[[bytes], None] | None = None

    def __post_init__(self) -> None:
        self.device = PumpDevice(self.pump, KEYS, _entropy(), persist=self.persist)

    # time

    def wait(self, ms: int, *, keep_alive: bool = False) -> None:
        """Let ``ms`` pass. ``keep_alive``: keep the open session alive meanwhile (a
        KEEP_ALIVE at least every half idle timeout), so a stage survives; otherwise the
        session may end, and a new one is opened for the same role at the end."""
        target = self.now + ms
        step = P.session_idle_timeout_s * MS_PER_S // 2
        while self.now < target:
            self.now = min(target, self.now + step)
            self.device.handle_timer(self.now)
            if keep_alive and self.raw is not None and self.now + MS_PER_S < target:
                assert isinstance(self.request(KeepAlive()), Ack)
        if self.raw is not None and self.device.session.state is not SessionState.OPEN:
            self.open(self.raw.session.role)

    # bytes

    def deliver(self, data: bytes, reader: RawProgrammer | None = None) -> list[Sent]:
        """Bytes into the pump at ``now``; every reply, opened by ``reader``'s session."""
        self.now += 1
        self.device.receive_data(data, self.now)
        self.now += RX_IDLE_MS  # a partial frame is given up on, and answered, too
        self.device.handle_timer(self.now)
        reader = reader or self.raw or RawProgrammer(KEYS)
        replies = reader.receive(self.device.data_to_send())
        sealed = bool(data[3] & wire.FLAG_SEALED) if len(data) > 3 else False
        return [Sent(f, m, sealed) for f, m in replies]

    def one(self, data: bytes, reader: RawProgrammer | None = None) -> Sent:
        (sent,) = self.deliver(data, reader)
        return sent

    # sessions

    def open(self, role: Role = Role.CLINICIAN) -> RawProgrammer:
        raw = RawProgrammer(KEYS, role)
        self.openings += 1
        nonce = self.openings.to_bytes(16, "little")
        challenge = self.one(raw.open_session(nonce), raw).message
        assert isinstance(challenge, Challenge), challenge
        opened = self.one(raw.authenticate(challenge), raw).message
        assert isinstance(opened, SessionOpened), opened
        raw.confirm(opened)
        self.raw = raw
        return raw

    def sealed(self, message: Message) -> bytes:
        assert self.raw is not None
        return self.raw.sealed(message)[1]

    def sealed_raw(self, opcode: Opcode, plaintext: bytes) -> bytes:
        """A sealed request carrying any plaintext, as a programmer with the keys can send."""
        assert self.raw is not None
        session = self.raw.session
        seq = session.next_send_seq
        header = codec.header_bytes(wire.FLAG_SEALED, seq, 0, opcode, len(plaintext) + 16)
        body = session.seal(header, plaintext)
        return codec.build_frame(Frame(wire.FLAG_SEALED, seq, 0, opcode, body))

    def request(self, message: Message) -> Message:
        return self.one(self.sealed(message)).message

    def command_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def ok(self, message: Message) -> None:
        reply = self.request(message)
        assert not isinstance(reply, Nak), (message, reply)

    def stage(self, prescription: Prescription) -> bytes:
        staged = self.request(StagePrescription(prescription))
        assert isinstance(staged, PrescriptionStaged), staged
        return staged.digest

    def program(self, prescription: Prescription) -> None:
        digest = self.stage(prescription)
        self.ok(CommitPrescription(command_id=self.command_id(), digest=digest))


def _entropy() -> Callable[[int], bytes]:
    counter = iter(range(1, 1 << 30))
    return lambda n: next(counter).to_bytes(4, "little") * (n // 4) + bytes(n % 4)


def bench(
    prescription: Prescription | None = RX, *, reservoir_nl: int | None = None, session: bool = True
) -> Bench:
    """A peristaltic-20 pump, programmed with ``prescription`` at time 0 (running unless it
    is STOPPED), with a clinician session open."""
    pump = Pump(P, start_ms=0, reservoir_nl=reservoir_nl)
    if prescription is not None:
        assert not isinstance(pump.program(prescription, command_id=1), Refused)
    b = Bench(pump)
    if session:
        b.open()
    return b


def frame_of(opcode: int, payload: bytes, *, seq: int = 7, version: int = 1) -> bytes:
    head = struct.pack("<2sBBIIBH", wire.SYNC, version, 0, seq, 0, opcode, len(payload))
    data = head + payload
    return data + crc16(data[2:]).to_bytes(2, "little")


# -- scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    id: str
    code: RefusalCode
    field: FieldId
    limit: int
    means: str
    """Text of the row's "field / limit" cell that says what ``limit`` is."""
    in_session: bool
    """The provoking frame meets an open session (section 4's sealing rule)."""
    run: Callable[[], Sent]


SCENARIOS: list[Scenario] = []


def scenario(
    id: str,
    code: RefusalCode,
    field: FieldId = F.NONE,
    limit: int = 0,
    means: str = "0",
    *,
    in_session: bool = True,
) -> Callable[[Callable[[], Sent]], Callable[[], Sent]]:
    def register(run: Callable[[], Sent]) -> Callable[[], Sent]:
        SCENARIOS.append(Scenario(id, code, field, limit, means, in_session, run))
        return run

    return register


def stage_raw(payload: bytes) -> Sent:
    b = bench(None)
    return b.one(b.sealed_raw(Opcode.STAGE_PRESCRIPTION, payload))


def stage(prescription: Prescription, base: Prescription | None = None) -> Sent:
    b = bench(base)
    return b.one(b.sealed(StagePrescription(prescription)))


# 0x01-0x05: the frame and its payload


@scenario("bad-crc", C.FRAME_CORRUPT, in_session=False)
def _() -> Sent:
    data = bytearray(codec.encode(ReadStatus(), seq=9))
    data[-1] ^= 0xFF
    return bench(session=False).one(bytes(data))


@scenario("bad-crc-in-session", C.FRAME_CORRUPT)
def _() -> Sent:
    b = bench()
    data = bytearray(b.sealed(ReadStatus()))
    data[-2] ^= 0x01
    return b.one(bytes(data))


@scenario("request-with-ref", C.FRAME_CORRUPT)
def _() -> Sent:
    b = bench()
    data = bytearray(b.sealed(ReadStatus()))
    data[8] = 1  # a request's REF must be 0 (section 2)
    data[-2:] = crc16(bytes(data[2:-2])).to_bytes(2, "little")
    return b.one(bytes(data))


@scenario(
    "version-2",
    C.UNSUPPORTED_VERSION,
    limit=wire.VERSION,
    means="supported version",
    in_session=False,
)
def _() -> Sent:
    return bench(session=False).one(frame_of(Opcode.READ_STATUS, b"", version=2))


@scenario(
    "version-2-in-session", C.UNSUPPORTED_VERSION, limit=wire.VERSION, means="supported version"
)
def _() -> Sent:
    return bench().one(frame_of(Opcode.READ_STATUS, b"", version=2))


@scenario("unknown-opcode", C.UNKNOWN_OPCODE, in_session=False)
def _() -> Sent:
    return bench(session=False).one(frame_of(0x3A, b""))


@scenario("unknown-opcode-sealed", C.UNKNOWN_OPCODE)
def _() -> Sent:
    b = bench()
    data = bytearray(b.sealed(ReadStatus()))
    data[12] = 0x3A
    data[-2:] = crc16(bytes(data[2:-2])).to_bytes(2, "little")
    return b.one(bytes(data))


@scenario("open-session-unknown-role", C.MALFORMED_PAYLOAD, in_session=False)
def _() -> Sent:
    return bench(session=False).one(frame_of(Opcode.OPEN_SESSION, bytes(17)))


@scenario("sealed-payload-too-short", C.MALFORMED_PAYLOAD)
def _() -> Sent:
    b = bench()
    return b.one(b.sealed_raw(Opcode.READ_EVENT_LOG, bytes(4)))


@scenario("sealed-flag-not-0-or-1", C.MALFORMED_PAYLOAD)
def _() -> Sent:
    payload = bytearray(rx_payload(pb=None))
    payload[-5] = 2  # the patient-bolus presence flag
    return stage_raw(bytes(payload))


def invalid(
    id: str,
    field: FieldId,
    limit: int,
    payload: bytes | None = None,
    opcode: Opcode = Opcode.STAGE_PRESCRIPTION,
    base: Prescription | None = None,
) -> None:
    """An INVALID_FIELD refusal of a raw sealed payload."""

    @scenario(f"invalid-{id}", C.INVALID_FIELD, field, limit, "the bound it broke")
    def _() -> Sent:
        b = bench(base)
        return b.one(b.sealed_raw(opcode, payload if payload is not None else rx_payload()))


def invalid_rx(id: str, field: FieldId, limit: int, prescription: Prescription) -> None:
    """An INVALID_FIELD refusal of a prescription the wire allows but the profile does not."""

    @scenario(f"invalid-{id}", C.INVALID_FIELD, field, limit, "the bound it broke")
    def _() -> Sent:
        return stage(prescription)


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


# Decode-time bounds: the "allowed" column of sections 6 and 7.
invalid("concentration-0", F.CONCENTRATION, 1, rx_payload(concentration=0))
invalid("drug-name-empty", F.DRUG_NAME, 1, rx_payload(name=b""))
invalid("drug-name-17", F.DRUG_NAME, 16, rx_payload(name=b"m" * 17))
invalid("drug-name-control-char", F.DRUG_NAME, 0, rx_payload(name=b"mor\tphine"))
invalid("continuous-weekly", F.REPEAT, Repeat.DAILY, rx_payload(repeat=Repeat.WEEKLY))
invalid("continuous-two-steps", F.STEP_COUNT, 1, rx_payload(steps=((0, RATE), (60, RATE))))
invalid("flex-no-step", F.STEP_COUNT, 1, rx_payload(mode=InfusionMode.FLEX, steps=()))
invalid("stopped-with-step", F.STEP_COUNT, 0, rx_payload(mode=InfusionMode.STOPPED, pb=None))
invalid(
    "flex-49-steps",
    F.STEP_COUNT,
    48,
    rx_payload(mode=InfusionMode.FLEX, steps=tuple((i, RATE) for i in range(49))),
)
invalid(
    "step-start-past-week",
    F.STEP_START,
    7 * S_PER_DAY - 1,
    rx_payload(
        mode=InfusionMode.FLEX, repeat=Repeat.WEEKLY, steps=((0, RATE), (7 * S_PER_DAY, RATE))
    ),
)
invalid("patient-bolus-dose-0", F.PATIENT_BOLUS_DOSE, 1, rx_payload(pb=(0, 600, 600, 4)))
invalid("patient-bolus-duration-0", F.PATIENT_BOLUS_DURATION, 1, rx_payload(pb=(20_000, 0, 600, 4)))
invalid(
    "patient-bolus-count-0", F.PATIENT_BOLUS_MAX_PER_24H, 1, rx_payload(pb=(20_000, 600, 600, 0))
)
invalid("command-id-0", F.COMMAND_ID, 1, u32(0), Opcode.START_THERAPY)
invalid("clinician-bolus-dose-0", F.BOLUS_DOSE, 1, u32(1, 0, 600), Opcode.CLINICIAN_BOLUS)
invalid("clinician-bolus-duration-0", F.BOLUS_DURATION, 1, u32(1, 200, 0), Opcode.CLINICIAN_BOLUS)
invalid("catheter-volume-0", F.CATHETER_VOLUME, 1, u32(1, 0), Opcode.PRIMING_BOLUS)
invalid("new-concentration-0", F.NEW_CONCENTRATION, 1, u32(1, 0, 0, 0), Opcode.REFILL_COMPLETE)
invalid("log-count-0", F.LOG_COUNT, 1, u32(0) + b"\x00", Opcode.READ_EVENT_LOG)
invalid("log-count-33", F.LOG_COUNT, 32, u32(0) + b"\x21", Opcode.READ_EVENT_LOG)

# Profile bounds, checked by the pump after decoding (section 12.2).
LOW = P.low_reservoir_threshold
invalid_rx(
    "low-threshold-below",
    F.LOW_RESERVOIR_THRESHOLD,
    LOW.low,
    rx(low_reservoir_threshold_nl=LOW.low - 1),
)
invalid_rx(
    "low-threshold-above",
    F.LOW_RESERVOIR_THRESHOLD,
    LOW.high,
    rx(low_reservoir_threshold_nl=LOW.high + 1),
)
DOSE, DURATION = P.patient_bolus_dose, P.patient_bolus_duration_s
LOCKOUT, COUNT = P.patient_bolus_lockout_s, P.patient_bolus_max_per_24h
invalid_rx(
    "patient-bolus-dose-below",
    F.PATIENT_BOLUS_DOSE,
    DOSE.low,
    rx(patient_bolus=PatientBolusLimits(DOSE.low - 1, 600, 600, 4)),
)
invalid_rx(
    "patient-bolus-duration-below",
    F.PATIENT_BOLUS_DURATION,
    DURATION.low,
    rx(patient_bolus=PatientBolusLimits(20_000, DURATION.low - 1, 600, 4)),
)
invalid_rx(
    "patient-bolus-duration-above",
    F.PATIENT_BOLUS_DURATION,
    DURATION.high,
    rx(patient_bolus=PatientBolusLimits(20_000, DURATION.high + 1, 600, 4)),
)
invalid_rx(
    "patient-bolus-lockout-below",
    F.PATIENT_BOLUS_LOCKOUT,
    LOCKOUT.low,
    rx(patient_bolus=PatientBolusLimits(20_000, 600, LOCKOUT.low - 1, 4)),
)
invalid_rx(
    "patient-bolus-lockout-above",
    F.PATIENT_BOLUS_LOCKOUT,
    LOCKOUT.high,
    rx(patient_bolus=PatientBolusLimits(20_000, 600, LOCKOUT.high + 1, 4)),
)
invalid_rx(
    "patient-bolus-count-above",
    F.PATIENT_BOLUS_MAX_PER_24H,
    COUNT.high,
    rx(patient_bolus=PatientBolusLimits(20_000, 600, 600, COUNT.high + 1)),
)
invalid_rx(
    "patient-bolus-on-stopped", F.PATIENT_BOLUS_DOSE, 0, rx(mode=InfusionMode.STOPPED, steps=())
)
invalid(
    "clinician-bolus-below-a-stroke",
    F.BOLUS_DOSE,
    P.stroke_nl,
    u32(1, P.stroke_nl - 1, 600),
    Opcode.CLINICIAN_BOLUS,
    base=RX,
)
invalid(
    "clinician-bolus-longer-than-a-day",
    F.BOLUS_DURATION,
    S_PER_DAY,
    u32(1, 20_000, S_PER_DAY + 1),
    Opcode.CLINICIAN_BOLUS,
    base=RX,
)
MAX_PRIMING_NL = P.catheter_volume_nl(P.catheter_max_length_cm)
invalid(
    "priming-below-a-stroke",
    F.CATHETER_VOLUME,
    P.stroke_nl,
    u32(1, P.stroke_nl - 1),
    Opcode.PRIMING_BOLUS,
    base=RX,
)
invalid(
    "priming-above-the-catheter",
    F.CATHETER_VOLUME,
    MAX_PRIMING_NL,
    u32(1, MAX_PRIMING_NL + 1),
    Opcode.PRIMING_BOLUS,
    base=RX,
)


# 0x10-0x19: the session layer


@scenario("no-session-unsealed", C.NOT_AUTHENTICATED, in_session=False)
def _() -> Sent:
    return bench(session=False).one(codec.encode(ReadStatus(), seq=3))


@scenario("unsealed-in-session", C.NOT_AUTHENTICATED)
def _() -> Sent:
    return bench().one(codec.encode(ReadStatus(), seq=50))


@scenario("no-session-sealed", C.NOT_AUTHENTICATED, in_session=False)
def _() -> Sent:
    b = bench()
    data = b.sealed(ReadStatus())
    b.ok(CloseSession())
    return b.one(data)


def failed_opening(b: Bench, attempt: int = 0) -> Sent:
    """A whole opening whose proof is wrong. Each ``attempt`` uses its own nonce and proof:
    a copy of an earlier one would be a late copy, not a failure (docs/security.md 5.1)."""
    raw = RawProgrammer(KEYS)
    challenge = b.one(raw.open_session(bytes([0xF0, attempt]) * 8), raw).message
    assert isinstance(challenge, Challenge), challenge
    raw.session.answer_challenge(challenge.pump_nonce, challenge.serial)
    return b.one(codec.encode(Authenticate(proof=bytes([attempt]) * 32), seq=2), raw)


@scenario("wrong-proof", C.AUTHENTICATION_FAILED, in_session=False)
def _() -> Sent:
    return failed_opening(bench(session=False))


WAITED_MS = 1_500


@scenario(
    "locked-out",
    C.LOCKED_OUT,
    limit=-(-(P.session_lockout_s * MS_PER_S - WAITED_MS - 1) // MS_PER_S),
    means="whole seconds of lockout left",
    in_session=False,
)
def _() -> Sent:
    b = bench(session=False)
    for attempt in range(P.session_max_failed_openings):
        refused = failed_opening(b, attempt).message
        assert isinstance(refused, Nak), refused
        assert refused.code is C.AUTHENTICATION_FAILED, refused
    locked_at = b.now - RX_IDLE_MS  # the last proof arrived then; deliver() waits after it
    b.now = locked_at + WAITED_MS  # deliver() lands 1 ms later
    # During a lockout an OPEN_SESSION is still challenged (a verified proof ends it,
    # section 4.1); an AUTHENTICATE that answers no challenge is what is refused.
    return b.one(codec.encode(Authenticate(proof=bytes([0xEE]) * 32), seq=2))


@scenario("patient-reads-device-info", C.NOT_PERMITTED_FOR_ROLE, F.ROLE)
def _() -> Sent:
    b = bench(session=False)
    b.open(Role.PATIENT)
    return b.one(b.sealed(ReadDeviceInfo()))


@scenario("idle-timeout", C.SESSION_EXPIRED, in_session=False)
def _() -> Sent:
    b = bench()
    data = b.sealed(ReadStatus())
    b.now += P.session_idle_timeout_s * MS_PER_S
    return b.one(data)


@scenario("max-length", C.SESSION_EXPIRED, in_session=False)
def _() -> Sent:
    b = bench()
    opened_at = b.now - RX_IDLE_MS  # SESSION_OPENED was sent then
    b.wait(P.session_max_s * MS_PER_S - 10 * MS_PER_S, keep_alive=True)
    b.now = opened_at + P.session_max_s * MS_PER_S - 1  # deliver() lands at the maximum
    return b.one(b.sealed(ReadStatus()))


@scenario("replayed-frame", C.REPLAY_DETECTED, limit=3, means="last accepted SEQ")
def _() -> Sent:
    b = bench()
    data = b.sealed(ReadStatus())  # the session's first sealed frame: SEQ 3
    b.one(data)
    return b.one(data)


IDLE_MS, MAX_MS = P.session_idle_timeout_s * MS_PER_S, P.session_max_s * MS_PER_S
BUSY_AFTER_MS = 30_000


@scenario(
    "busy-idle-first",
    C.SESSION_BUSY,
    limit=-(-(IDLE_MS - BUSY_AFTER_MS) // MS_PER_S),
    means="whole seconds until that session expires",
    in_session=False,
)
def _() -> Sent:
    b = bench()
    b.ok(ReadStatus())
    last = b.now - RX_IDLE_MS  # the frame that restarted the idle timer
    b.now = last + BUSY_AFTER_MS - 1
    return b.one(RawProgrammer(KEYS).open_session(bytes(16)))


@scenario(
    "busy-max-length-first",
    C.SESSION_BUSY,
    limit=-(-BUSY_AFTER_MS // MS_PER_S),
    means="whichever comes first",
    in_session=False,
)
def _() -> Sent:
    b = bench()
    opened_at = b.now - RX_IDLE_MS  # SESSION_OPENED was sent then
    b.wait(MAX_MS - BUSY_AFTER_MS - 2 * MS_PER_S, keep_alive=True)
    b.ok(ReadStatus())  # the idle deadline is now later than the maximum length's
    b.now = opened_at + MAX_MS - BUSY_AFTER_MS - 1
    return b.one(RawProgrammer(KEYS).open_session(bytes(16)))


@scenario("same-id-other-request", C.COMMAND_ID_CONFLICT, F.COMMAND_ID)
def _() -> Sent:
    b = bench()
    b.ok(AlarmTest(command_id=77))
    return b.one(b.sealed(StopTherapy(command_id=77)))


@scenario("tampered-ciphertext", C.FRAME_NOT_AUTHENTIC)
def _() -> Sent:
    b = bench()
    data = bytearray(b.sealed(ReadStatus()))
    data[wire.HEADER_LEN] ^= 0x01
    data[-2:] = crc16(bytes(data[2:-2])).to_bytes(2, "little")
    return b.one(bytes(data))


@scenario("late-open-of-replaced-handshake", C.HANDSHAKE_STALE, in_session=False)
def _() -> Sent:
    b = bench(session=False)
    first = RawProgrammer(KEYS).open_session(bytes(16))
    b.one(first)
    b.one(RawProgrammer(KEYS).open_session(bytes([1]) * 16))  # replaces the challenge
    return b.one(first)


# 0x20-0x24: programming


@scenario("commit-without-stage", C.NOTHING_STAGED)
def _() -> Sent:
    b = bench()
    return b.one(b.sealed(CommitPrescription(command_id=5, digest=bytes(16))))


@scenario("commit-other-digest", C.DIGEST_MISMATCH, F.DIGEST)
def _() -> Sent:
    b = bench()
    digest = b.stage(RX)
    return b.one(
        b.sealed(CommitPrescription(command_id=5, digest=bytes(~x & 0xFF for x in digest)))
    )


@scenario(
    "commit-after-lifetime",
    C.STAGE_EXPIRED,
    limit=P.stage_lifetime_s,
    means="the stage lifetime, s",
)
def _() -> Sent:
    b = bench()
    digest = b.stage(RX)
    staged_at = b.now - RX_IDLE_MS
    b.wait(P.stage_lifetime_s * MS_PER_S - 5 * MS_PER_S, keep_alive=True)
    b.now = staged_at + P.stage_lifetime_s * MS_PER_S  # deliver() lands 1 ms past it
    return b.one(b.sealed(CommitPrescription(command_id=5, digest=digest)))


@scenario("too-many-steps", C.TOO_MANY_STEPS, F.STEP_COUNT, P.max_flex_steps, "max steps")
def _() -> Sent:
    return stage(flex(*((i * 60, RATE) for i in range(P.max_flex_steps + 1))))


@scenario("steps-not-from-0", C.BAD_SCHEDULE, F.STEP_START)
def _() -> Sent:
    return stage_raw(rx_payload(mode=InfusionMode.FLEX, steps=((60, RATE),)))


@scenario("steps-not-increasing", C.BAD_SCHEDULE, F.STEP_START)
def _() -> Sent:
    return stage_raw(
        rx_payload(mode=InfusionMode.FLEX, steps=((0, RATE), (600, RATE), (600, RATE)))
    )


@scenario("step-past-the-day", C.BAD_SCHEDULE, F.STEP_START)
def _() -> Sent:
    return stage_raw(rx_payload(mode=InfusionMode.FLEX, steps=((0, RATE), (S_PER_DAY, RATE))))


# 0x30-0x40: the profile's limits and the therapy state


@scenario("step-rate-above", C.RATE_ABOVE_MAX, F.STEP_RATE, P.rate_max_nl_per_day, "max nL/day")
def _() -> Sent:
    return stage(flex((0, RATE), (3600, P.rate_max_nl_per_day + 1)))


def shortest_s(volume_nl: int, basal_nl_per_day: int) -> int:
    """The shortest duration whose average rate fits on top of the basal (section 12)."""
    headroom = P.rate_max_nl_per_day - basal_nl_per_day
    return -(-volume_nl * S_PER_DAY // headroom)


FAST_PB = PatientBolusLimits(P.patient_bolus_dose.high, DURATION.low, 600, 1)


@scenario(
    "patient-bolus-too-fast",
    C.RATE_ABOVE_MAX,
    F.PATIENT_BOLUS_DURATION,
    shortest_s(FAST_PB.dose_nl, RATE),
    "the shortest duration that fits",
)
def _() -> Sent:
    return stage(rx(patient_bolus=FAST_PB))


@scenario(
    "clinician-bolus-too-fast",
    C.RATE_ABOVE_MAX,
    F.BOLUS_DURATION,
    shortest_s(P.max_clinician_bolus_nl, RATE),
    "the shortest duration that fits",
)
def _() -> Sent:
    b = bench()
    return b.one(
        b.sealed(ClinicianBolus(command_id=5, dose_nl=P.max_clinician_bolus_nl, duration_s=60))
    )


@scenario("step-rate-below", C.RATE_BELOW_MIN, F.STEP_RATE, P.rate_min_nl_per_day, "min nL/day")
def _() -> Sent:
    return stage(flex((0, RATE), (3600, P.rate_min_nl_per_day - 1)))


@scenario(
    "prescription-daily-mass",
    C.DAILY_DOSE_ABOVE_MAX,
    F.DAILY_DOSE,
    MORPHINE_MAX_PG,
    "the drug's maximum, pg per day",
)
def _() -> Sent:
    # (500 000 + 4 x 20 000) nL x 30 000 ug/mL = 17.4 mg/day, above morphine's 15 mg.
    return stage(rx(concentration_ug_per_ml=30_000))


STRONG = rx(concentration_ug_per_ml=20_000)  # 11.6 mg/day of morphine: room left, not much


@scenario(
    "clinician-bolus-daily-mass",
    C.DAILY_DOSE_ABOVE_MAX,
    F.BOLUS_DOSE,
    MORPHINE_MAX_PG,
    "the drug's maximum, pg per day",
)
def _() -> Sent:
    b = bench(STRONG)
    dose = P.max_clinician_bolus_nl // 2  # + 1 mL x 20 mg/mL = 31.6 mg/day
    return b.one(
        b.sealed(ClinicianBolus(command_id=5, dose_nl=dose, duration_s=shortest_s(dose, RATE)))
    )


@scenario(
    "refill-concentration-daily-mass",
    C.DAILY_DOSE_ABOVE_MAX,
    F.NEW_CONCENTRATION,
    MORPHINE_MAX_PG,
    "the drug's maximum, pg per day",
)
def _() -> Sent:
    b = bench()
    b.ok(RefillBegin(command_id=5))
    return b.one(
        b.sealed(
            RefillComplete(
                command_id=6,
                withdrawn_nl=0,
                new_volume_nl=10_000_000,
                new_concentration_ug_per_ml=30_000,
            )
        )
    )


@scenario(
    "clinician-bolus-above", C.BOLUS_ABOVE_MAX, F.BOLUS_DOSE, P.max_clinician_bolus_nl, "max nL"
)
def _() -> Sent:
    b = bench()
    return b.one(
        b.sealed(
            ClinicianBolus(command_id=5, dose_nl=P.max_clinician_bolus_nl + 1, duration_s=S_PER_DAY)
        )
    )


@scenario("patient-bolus-dose-above", C.BOLUS_ABOVE_MAX, F.PATIENT_BOLUS_DOSE, DOSE.high, "max nL")
def _() -> Sent:
    return stage(rx(patient_bolus=PatientBolusLimits(DOSE.high + 1, DURATION.high, 600, 1)))


LOCKOUT_WAIT_MS = 100_500


@scenario(
    "patient-bolus-in-lockout",
    C.LOCKOUT_ACTIVE,
    F.PATIENT_BOLUS_LOCKOUT,
    -(-(PB.lockout_s * MS_PER_S - LOCKOUT_WAIT_MS) // MS_PER_S),
    "whole seconds of lockout left",
)
def _() -> Sent:
    b = bench(session=False)  # committed at time 0: a lockout of PB.lockout_s runs from then
    b.open(Role.PATIENT)
    data = b.sealed(PatientBolusRequest(command_id=5))
    b.now = LOCKOUT_WAIT_MS - 1  # deliver() lands at LOCKOUT_WAIT_MS
    return b.one(data)


TWICE = rx(patient_bolus=PatientBolusLimits(20_000, 600, LOCKOUT.low, 2))


@scenario(
    "patient-bolus-count",
    C.DAILY_BOLUS_COUNT_REACHED,
    F.PATIENT_BOLUS_MAX_PER_24H,
    2,
    "the prescription's `max_per_24h`",
)
def _() -> Sent:
    b = bench(TWICE)
    for _ in range(2):
        b.wait(LOCKOUT.low * MS_PER_S)
        b.ok(PatientBolusRequest(command_id=b.command_id()))
    b.wait(LOCKOUT.low * MS_PER_S)
    return b.one(b.sealed(PatientBolusRequest(command_id=5)))


@scenario("start-on-empty", C.RESERVOIR_EMPTY)
def _() -> Sent:
    b = bench(None, reservoir_nl=P.stroke_nl - 1)
    digest = b.stage(RX)
    return b.one(b.sealed(CommitPrescription(command_id=5, digest=digest)))


LITTLE_NL = 10_000


def insufficient(
    id: str, field: FieldId, request: Callable[[int], Message], wait_ms: int = 0
) -> None:
    @scenario(id, C.INSUFFICIENT_RESERVOIR, field, -1, "the reservoir estimate, nL")
    def _() -> Sent:
        b = bench(reservoir_nl=LITTLE_NL)
        b.wait(wait_ms)
        sent = b.one(b.sealed(request(LITTLE_NL)))
        sent.limit = b.pump.status().reservoir_estimate_nl  # a refusal changes nothing
        return sent


insufficient(
    "clinician-bolus-more-than-left",
    F.BOLUS_DOSE,
    lambda left: ClinicianBolus(command_id=5, dose_nl=2 * left, duration_s=S_PER_DAY),
)
insufficient(
    "patient-bolus-more-than-left",
    F.PATIENT_BOLUS_DOSE,
    lambda left: PatientBolusRequest(command_id=5),
    PB.lockout_s * MS_PER_S,
)
insufficient(
    "priming-more-than-left",
    F.CATHETER_VOLUME,
    lambda left: PrimingBolus(command_id=5, catheter_volume_nl=2 * left),
)


@scenario("patient-bolus-when-stopped", C.THERAPY_STOPPED)
def _() -> Sent:
    b = bench()
    b.ok(StopTherapy(command_id=4))
    return b.one(b.sealed(PatientBolusRequest(command_id=5)))


@scenario("patient-bolus-not-allowed", C.NO_PATIENT_BOLUS)
def _() -> Sent:
    b = bench(rx(patient_bolus=None))
    return b.one(b.sealed(PatientBolusRequest(command_id=5)))


@scenario("second-bolus", C.BOLUS_IN_PROGRESS)
def _() -> Sent:
    b = bench()
    b.ok(ClinicianBolus(command_id=4, dose_nl=20_000, duration_s=600))
    return b.one(b.sealed(ClinicianBolus(command_id=5, dose_nl=20_000, duration_s=600)))


@scenario("cancel-without-bolus", C.NO_BOLUS_IN_PROGRESS)
def _() -> Sent:
    b = bench()
    return b.one(b.sealed(CancelBolus(command_id=5)))


@scenario(
    "refill-above-capacity",
    C.VOLUME_ABOVE_CAPACITY,
    F.NEW_VOLUME,
    P.reservoir_usable_nl,
    "the usable capacity, nL",
)
def _() -> Sent:
    b = bench()
    b.ok(RefillBegin(command_id=4))
    return b.one(
        b.sealed(
            RefillComplete(
                command_id=5,
                withdrawn_nl=0,
                new_volume_nl=P.reservoir_usable_nl + 1,
                new_concentration_ug_per_ml=1_000,
            )
        )
    )


@scenario("refill-complete-without-begin", C.REFILL_NOT_STARTED)
def _() -> Sent:
    b = bench()
    return b.one(
        b.sealed(
            RefillComplete(
                command_id=5,
                withdrawn_nl=0,
                new_volume_nl=1_000_000,
                new_concentration_ug_per_ml=1_000,
            )
        )
    )


@scenario("stage-during-refill", C.REFILL_IN_PROGRESS)
def _() -> Sent:
    b = bench()
    b.ok(RefillBegin(command_id=4))
    return b.one(b.sealed(StagePrescription(RX)))


@scenario("acknowledge-inactive-alarm", C.NO_SUCH_ALARM, F.ALARM)
def _() -> Sent:
    b = bench()
    return b.one(b.sealed(AcknowledgeAlarm(command_id=5, alarm=AlarmKind.MOTOR_STALL)))


@scenario("start-when-running", C.BAD_STATE)
def _() -> Sent:
    b = bench()
    return b.one(b.sealed(StartTherapy(command_id=5)))


@scenario("start-without-prescription", C.BAD_STATE, F.MODE)
def _() -> Sent:
    b = bench(None)
    return b.one(b.sealed(StartTherapy(command_id=5)))


@scenario("clinician-bolus-without-prescription", C.BAD_STATE, F.CONCENTRATION)
def _() -> Sent:
    b = bench(None)
    return b.one(b.sealed(ClinicianBolus(command_id=5, dose_nl=20_000, duration_s=600)))


# 0x50-0x52: the device


@scenario("start-while-stalled", C.MOTOR_STALLED)
def _() -> Sent:
    b = bench()
    b.pump.inject(MotorStall())
    b.wait(S_PER_DAY * MS_PER_S // RATE * P.stroke_nl * 2)  # two strokes: one is commanded
    assert b.pump.status().motor_stall_detected
    b.ok(StopTherapy(command_id=4))
    return b.one(b.sealed(StartTherapy(command_id=5)))


@scenario("bolus-at-end-of-service", C.END_OF_SERVICE)
def _() -> Sent:
    b = bench()
    b.pump.inject(BatteryDrain(P.battery_capacity_nah))
    b.wait(P.battery_check_interval_s * MS_PER_S)
    return b.one(b.sealed(ClinicianBolus(command_id=5, dose_nl=20_000, duration_s=600)))


@scenario("stop-after-memory-error", C.MEMORY_ERROR)
def _() -> Sent:
    b = bench()
    b.pump.inject(MemoryCorruption(bit=100))
    b.wait(MS_PER_S)
    return b.one(b.sealed(StopTherapy(command_id=5)))


# Issue 12: the new opcodes' refusals (docs/protocol.md sections 5, 7 and 12).


@scenario("reset-flow-valve-on-a-peristaltic-pump", C.NO_FLOW_VALVE)
def _() -> Sent:
    b = bench()
    return b.one(b.sealed(ResetFlowValve(command_id=5)))


@scenario("clear-memory-error-without-one", C.NO_SUCH_ALARM, F.ALARM)
def _() -> Sent:
    b = bench()
    return b.one(b.sealed(ClearMemoryError(command_id=5)))


@scenario("set-catheter-during-memory-error", C.MEMORY_ERROR)
def _() -> Sent:
    b = bench()
    b.pump.inject(MemoryCorruption(bit=100))
    b.wait(MS_PER_S)
    return b.one(b.sealed(SetCatheter(command_id=5, length_cm=90, primed=False)))


@scenario(
    "set-catheter-longer-than-the-profile",
    C.INVALID_FIELD,
    F.CATHETER_LENGTH,
    P.catheter_max_length_cm,
    "the bound it broke",
)
def _() -> Sent:
    b = bench()
    longer = P.catheter_max_length_cm + 1
    return b.one(b.sealed(SetCatheter(command_id=5, length_cm=longer, primed=False)))


invalid(
    "catheter-length-0",
    F.CATHETER_LENGTH,
    1,
    struct.pack("<IHB", 5, 0, 0),
    Opcode.SET_CATHETER,
)


def patient_refused(id: str, request: Message) -> None:
    """A clinician-only request from a PATIENT session (section 5's role column)."""

    @scenario(f"patient-{id}", C.NOT_PERMITTED_FOR_ROLE, F.ROLE)
    def _() -> Sent:
        b = bench(session=False)
        b.open(Role.PATIENT)
        return b.one(b.sealed(request))


patient_refused("reads-status-detail", ReadStatusDetail())
patient_refused("reads-catheter", ReadCatheter())
patient_refused("clears-memory-error", ClearMemoryError(command_id=5))
patient_refused("resets-flow-valve", ResetFlowValve(command_id=5))
patient_refused("sets-catheter", SetCatheter(command_id=5, length_cm=90, primed=True))


class Storage:
    """Non-volatile storage that works until the test says it fails (a full disk)."""

    def __init__(self) -> None:
        self.failing = False
        self.saved = 0

    def __call__(self, blob: bytes) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        self.saved += 1


@scenario("bolus-when-the-store-fails", C.NOT_STORED)
def _() -> Sent:
    storage = Storage()
    pump = Pump(P, start_ms=0)
    assert not isinstance(pump.program(RX, command_id=1), Refused)
    b = Bench(pump, persist=storage)
    b.open()
    storage.failing = True
    sent = b.one(b.sealed(ClinicianBolus(command_id=5, dose_nl=20_000, duration_s=600)))
    assert 5 not in b.device.ledger.applied_ids()  # undone: the id is still free (rule 11)
    return sent


# -- the tests ---------------------------------------------------------------------------------


def test_every_code_in_the_table_has_a_scenario_and_the_table_is_every_code() -> None:
    assert set(refusal_table()) == set(RefusalCode)
    assert {s.code for s in SCENARIOS} == set(refusal_table())


def test_scenario_ids_are_unique() -> None:
    ids = [s.id for s in SCENARIOS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("code", sorted(RefusalCode), ids=lambda c: c.name)
def test_every_field_a_row_names_is_provoked_and_no_other(code: RefusalCode) -> None:
    cell = refusal_table()[code]
    any_field = "any FieldId but NONE"
    named = fields_named(cell.replace(any_field, ""))
    provoked = {s.field for s in SCENARIOS if s.code is code}
    if any_field in cell:
        assert named <= provoked
        assert F.NONE not in provoked
    else:
        assert provoked == named, cell
    for s in SCENARIOS:
        if s.code is code:
            assert s.means in cell, (s.id, s.means, cell)
            if s.means == "0":
                assert re.search(rf"\b{s.field.name} / 0\b", cell), (s.id, cell)


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda s: f"{s.code.name}-{s.id}")
def test_the_pump_refuses_as_the_row_says(case: Scenario) -> None:
    sent = case.run()
    nak = sent.message
    assert isinstance(nak, Nak), nak
    assert nak.code is case.code, nak
    assert nak.field is case.field, nak
    expected_limit = case.limit if sent.limit is None else sent.limit
    assert nak.limit == expected_limit, nak
    expected = sealed_by_section_4(case.code, sent.request_sealed, case.in_session)
    assert sent.frame.is_sealed is expected, (sent.frame, case)
    assert sent.frame.ref != 0
