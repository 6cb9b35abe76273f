"""Hostile prescription files: every one ends in one clear PrescriptionFileError line.

Issue 11 ("every door shut"): a value beyond its wire width, a nesting bomb, a huge file,
or any value of any type under any key is a user error with one line naming the key, never
a traceback, unbounded work or unbounded memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.ctl.prescription_file import PrescriptionFileError, parse

EXAMPLE = (Path(__file__).resolve().parents[2] / "hil/examples/morphine-flex.toml").read_text()
HEAD = 'format = "pumpemu-prescription/1"\ndrug = "morphine"\nconcentration = "10 mg/mL"\n'
CONTINUOUS = HEAD + 'mode = "continuous"\nlow_reservoir_threshold = "2 mL"\n'

HOSTILE = {
    "rate-beyond-32-bits": (CONTINUOUS + 'rate = "999999999999 mL/day"\n', "protocol can carry"),
    "dose-beyond-32-bits": (CONTINUOUS + 'dose = "9999999 g/day"\n', "dose"),
    "concentration-beyond-32-bits": (
        CONTINUOUS.replace('"10 mg/mL"', '"99999999 g/mL"') + 'rate = "1 mL/day"\n',
        "concentration",
    ),
    "nested-arrays": (
        'format = "pumpemu-prescription/1"\nx = ' + "[" * 5000 + "]" * 5000,
        "nested too deeply",
    ),
    "nested-inline-tables": ("x = " + "{a = " * 3000 + "1" + "}" * 3000, "nested too deeply"),
    "huge-file": ("# " + "x" * (2 << 20) + "\n", "too long"),
    "not-toml": ("this is = = not toml", "not valid TOML"),
    "step-rate-beyond-32-bits": (
        EXAMPLE.replace('rate = "0.5 mL/day"', 'rate = "99999999 mL/day"'),
        "steps[1].rate",
    ),
    "patient-bolus-count-beyond-8-bits": (
        EXAMPLE.replace("max_per_24h = 4", "max_per_24h = 100000"),
        "max_per_24h",
    ),
    "patient-bolus-dose-beyond-32-bits": (
        EXAMPLE.replace('dose = "0.02 mL"', 'dose = "99999 mL"'),
        "patient_bolus",
    ),
}


@pytest.mark.parametrize(("text", "words"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_file_is_one_clear_line(text: str, words: str) -> None:
    with pytest.raises(PrescriptionFileError) as raised:
        parse(text, "rx.toml")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("rx.toml: ")
    assert words in message


VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    return repr(value)


@given(
    st.sampled_from(
        ["drug", "concentration", "mode", "repeat", "rate", "low_reservoir_threshold", "other"]
    ),
    VALUES,
)
def test_any_value_under_any_key_parses_or_is_a_clear_error(key: str, value: object) -> None:
    lines = [line for line in CONTINUOUS.splitlines() if not line.startswith(f"{key} ")]
    text = "\n".join([*lines, 'rate = "1 mL/day"' if key != "rate" else ""])
    text += f"\n{key} = {_toml_value(value)}\n"
    error: PrescriptionFileError | None = None
    try:
        parse(text, "rx.toml")
    except PrescriptionFileError as caught:
        error = caught
    assert error is None or "\n" not in str(error)
