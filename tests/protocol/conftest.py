"""Hypothesis strategies for every message, registered by type: use ``st.from_type(cls)``.

Messages are generated from their own field declarations (protocol.messages.field_specs),
so a field added to a message is generated, round-tripped and fuzzed without touching the
tests. The shared record types (Prescription, LogEntry ...) have hand-written strategies
that respect their cross-field rules (step ordering, strictly increasing log seqs).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from protocol.device_state import AlarmKind, AlarmRecord, EventKind, LogEntry
from protocol.messages import (
    MESSAGE_TYPES,
    Ack,
    EventLogPage,
    FieldKind,
    FieldSpec,
    Message,
    Opcode,
    ProfileLimits,
    field_specs,
)
from protocol.prescription import (
    MAX_STEPS_ON_WIRE,
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.units import U8_MAX, U16_MAX, U32_MAX, U64_MAX

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
u32 = st.integers(0, U32_MAX)
u64 = st.integers(0, U64_MAX)


@st.composite
def prescriptions(draw: st.DrawFn) -> Prescription:
    mode = draw(st.sampled_from(InfusionMode))
    # Only a flex schedule repeats weekly (docs/protocol.md section 10.1).
    repeat = draw(st.sampled_from(Repeat)) if mode is InfusionMode.FLEX else Repeat.DAILY
    steps: tuple[FlexStep, ...]
    if mode is InfusionMode.STOPPED:
        steps = ()
    elif mode is InfusionMode.CONTINUOUS:
        steps = (FlexStep(0, draw(u32)),)
    else:
        later = draw(
            st.lists(
                st.integers(1, repeat.period_s - 1), unique=True, max_size=MAX_STEPS_ON_WIRE - 1
            )
        )
        steps = tuple(FlexStep(start, draw(u32)) for start in [0, *sorted(later)])
    bolus = draw(
        st.none()
        | st.builds(
            PatientBolusLimits,
            st.integers(1, U32_MAX),
            st.integers(1, U32_MAX),
            u32,
            st.integers(1, U8_MAX),
        )
    )
    return Prescription(
        drug_name=draw(st.text(PRINTABLE, min_size=1, max_size=16)),
        concentration_ug_per_ml=draw(st.integers(1, U32_MAX)),
        mode=mode,
        repeat=repeat,
        steps=steps,
        patient_bolus=bolus,
        low_reservoir_threshold_nl=draw(u32),
    )


log_entries = st.builds(
    LogEntry, u32, u64, st.sampled_from(EventKind), st.integers(0, U16_MAX), u64, u64
)
alarm_records = st.builds(AlarmRecord, st.sampled_from(AlarmKind), u64, st.booleans())


@st.composite
def profile_limits(draw: st.DrawFn) -> ProfileLimits:
    def ordered(high: int) -> tuple[int, int]:
        low, top = sorted(draw(st.tuples(st.integers(0, high), st.integers(0, high))))
        return low, top

    rate = ordered(U32_MAX)
    duration = ordered(U32_MAX)
    lockout = ordered(U32_MAX)
    threshold = ordered(U32_MAX)
    return ProfileLimits(
        reservoir_capacity_nl=draw(st.integers(1, U32_MAX)),
        stroke_volume_nl=draw(st.integers(1, U32_MAX)),
        rate_min_nl_per_day=rate[0],
        rate_max_nl_per_day=rate[1],
        max_clinician_bolus_nl=draw(u32),
        max_daily_dose_pg=draw(u64),
        max_flex_steps=draw(st.integers(0, U8_MAX)),
        patient_bolus_dose_max_nl=draw(u32),
        patient_bolus_duration_min_s=duration[0],
        patient_bolus_duration_max_s=duration[1],
        patient_bolus_lockout_min_s=lockout[0],
        patient_bolus_lockout_max_s=lockout[1],
        patient_bolus_max_per_24h=draw(st.integers(0, U8_MAX)),
        low_reservoir_threshold_min_nl=threshold[0],
        low_reservoir_threshold_max_nl=threshold[1],
        max_priming_volume_nl=draw(u32),
    )


RECORDS: dict[type, st.SearchStrategy[Any]] = {
    Prescription: prescriptions(),
    LogEntry: log_entries,
    AlarmRecord: alarm_records,
    ProfileLimits: profile_limits(),
}


def field_strategy(spec: FieldSpec) -> st.SearchStrategy[Any]:
    kind = spec.kind
    if kind is FieldKind.INT:
        assert spec.range is not None, f"{spec.name} declares no range"
        return st.integers(spec.range.low, spec.range.high)
    if kind is FieldKind.BOOL:
        return st.booleans()
    if kind is FieldKind.BYTES:
        return st.binary(min_size=spec.size, max_size=spec.size)
    if kind is FieldKind.TEXT:
        return st.text(PRINTABLE, min_size=1, max_size=spec.size)
    if kind is FieldKind.ENUM:
        return st.sampled_from(spec.type)
    if kind is FieldKind.ENUM_SET:
        return st.frozensets(st.sampled_from(spec.type))
    if kind is FieldKind.RECORD:
        return RECORDS[spec.type]
    if kind is FieldKind.OPTIONAL_RECORD:
        return st.none() | RECORDS[spec.type]
    return st.lists(RECORDS[spec.type], max_size=spec.size).map(tuple)


def message_strategy(cls: type[Message]) -> st.SearchStrategy[Message]:
    fields = {spec.name: field_strategy(spec) for spec in field_specs(cls)}
    if cls is EventLogPage:
        fields["entries"] = st.lists(
            log_entries, max_size=spec_size(cls, "entries"), unique_by=lambda e: e.seq
        ).map(lambda entries: tuple(sorted(entries, key=lambda e: e.seq)))
    if cls is Ack:
        fields["request"] = st.sampled_from([op for op in Opcode if not op.is_reply])
    return st.builds(cls, **fields)


def spec_size(cls: type, name: str) -> int:
    return next(spec.size for spec in field_specs(cls) if spec.name == name)


for _cls in MESSAGE_TYPES:
    st.register_type_strategy(_cls, message_strategy(_cls))
for _record, _strategy in RECORDS.items():
    st.register_type_strategy(_record, _strategy)

# ``st.from_type(Message)`` draws a message of any type.
st.register_type_strategy(Message, st.one_of([message_strategy(cls) for cls in MESSAGE_TYPES]))
