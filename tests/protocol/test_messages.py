"""Messages check their fields when built, and the error names the field and the range."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.device_state import AlarmKind, AlarmRecord, EventKind, LogEntry, Role, TherapyState
from protocol.errors import FieldValueError
from protocol.messages import (
    MESSAGE_TYPES,
    Ack,
    AlarmList,
    Challenge,
    ClinicianBolus,
    CommitPrescription,
    EventLogPage,
    FieldKind,
    Nak,
    Opcode,
    OpenSession,
    ReadEventLog,
    Status,
    Validated,
    field_specs,
)
from protocol.refusal import FieldId, RefusalCode

GOOD_STATUS: dict[str, Any] = {
    "state": TherapyState.STOPPED, "rate_nl_per_day": 0, "reservoir_nl": 0,
    "battery_percent": 100, "active_alarms": frozenset(), "last_command_id": 0,
    "pump_time_ms": 0,
}  # fmt: skip


@pytest.mark.parametrize(
    ("build", "field", "words"),
    [
        (lambda: ClinicianBolus(command_id=0, dose_nl=1, duration_s=1), "command_id",
         "allowed 1..4294967295"),
        (lambda: ClinicianBolus(command_id=1, dose_nl=2**32, duration_s=1), "dose_nl",
         "allowed 1..4294967295"),
        (lambda: ClinicianBolus(command_id=1, dose_nl=1, duration_s=0), "duration_s",
         "below the minimum 1"),
        (lambda: ClinicianBolus(command_id=1, dose_nl=True, duration_s=1), "dose_nl",
         "must be an integer"),
        (lambda: Status(**GOOD_STATUS | {"battery_percent": 101}), "battery_percent",
         "allowed 0..100"),
        (lambda: Status(**GOOD_STATUS | {"state": 1}), "state", "must be a TherapyState"),
        (lambda: Status(**GOOD_STATUS | {"active_alarms": frozenset({1})}), "active_alarms",
         "frozenset of AlarmKind"),
        (lambda: OpenSession(role=Role.CLINICIAN, programmer_nonce=bytes(15)),
         "programmer_nonce", "exactly 16 bytes"),
        (lambda: Challenge(pump_nonce=bytes(16), serial=""), "serial", "1..16 characters"),
        (lambda: Challenge(pump_nonce=bytes(16), serial="caf\u00e9"), "serial",
         "printable ASCII"),
        (lambda: CommitPrescription(command_id=1, digest=b"short"), "digest", "16 bytes"),
        (lambda: ReadEventLog(from_seq=0, count=33), "count", "allowed 1..32"),
        (lambda: Nak(code=RefusalCode.BAD_STATE, field=FieldId.NONE, limit=-1), "limit",
         "below the minimum 0"),
        (lambda: Ack(command_id=1, request=Opcode.STATUS, state=TherapyState.STOPPED,
                     reservoir_nl=0, value=0), "request", "request opcode"),
        (lambda: AlarmList(alarms=tuple(AlarmRecord(AlarmKind.LOW_RESERVOIR, 0, False)
                                        for _ in range(17))), "alarms", "allowed 0..16"),
        (lambda: EventLogPage(oldest_seq=0, next_seq=3, entries=(
            LogEntry(2, 0, EventKind.POWER_ON, 0, 0, 0),
            LogEntry(1, 0, EventKind.POWER_ON, 0, 0, 0))), "entries", "strictly increase"),
    ],
    ids=["command-id-zero", "dose-overflow", "duration-zero", "bool-is-not-int",
         "battery-over-100", "raw-int-state", "raw-int-alarm", "short-nonce", "empty-serial",
         "non-ascii-serial", "short-digest", "log-page-too-big", "negative-limit",
         "ack-of-a-reply", "too-many-alarms", "log-seqs-out-of-order"],
)  # fmt: skip
def test_bad_field_is_refused_naming_field_and_range(build: Any, field: str, words: str) -> None:
    with pytest.raises(FieldValueError) as raised:
        build()
    assert raised.value.field == field
    assert words in str(raised.value)
    assert str(raised.value).startswith(f"{field}: ")


def test_messages_are_frozen_and_slotted() -> None:
    bolus = ClinicianBolus(command_id=1, dose_nl=1, duration_s=1)
    with pytest.raises(AttributeError):
        bolus.dose_nl = 2  # type: ignore[misc]
    assert not hasattr(bolus, "__dict__")


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda cls: cls.__name__)
def test_every_integer_field_declares_its_range(cls: type[Validated]) -> None:
    for spec in field_specs(cls):
        if spec.kind is FieldKind.INT:
            assert spec.range is not None, f"{cls.__name__}.{spec.name}"
        if spec.kind is FieldKind.RECORD and issubclass(spec.type, Validated):
            test_every_integer_field_declares_its_range(spec.type)


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda cls: cls.__name__)
def test_opcodes_are_grouped(cls: type[Any]) -> None:
    op = cls.OPCODE
    if op.is_reply:
        assert op in (Opcode.ACK, Opcode.NAK) or Opcode(op & 0x7F) in Opcode
    else:
        assert 0x01 <= op <= 0x3F


def test_every_therapy_changing_request_carries_a_command_id() -> None:
    # docs/protocol.md section 8: COMMIT, SET_CLOCK and every 0x30-0x3F request; a stage
    # (STAGE_PRESCRIPTION_OVERRIDE, 0x23, too) changes nothing and carries none.
    for cls in MESSAGE_TYPES:
        if 0x21 <= cls.OPCODE <= 0x3F and cls.OPCODE is not Opcode.STAGE_PRESCRIPTION_OVERRIDE:
            names = [spec.name for spec in field_specs(cls)]
            assert names[0] == "command_id", cls.__name__
