"""Hostile input at every file door: one clear error line, never a traceback (issue 11).

Each door is fed the inputs a user or a peer could hand it by mistake or on purpose:
nesting bombs, huge files, huge integers, wrong types, not the format at all. Each must end
in that door's own error, in one line; anything else escaping is a bug. Prescription files
have their own table (test_prescription_file_doors.py), the TOML/JSON rule itself is in
tests/protocol/test_documents.py, state files are fuzzed in tests/hil/test_state_file.py,
and control lines are in test_control.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hil.capture import CaptureFormatError, parse_capture
from hil.cli import main
from hil.errors import HilError
from hil.proxy.faults import FaultSpecError, parse_fault_document
from protocol.errors import ProtocolError
from protocol.keys import KeyFileError, parse_key_file

BOMB = "[" * 5_000 + "]" * 5_000
HUGE_INT = "9" * 5_000
HOSTILE_TEXTS = {
    "nesting-bomb": BOMB,
    "huge-file": "#" + "x" * (2 << 20),
    "huge-integer": HUGE_INT,
    "not-text-at-all": "\x00\x01\x02",
    "empty": "",
}


def _faults(text: str) -> None:
    parse_fault_document(text, "faults.toml")


def _key_file(text: str) -> None:
    parse_key_file(text)


def _capture(text: str) -> None:
    list(parse_capture(text.splitlines() or [text], "serve.jsonl"))


DOORS: dict[str, tuple[Callable[[str], None], type[Exception], dict[str, str]]] = {
    "proxy-fault-file": (
        _faults,
        FaultSpecError,
        {
            "nesting-bomb": "x = " + BOMB,
            "huge-file": "# " + "x" * (2 << 20),
            "huge-integer": f"seed = {HUGE_INT}",
            "not-toml": "= = =",
            "unknown-fault": "[[fault]]\nkind = 'explode'",
            "seed-negative": "seed = -1",
            "seed-float": "seed = 1.5",
        },
    ),
    "key-file": (
        _key_file,
        KeyFileError,
        {
            **HOSTILE_TEXTS,
            "json-array": "[1, 2, 3]",
            "wrong-types": '{"format": 7, "serial": [], "clinician": {}, "patient": null}',
            "huge-integer-field": '{"format": ' + HUGE_INT + "}",
        },
    ),
    "capture": (
        _capture,
        CaptureFormatError,
        {
            **HOSTILE_TEXTS,
            "json-array": "[1, 2, 3]",
            "unknown-kind": '{"kind": "explode"}',
            "frame-without-fields": '{"kind": "frame"}',
            "huge-integer-field": '{"kind": "frame", "sim_ms": ' + HUGE_INT + "}",
        },
    ),
}

CASES = [
    (door, name, text)
    for door, (_, _, texts) in DOORS.items()
    for name, text in texts.items()
    if not (door == "capture" and name == "empty")  # an empty capture holds no record
]


@pytest.mark.parametrize(
    ("door", "name", "text"), CASES, ids=[f"{door}-{name}" for door, name, _ in CASES]
)
def test_a_hostile_input_is_one_clear_line_of_the_doors_own_error(
    door: str, name: str, text: str
) -> None:
    read, error, _ = DOORS[door]
    with pytest.raises(error) as raised:
        read(text)
    message = str(raised.value)
    assert message.strip()
    assert "\n" not in message.strip()
    assert len(message) < 2_000  # a line, not an echo of the input


@pytest.mark.parametrize("door", list(DOORS))
@given(text=st.text(alphabet="[]{}\"'#=:,. \n0123456789abcdefkindsed", max_size=200))
def test_any_text_at_any_door_is_read_or_refused_by_the_family(door: str, text: str) -> None:
    read, _, _ = DOORS[door]
    try:
        read(text)
    except (HilError, ProtocolError):
        return  # the door's own error family: one clear line


CLI_CASES = {
    "ctl-timeout-nan": (["ctl", "--port", "loop://", "--keys", "k", "--timeout", "nan", "status"],
                        "--timeout"),
    "ctl-timeout-huge": (["ctl", "--port", "loop://", "--keys", "k", "--timeout", "1e400",
                          "status"], "--timeout"),
    "ctl-busy-wait-years": (["ctl", "--port", "loop://", "--keys", "k", "--busy-wait",
                             "99999999999999999999999", "status"], "--busy-wait"),
    "ctl-retries-huge": (["ctl", "--port", "loop://", "--keys", "k", "--retries",
                          "99999999999", "status"], "--retries"),
    "serve-clock-beyond-u64": (["serve", "--pty", "--keys", "k", "--clock",
                                "x99999999999999999999"], "--clock"),
    "serve-baud-zero": (["serve", "--pty", "--keys", "k", "--baud", "0"], "--baud"),
    "keys-serial-500-chars": (["keys", "new", "--serial", "A" * 500, "--out", "x.keys"],
                              "--serial"),
    "fault-cap-aspirate-negative": (["fault", "cap-aspirate", "--volume-nl", "-1"],
                                    "--volume-nl"),
    "fault-cap-aspirate-beyond-100-mL": (["fault", "cap-aspirate", "--volume-nl",
                                          "99999999999999999999"], "--volume-nl"),
    "fault-cap-inject-not-a-number": (["fault", "cap-inject", "--volume-nl", "1e3",
                                       "--concentration-ug-per-ml", "1"], "--volume-nl"),
    "fault-kink-missing-closed": (["fault", "kink", "--period-s", "60"], "--closed-s"),
}  # fmt: skip


@pytest.mark.parametrize(("args", "words"), list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_a_hostile_option_is_one_line_and_exit_2(
    args: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # "k" is a real 0600 key file: the option is what is wrong
    made = CliRunner().invoke(main, ["keys", "new", "--serial", "PE-1", "--out", "k"])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert words in lines[-1]
    assert "Traceback" not in result.output


def _options(
    command: click.Command, path: tuple[str, ...]
) -> Iterator[tuple[str, click.Parameter]]:
    for param in command.params:
        yield " ".join([*path, param.opts[0] if param.opts else param.name or "?"]), param
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from _options(sub, (*path, name))


def test_every_integer_option_of_every_command_is_bounded() -> None:
    """Door 2 of issue 11: a number beyond what the pump can hold is a clear error at the
    option, never a value that breaks the run (or its saved state) later. So no command
    takes an unbounded integer: each is an IntRange with both ends."""
    options = list(_options(main, ("pumpemu",)))
    assert len(options) > 80  # the walk reached every command (they load lazily)
    unbounded = [
        where
        for where, param in options
        if isinstance(param.type, click.types.IntParamType)
        # A counted flag (-v, -qq) is bounded by the command line's length, and clamped.
        and not (isinstance(param, click.Option) and param.count)
        and not (
            isinstance(param.type, click.IntRange)
            and param.type.min is not None
            and param.type.max is not None
        )
    ]
    assert unbounded == []


@pytest.mark.parametrize(
    "args",
    [
        ["fault", "stall", "--recover-after-s", "9" * 30],
        ["fault", "battery-drain", "--nah", "-" + "9" * 30],
        ["fault", "pocket-fill", "--volume-nl", "1e9"],
    ],
    ids=["stall-30-digits", "drain-negative-30-digits", "pocket-float"],
)
def test_a_hostile_fault_number_is_refused_before_the_control_api(args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--control", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert args[2] in result.output.splitlines()[-1]


NINES = "9" * 400
QUANTITY_CASES = {
    "bolus-dose-beyond-u32": (["bolus", "--dose", "99999999999 mL", "--duration", "10 min"],
                              "--dose"),
    "bolus-dose-400-digits": (["bolus", "--dose", NINES, "--duration", "10 min"], "--dose"),
    "bolus-duration-beyond-u32": (["bolus", "--dose", "1 mL", "--duration", "99999999999 s"],
                                  "--duration"),
    "bolus-dose-nan": (["bolus", "--dose", "nan mL", "--duration", "10 min"], "--dose"),
    "prime-volume-beyond-u32": (["prime", "--volume", "99999999999999999999999 mL"],
                                "--volume"),
    "prime-volume-1e400": (["prime", "--volume", "1e400 mL"], "--volume"),
    "refill-withdrawn-beyond-u32": (["refill", "--withdrawn", "5000 mL", "--volume", "20 mL",
                                     "--concentration", "10 mg/mL"],
                                    "--withdrawn"),
    "refill-volume-400-digits": (["refill", "--withdrawn", "1 mL", "--volume", NINES,
                                  "--concentration", "10 mg/mL"],
                                 "--volume"),
    "refill-concentration-beyond-u32": (["refill", "--withdrawn", "1 mL", "--volume", "20 mL",
                                         "--concentration", "99999999 g/mL"],
                                        "--concentration"),
    "set-clock-400-digits": (["set-clock", NINES], "set-clock"),
}  # fmt: skip


@pytest.mark.parametrize(("args", "words"), list(QUANTITY_CASES.values()), ids=list(QUANTITY_CASES))
def test_a_hostile_quantity_is_one_line_and_exit_2_before_anything_is_sent(
    args: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(main, ["keys", "new", "--serial", "PE-1", "--out", "k"])
    assert made.exit_code == 0, made.output
    # loop:// would echo anything sent back: the error must come before any frame.
    result = CliRunner().invoke(
        main, ["ctl", "--port", "loop://", "--keys", "k", "--timeout", "0.2", *args]
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert words in lines[0]
