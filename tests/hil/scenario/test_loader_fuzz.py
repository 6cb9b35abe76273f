"""Whatever a scenario file holds, the loader answers with scenarios or one ScenarioError
(`file:line: what is wrong`), never another exception: a property over documents built
from the format's own vocabulary, so most of them get deep into the checks."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hil.scenario.loader import ScenarioError, loads

KEYS = [
    "id", "title", "hazards", "tags", "seed", "end", "setup", "steps", "oracles", "sweep",
    "profile", "age", "clock", "reservoir", "catheter", "prescription", "volume", "drug",
    "concentration", "length_cm", "primed", "at", "after", "do", "name", "expect", "role",
    "read", "dose", "duration", "withdrawn", "injected", "pocket", "alarm", "time", "fault",
    "params", "kind", "when", "dir", "outcome", "refusal", "field", "limit", "state",
    "alarms", "log", "no_log", "discrepancy", "check", "from", "to", "per", "believed",
    "patient", "patient_at_most", "patient_at_least", "step", "flagged", "sign", "within",
    "never", "every", "max_gap", "min_gap", "ppm", "recover_after_s", "part", "mode", "rate",
]  # fmt: skip
WORDS = [
    "fault", "stall", "leak", "refill", "program", "clinician-bolus", "advance", "dose",
    "exactly-once", "reservoir", "alarm-latency", "refill-discrepancy", "1d", "2d 08:00",
    "6h", "10 min", "0.5 mL", "20 mL", "1 mg", "10 mg/mL", "2%", "H1", "C1", "H99",
    "MOTOR_STALL", "applied", "refused", "peristaltic-20", "morphine", "continuous",
    "0.5 mL/day", "@3", "b2a", "drop", "motor", "catheter", "flagged", "negative", "", "-1d",
]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=8),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=10)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for these characters
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f'"{key}" = {toml_value(value)}\n' for key, value in doc.items())


@settings(max_examples=150)
@given(documents)
def test_any_document_is_scenarios_or_one_file_line_error(doc: dict[str, Any]) -> None:
    _loads_or_one_error(doc)


def _loads_or_one_error(doc: dict[str, Any]) -> None:
    text = toml_document(doc)
    try:
        loads(text, "fuzz.toml")
    except ScenarioError as exc:
        message = str(exc)
        assert message.startswith("fuzz.toml:")
        assert "\n" not in message
        line = int(message.split(":")[1])
        assert 1 <= line <= max(1, text.count("\n"))


STEP_KEYS = ["at", "after", "name", "expect", "role", "read", "dose", "duration", "volume",
             "withdrawn", "injected", "pocket", "concentration", "alarm", "time", "fault",
             "params", "kind", "when", "dir", "prescription"]  # fmt: skip
ORACLE_KEYS = ["from", "to", "per", "believed", "patient", "patient_at_most",
               "patient_at_least", "step", "flagged", "sign", "fault", "alarm", "within",
               "never", "every", "max_gap", "min_gap"]  # fmt: skip


def tables(first: str, names: list[str], keys: list[str]) -> st.SearchStrategy[Any]:
    return st.lists(
        st.builds(
            lambda name, extra: {first: name, **extra},
            st.sampled_from(names),
            st.dictionaries(st.sampled_from(keys), values, max_size=4),
        ),
        max_size=4,
    )


deep_documents = st.builds(
    lambda setup, steps, oracles: {
        "id": "f", "title": "f", "setup": setup, "steps": steps, "oracles": oracles,
    },
    st.dictionaries(st.sampled_from(["profile", "age", "reservoir", "catheter"]), values,
                    max_size=3),
    tables("do", ["fault", "refill", "program", "clinician-bolus", "link-fault", "advance",
                  "acknowledge", "set-clock", "prime", "interrogate"], STEP_KEYS),
    tables("check", ["dose", "reservoir", "alarm-latency", "refill-discrepancy"], ORACLE_KEYS),
)  # fmt: skip


@settings(max_examples=150)
@given(deep_documents)
def test_documents_deep_in_steps_and_oracles_too(doc: dict[str, Any]) -> None:
    _loads_or_one_error(doc)
