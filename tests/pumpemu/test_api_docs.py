"""docs/api.md: every example runs and prints what the page says; the facade re-exports
exactly what it documents; no program outside the CLI imports a command module."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

import pumpemu

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"

_FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str, str | None, bool]]:
    """(id, code, expected output or None, needs e2e) for each python block of the page; a
    python block's output is the ``text`` block that comes next, before any other code."""
    blocks = [
        (m.group(1), m.group(2).split(), m.group(3)) for m in _FENCE.finditer(API_DOC.read_text())
    ]
    found: list[tuple[str, str, str | None, bool]] = []
    for index, (lang, flags, code) in enumerate(blocks):
        if lang != "python":
            continue
        after = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = after[2] if after is not None and after[0] == "text" else None
        found.append((f"example-{len(found) + 1}", code, expected, "e2e" in flags))
    return found


EXAMPLES = examples()


def _params() -> list[object]:
    return [
        pytest.param(code, expected, id=name, marks=[pytest.mark.e2e] if e2e else [])
        for name, code, expected, e2e in EXAMPLES
    ]


@pytest.mark.parametrize(("code", "expected"), _params())
def test_the_example_runs_and_prints_what_the_page_says(code: str, expected: str | None) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(API_DOC), "exec"), {"__name__": "__api_example__"})
    if expected is not None:
        assert out.getvalue() == expected


def test_the_page_has_examples_with_their_output() -> None:
    assert len(EXAMPLES) >= 4
    assert all(expected is not None for _name, _code, expected, _e2e in EXAMPLES)


def test_every_exported_name_is_documented_and_exists() -> None:
    text = API_DOC.read_text()
    for name in pumpemu.__all__:
        assert hasattr(pumpemu, name), name
        assert f"`{name}" in text, f"{name} is exported but docs/api.md never names it"


def _is_command_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "hil" and (parts[-1].endswith("_command") or parts[-1] in ("command", "cli"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


LIBRARY_DIRS = ("protocol", "emulator", "hil", "pumpemu")


def test_nothing_outside_the_cli_imports_a_command_module() -> None:
    """Command modules are the CLI's; a library module (and so a program written against
    the API) never depends on one (docs/api.md, "What is stable")."""
    offenders = []
    for top in LIBRARY_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if _is_command_module(module):
                continue
            offenders += [f"{module} imports {m}" for m in _imports(path) if _is_command_module(m)]
    assert offenders == []
