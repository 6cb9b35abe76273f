"""Machine-readable output everywhere, logs alike on every long-running command (issue 16,
item 5; docs/architecture.md, "Command output").

The click tree is walked (hil/cli_tree.py), so a new command is covered without editing this
file: each command that prints something takes ``--json`` (its own, or its group's, as
``ctl``'s), unless it is in EXEMPT with the reason. Each long-running command takes hil/logs.py's
-v/-q/--log-level/--log-format, declared by ``log_options`` (not a copy). Then each cheap
command's --json is run on real input and parsed: one document (JSON lines where the help
says so), and an ``id`` on every row of every list of objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.cli_tree import walk_commands
from hil.logs import log_options
from tests.hil.scenario.test_record import KEYS, capture_a_visit

EXEMPT: dict[tuple[str, ...], str] = {
    # Interactive: a full-screen terminal dashboard, nothing for a script to read. A script
    # reads the same figures from `pumpemu truth --json` and `pumpemu ctl --json status`.
    ("watch",): "interactive",
    # Long-running servers: what they print is their log, machine-readable with
    # --log-format json (JSON lines on stderr); their state is read through ctl/truth --json.
    ("serve",): "log lines: --log-format json",
    ("proxy",): "log lines: --log-format json",
    # Its own --format json (one document, the same keys as --hazard-report's rows).
    ("hazards", "report"): "--format json",
}
"""Commands without --json, each with the reason. `wireshark path`, whose output is one path,
is not here: a script should not need to know which commands print bare text."""

LONG_RUNNING = [
    ("serve",),
    ("proxy",),
    ("campaign", "run"),
    ("scenario", "run"),
    ("demo",),
    ("replay",),
]
"""Commands that run for a while and log: each takes -v/-q/--log-level/--log-format."""


TREE = dict(walk_commands(main))
"""Every command and group of pumpemu by path (hil/cli_tree.py, the one walker)."""


def _command(path: tuple[str, ...]) -> tuple[click.Command, list[click.Command]]:
    """The command at ``path`` and the groups above it (outermost first)."""
    return TREE[path], [TREE[path[:n]] for n in range(len(path))]


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


LEAF_PATHS = [path for path, command in TREE.items() if not isinstance(command, click.Group)]


def test_the_walk_finds_the_leaves() -> None:
    # Without the leaves, the parametrized checks below would pass vacuously.
    for path in (("hazards", "list"), ("ctl", "status"), ("fault", "stall"), ("demo",)):
        assert path in LEAF_PATHS


@pytest.mark.parametrize("path", LEAF_PATHS, ids=[" ".join(p) for p in LEAF_PATHS])
def test_every_command_has_json_output(path: tuple[str, ...]) -> None:
    command, groups = _command(path)
    if path in EXEMPT:
        if path == ("hazards", "report"):
            (fmt,) = [p for p in command.params if "--format" in getattr(p, "opts", [])]
            assert isinstance(fmt.type, click.Choice)
            assert "json" in fmt.type.choices
        return
    offered = _options(command).union(*(_options(group) for group in groups))
    assert "--json" in offered, f"pumpemu {' '.join(path)} has no --json (nor is it EXEMPT)"


def test_the_exemptions_are_real_commands() -> None:
    for path in EXEMPT:
        assert path in LEAF_PATHS, path


def _log_option_helps() -> dict[str, str | None]:
    @log_options
    def probe(**_: Any) -> None: ...

    declared = click.command()(probe)
    return {
        param.opts[-1]: getattr(param, "help", None)
        for param in declared.params
        if isinstance(param, click.Option)
    }


@pytest.mark.parametrize("path", LONG_RUNNING, ids=[" ".join(p) for p in LONG_RUNNING])
def test_every_long_running_command_logs_through_hil_logs(path: tuple[str, ...]) -> None:
    command, _groups = _command(path)
    helps = {
        param.opts[-1]: getattr(param, "help", None)
        for param in command.params
        if isinstance(param, click.Option)
    }
    for option, text in _log_option_helps().items():
        assert option in helps, f"pumpemu {' '.join(path)} lacks {option}"
        assert helps[option] == text, f"{option} of {' '.join(path)} is a copy, not log_options"
    assert {"-v", "-q"} <= _options(command)


def _rows_without_id(document: Any, where: str = "$") -> list[str]:
    """Where a list of objects has an object without an ``id`` (JSON paths)."""
    missing: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            missing += _rows_without_id(value, f"{where}.{key}")
    elif isinstance(document, list):
        for n, item in enumerate(document):
            if isinstance(item, dict) and "id" not in item:
                missing.append(f"{where}[{n}]")
            missing += _rows_without_id(item, f"{where}[{n}]")
    return missing


def _run_json(*args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"not one JSON document: {result.stdout[:200]}"
    document = json.loads(lines[0])
    assert _rows_without_id(document) == []
    return document


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "pump.keys"
    document = _run_json("keys", "new", "--serial", "PE-JSON-1", "--out", str(path))
    assert document["file"] == str(path)
    assert document["serial"] == "PE-JSON-1"
    assert [row["id"] for row in document["fingerprints"]] == ["clinician", "patient"]
    return path


@pytest.fixture
def visit(tmp_path: Path) -> tuple[Path, Path]:
    """A captured clinic visit and the key file that opens it."""
    from hil.key_files import write_key_file  # noqa: PLC0415

    capture, keys = tmp_path / "visit.jsonl", tmp_path / "visit.keys"
    capture_a_visit(capture)
    write_key_file(keys, KEYS)
    return capture, keys


def test_hazards_list_json() -> None:
    from hil.hazards import HAZARDS  # noqa: PLC0415

    document = _run_json("hazards", "list")
    assert {row["id"]: row["name"] for row in document["hazards"]} == HAZARDS


def test_fault_list_json_names_every_fault_command() -> None:
    document = _run_json("fault", "list")
    faults, _ = _command(("fault",))
    assert isinstance(faults, click.Group)
    commands = set(faults.list_commands(click.Context(faults))) - {"list"}
    assert {row["id"] for row in document["faults"]} == commands
    for row in document["faults"]:
        for parameter in row["parameters"]:
            assert parameter["flags"], row["id"]
            assert isinstance(parameter["required"], bool)


def test_keys_show_json_matches_keys_new(key_file: Path) -> None:
    document = _run_json("keys", "show", str(key_file))
    assert document["serial"] == "PE-JSON-1"
    assert document["format"] == "pumpemu-keys/1"
    assert document["warning"] is None  # written 0600
    assert len({row["fingerprint"] for row in document["fingerprints"]}) == 2


def test_scenario_check_json_lists_each_run() -> None:
    from hil.scenario.command import builtin_paths  # noqa: PLC0415

    first = builtin_paths()[0]
    document = _run_json("scenario", "check", str(first))
    assert document["files"] == [str(first)]
    assert document["runs"]
    assert all(run["file"] == str(first) for run in document["runs"])


def test_scenario_list_json_is_json_lines_with_ids() -> None:
    result = CliRunner().invoke(main, ["scenario", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) > 1
    assert all(row["id"] for row in rows)


def test_scenario_record_json_says_what_was_written(
    tmp_path: Path, visit: tuple[Path, Path]
) -> None:
    capture, keys = visit
    out = tmp_path / "visit.toml"
    document = _run_json(
        "scenario", "record", str(capture), "--keys", str(keys), "--out", str(out), "--id", "v"
    )
    assert document == {
        "id": "v",
        "capture": str(capture),
        "out": str(out),
        "bytes": out.stat().st_size,
    }
    to_stdout = _run_json("scenario", "record", str(capture), "--keys", str(keys), "--id", "v")
    assert to_stdout["toml"] == out.read_text(encoding="utf-8")


def test_capture_export_json_counts_the_packets(tmp_path: Path, visit: tuple[Path, Path]) -> None:
    capture, _keys = visit
    out = tmp_path / "visit.pcapng"
    document = _run_json("capture", "export", "--pcapng", str(capture), "-o", str(out))
    records = len(capture.read_text(encoding="utf-8").splitlines())
    assert document == {
        "source": str(capture),
        "out": str(out),
        "packets": records,
        "link_type": "LINKTYPE_USER0",
    }
    assert out.stat().st_size > 0


def test_capture_export_json_to_stdout_is_refused(visit: tuple[Path, Path]) -> None:
    capture, _keys = visit
    result = CliRunner().invoke(
        main, ["capture", "export", "--pcapng", str(capture), "-o", "-", "--json"]
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "--json" in result.output


def test_wireshark_path_and_install_json(tmp_path: Path) -> None:
    shipped = Path(_run_json("wireshark", "path")["path"])
    assert shipped.name == "pumpemu.lua"
    assert shipped.is_file()
    plugins = tmp_path / "plugins"
    first = _run_json("wireshark", "install", "--dir", str(plugins))
    assert first == {"path": str(plugins / "pumpemu.lua"), "action": "installed"}
    again = _run_json("wireshark", "install", "--dir", str(plugins))
    assert again["action"] == "unchanged"
    (plugins / "pumpemu.lua").write_text("-- an edit\n", encoding="utf-8")
    forced = _run_json("wireshark", "install", "--dir", str(plugins), "--force")
    assert forced["action"] == "replaced"
    assert (plugins / "pumpemu.lua").read_bytes() == shipped.read_bytes()


def test_a_json_error_is_still_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "show", str(tmp_path / "none.keys"), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
