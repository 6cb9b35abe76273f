"""Fault specs for ``pumpemu proxy``: the CLI grammar, TOML files, and their error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.errors import UsageError
from hil.proxy.faults import (
    Direction,
    DirectionSelector,
    FaultKind,
    FaultSpec,
    FaultSpecError,
    Nth,
    Rate,
    Window,
    load_fault_file,
    parse_fault,
    parse_fault_document,
    parse_trigger,
)

# -- triggers and durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0.05", Rate(0.05), id="rate"),
        pytest.param("5%", Rate(0.05), id="percent"),
        pytest.param("0", Rate(0.0), id="rate-zero"),
        pytest.param("1", Rate(1.0), id="rate-one"),
        pytest.param("100%", Rate(1.0), id="percent-all"),
        pytest.param("@7", Nth(7), id="nth"),
        pytest.param("@1", Nth(1), id="nth-first"),
        pytest.param("2s..5s", Window(2000, 5000), id="window"),
        pytest.param("250ms..1.5s", Window(250, 1500), id="window-mixed-units"),
        pytest.param("2s..", Window(2000, None), id="window-open-end"),
        pytest.param("..5s", Window(0, 5000), id="window-open-start"),
        pytest.param(" @3 ", Nth(3), id="surrounding-space"),
    ],
)
def test_trigger_forms(text: str, expected: object) -> None:
    assert parse_trigger(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "empty trigger", id="empty"),
        pytest.param("1.5", "between 0 and 1", id="rate-above-one"),
        pytest.param("-0.1", "is negative", id="rate-negative"),
        pytest.param("150%", "0% and 100%", id="percent-above"),
        pytest.param("often", "is not a trigger", id="word"),
        pytest.param("nan", "is not a trigger", id="nan"),
        pytest.param("@0", "counted from 1", id="nth-zero"),
        pytest.param("@x", "whole frame number", id="nth-word"),
        pytest.param("@1.5", "whole frame number", id="nth-fraction"),
        pytest.param("2..5", "not a duration", id="window-no-units"),
        pytest.param("5s..2s", "ends before it starts", id="window-backwards"),
        pytest.param("2s..2s", "ends before it starts", id="window-empty"),
        pytest.param("..", "needs a start, an end or both", id="window-no-bounds"),
        pytest.param("0.0005s..1s", "whole number of milliseconds", id="window-sub-ms"),
    ],
)
def test_bad_triggers_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_trigger(text)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("2s", 2000),
        ("1.5s", 1500),
        ("0.001s", 1),
        ("0ms", 0),
        ("2 min", 120_000),
        ("1m30s", 90_000),
    ],
    ids=["ms", "s", "decimal-s", "one-ms", "zero", "minutes", "compound"],
)
def test_window_bounds_are_exact_integer_ms(text: str, ms: int) -> None:
    trigger = parse_trigger(f"{text}..")
    assert trigger == Window(ms, None)


@pytest.mark.parametrize(
    "text",
    ["500", "-1s", "1e3ms", "s"],
    ids=["no-unit", "negative", "exp", "unit"],
)
def test_window_bounds_need_a_number_and_a_unit(text: str) -> None:
    with pytest.raises(FaultSpecError, match="not a duration"):
        parse_trigger(f"{text}..9h")


# -- CLI specs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        pytest.param("drop", "0.05", FaultSpec(FaultKind.DROP, Rate(0.05)), id="drop-rate"),
        pytest.param(
            "drop",
            "@7,dir=a2b",
            FaultSpec(FaultKind.DROP, Nth(7), DirectionSelector.A2B),
            id="drop-nth-dir",
        ),
        pytest.param(
            "corrupt",
            "5%,bits=3,dir=b->a",
            FaultSpec(FaultKind.CORRUPT, Rate(0.05), DirectionSelector.B2A, (("bits", 3),)),
            id="corrupt-bits-arrow-dir",
        ),
        pytest.param(
            "delay",
            "2s..5s,by=250ms",
            FaultSpec(FaultKind.DELAY, Window(2000, 5000), params=(("by", 250),)),
            id="delay-window",
        ),
        pytest.param(
            "split",
            "@1,gap=5ms,pieces=3",
            FaultSpec(FaultKind.SPLIT, Nth(1), params=(("gap", 5), ("pieces", 3))),
            id="split-params",
        ),
        pytest.param(
            "junk",
            "0.1,bytes=4",
            FaultSpec(FaultKind.JUNK, Rate(0.1), params=(("bytes", 4),)),
            id="junk",
        ),
        pytest.param(
            "disconnect",
            "@10,for=2s",
            FaultSpec(FaultKind.DISCONNECT, Nth(10), params=(("for", 2000),)),
            id="disconnect",
        ),
        pytest.param(
            "truncate",
            "@2, dir=both",
            FaultSpec(FaultKind.TRUNCATE, Nth(2)),
            id="truncate-space",
        ),
        pytest.param("duplicate", "1", FaultSpec(FaultKind.DUPLICATE, Rate(1.0)), id="dup"),
    ],
)
def test_cli_specs(kind: str, text: str, expected: FaultSpec) -> None:
    assert parse_fault(kind, text) == expected


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        pytest.param(
            "drop",
            "0.05,bits=2",
            r"--drop '0.05,bits=2': unknown key 'bits' \(allowed: dir\)",
            id="drop-no-params",
        ),
        pytest.param(
            "corrupt", "0.1,bit=2", r"unknown key 'bit' \(allowed: dir, bits\)", id="typo-key"
        ),
        pytest.param(
            "corrupt", "0.1,bits=0", "bits must be a whole number from 1 to", id="zero-bits"
        ),
        pytest.param("corrupt", "0.1,bits=two", "bits must be a whole number", id="word-bits"),
        pytest.param("delay", "@1,by=500", "not a duration", id="delay-no-unit"),
        pytest.param("delay", "@1,by=0ms", "by must be between 1ms and", id="delay-zero"),
        pytest.param("delay", "@1,by=2h", "between 1ms and 1h", id="delay-hours"),
        pytest.param(
            "split", "@1,pieces=1", "pieces must be a whole number from 2", id="one-piece"
        ),
        pytest.param("split", "@1,gap=0ms", "gap must be between 1ms", id="zero-gap"),
        pytest.param(
            "junk", "@1,bytes=100000", "bytes must be a whole number from 1 to 4096", id="huge-junk"
        ),
        pytest.param("disconnect", "@1,for=2 parsecs", "not a duration", id="disconnect-bad"),
        pytest.param("drop", "0.05,dir=up", "dir must be a2b, b2a or both", id="bad-dir"),
        pytest.param("drop", "0.05,dir", "'dir' is not KEY=VALUE", id="no-value"),
        pytest.param("drop", "0.05,,", "is not KEY=VALUE", id="empty-option"),
        pytest.param("corrupt", "0.1,bits=1,bits=2", "bits given twice", id="twice"),
        pytest.param(
            "drop",
            "sometimes",
            r"--drop 'sometimes': 'sometimes' is not a trigger",
            id="bad-trigger",
        ),
        pytest.param("explode", "0.1", "unknown fault 'explode'", id="bad-kind"),
    ],
)
def test_bad_cli_specs_name_the_option_and_the_problem(kind: str, text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message) as caught:
        parse_fault(kind, text)
    assert "\n" not in str(caught.value)
    # A user error: the CLI turns it into one line and exit code 2.
    assert isinstance(caught.value, UsageError)


def test_defaults_and_canonical_text() -> None:
    spec = parse_fault("split", "@3,dir=a2b")
    assert spec.param("pieces") == 2
    assert spec.param("gap") == 10
    assert str(spec) == "split @3,dir=a2b"
    assert str(parse_fault("delay", "2s..,by=1.5s")) == "delay 2s..,by=1500ms"
    assert str(parse_fault("disconnect", "..5s,for=2s")) == "disconnect ..5s,for=2s"
    with pytest.raises(KeyError):
        spec.param("bits")


def test_canonical_text_parses_back_to_the_same_spec() -> None:
    for kind, text in [
        ("corrupt", "0.25,bits=4,dir=b2a"),
        ("split", "1s..2s,pieces=3,gap=7ms"),
        ("disconnect", "@4,for=1500ms"),
    ]:
        spec = parse_fault(kind, text)
        rendered_kind, rendered = str(spec).split(" ", 1)
        assert parse_fault(rendered_kind, rendered) == spec


def test_make_builds_checked_specs_from_python() -> None:
    assert FaultSpec.make("corrupt", Rate(0.05), bits=2) == parse_fault("corrupt", "0.05,bits=2")
    assert FaultSpec.make("disconnect", Nth(3), "a2b", for_=500) == parse_fault(
        "disconnect", "@3,dir=a2b,for=500ms"
    )
    with pytest.raises(FaultSpecError, match="unknown parameter 'bits'"):
        FaultSpec.make("drop", Rate(0.1), bits=1)
    with pytest.raises(FaultSpecError, match="between 0 and 1"):
        FaultSpec.make("drop", Rate(2.0))
    with pytest.raises(FaultSpecError, match="counted from 1"):
        FaultSpec.make("drop", Nth(0))
    with pytest.raises(FaultSpecError, match="ends before it starts"):
        FaultSpec.make("drop", Window(5, 5))


def test_direction_selector() -> None:
    assert DirectionSelector.BOTH.includes(Direction.A2B)
    assert DirectionSelector.BOTH.includes(Direction.B2A)
    assert DirectionSelector.A2B.includes(Direction.A2B)
    assert not DirectionSelector.A2B.includes(Direction.B2A)
    assert DirectionSelector.B2A.includes(Direction.B2A)
    assert not DirectionSelector.B2A.includes(Direction.A2B)
    assert Direction.A2B.reverse is Direction.B2A


def test_window_is_half_open() -> None:
    window = Window(2000, 5000)
    assert [window.contains(t) for t in (1999, 2000, 4999, 5000)] == [False, True, True, False]
    assert Window(2000, None).contains(10**9)


# -- TOML ----------------------------------------------------------------------------------------

GOOD_TOML = """
seed = 42

[[drop]]
when = 0.05

[[corrupt]]
when = "@3"
bits = 2
dir = "a2b"

[[delay]]
when = "2s..5s"
by = "250ms"

[[drop]]
when = "10%"
dir = "b->a"

[[disconnect]]
when = 1
for = "1.5s"
"""


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(GOOD_TOML, encoding="utf-8")
    config = load_fault_file(path)
    assert config.seed == 42
    # Grouped by kind as TOML tables are, in file order within a kind.
    assert config.faults == (
        FaultSpec(FaultKind.DROP, Rate(0.05)),
        FaultSpec(FaultKind.DROP, Rate(0.1), DirectionSelector.B2A),
        FaultSpec(FaultKind.CORRUPT, Nth(3), DirectionSelector.A2B, (("bits", 2),)),
        FaultSpec(FaultKind.DELAY, Window(2000, 5000), params=(("by", 250),)),
        FaultSpec(FaultKind.DISCONNECT, Rate(1.0), params=(("for", 1500),)),
    )


def test_toml_matches_the_cli_form() -> None:
    config = parse_fault_document('[[split]]\nwhen = "@2"\npieces = 3\ngap = "4ms"\n')
    assert config.faults == (parse_fault("split", "@2,pieces=3,gap=4ms"),)
    assert config.seed is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[[drop]\nwhen = 1", "not valid TOML", id="syntax"),
        pytest.param("[[drop]]\ndir = 'a2b'", r"\[\[drop\]\] #1: missing 'when'", id="no-when"),
        pytest.param(
            "[[drop]]\nwhen = 2.0",
            r"\[\[drop\]\] #1: '2.0': a rate must be between 0 and 1",
            id="rate",
        ),
        pytest.param("[[drop]]\nwhen = true", "'when' must be a rate", id="bool-when"),
        pytest.param("[[drop]]\nwhen = [1]", "'when' must be a rate", id="list-when"),
        pytest.param(
            "[[drop]]\nwhen = 0.1\n[[drop]]\nwhen = '@0'",
            r"\[\[drop\]\] #2: '@0': frames are counted from 1",
            id="second-entry",
        ),
        pytest.param(
            "[[delay]]\nwhen = '@1'\nby = 250",
            'by must be a string with a unit, e.g. "250ms"',
            id="int-duration",
        ),
        pytest.param(
            "[[corrupt]]\nwhen = '@1'\nbits = '2'", "bits must be a whole number", id="str-bits"
        ),
        pytest.param(
            "[[corrupt]]\nwhen = '@1'\nbits = 1.5", "bits must be a whole number", id="float-bits"
        ),
        pytest.param(
            "[[corrupt]]\nwhen = '@1'\nbit = 2",
            r"unknown key 'bit' \(allowed: when, dir, bits\)",
            id="typo",
        ),
        pytest.param("[[drop]]\nwhen = 0.1\ndir = 3", "dir must be a string", id="int-dir"),
        pytest.param(
            "[[explode]]\nwhen = 0.1",
            r"unknown key 'explode' \(allowed: seed, \[\[disconnect\]\]",
            id="bad-kind",
        ),
        pytest.param(
            "[drop]\nwhen = 0.1",
            r"drop must be an array of tables, written \[\[drop\]\]",
            id="single-table",
        ),
        pytest.param(
            "seed = -1", "seed must be a whole number 0..18446744073709551615", id="negative-seed"
        ),
        pytest.param(
            "seed = 'x'", "seed must be a whole number 0..18446744073709551615", id="str-seed"
        ),
        pytest.param(
            "seed = 18446744073709551616",
            "seed must be a whole number 0..18446744073709551615",
            id="seed-beyond-64-bits",
        ),
    ],
)
def test_bad_toml_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message) as caught:
        parse_fault_document(text, "f.toml")
    assert str(caught.value).startswith("fault file f.toml:")
    assert "\n" not in str(caught.value)


def test_fault_file_problems(tmp_path: Path) -> None:
    with pytest.raises(FaultSpecError, match="no such file"):
        load_fault_file(tmp_path / "missing.toml")
    with pytest.raises(FaultSpecError, match="is a directory"):
        load_fault_file(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FaultSpecError, match="not UTF-8"):
        load_fault_file(binary)
