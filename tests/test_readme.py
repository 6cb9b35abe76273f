"""README.md's quickstart is a promise: two commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quickstart.*?```(?:sh|bash|console)?\n(.*?)```", text, re.DOTALL)
    assert block, "README.md has no Quickstart code block"
    lines = block.group(1).splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_quickstart_is_exactly_two_commands() -> None:
    commands = quickstart_commands()
    assert len(commands) == 2, commands
    assert commands[0].startswith("python3 ")
    assert commands[1].startswith("python3 ")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert quickstart_commands()[1] in ci


def python_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_readme_python_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    examples = python_examples()
    assert examples, "README.md shows no Python example"
    for source in examples:
        exec(compile(source, "README.md", "exec"), {})  # our own documentation, run as a test
    assert "SUSPENDED_BY_ALARM" in capsys.readouterr().out
