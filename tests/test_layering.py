"""Imports point one way: pumpemu -> hil -> emulator -> protocol (docs/architecture.md, "Layers
and imports").

protocol is sans-IO: it imports neither emulator nor hil, no I/O module and no time or
randomness source. emulator never imports hil and never reads a clock or does I/O either; only
hil's thin shells do. The check reads every module's import statements with ``ast``, so a
lazy import inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IO_AND_TIME = {
    "serial", "socket", "threading", "asyncio", "time", "random", "selectors", "select",
    "subprocess", "multiprocessing", "os", "pty", "tty", "termios", "signal", "secrets",
    "datetime", "hil",
}  # fmt: skip
FORBIDDEN: dict[str, set[str]] = {
    "protocol": IO_AND_TIME | {"emulator", "io", "pathlib", "shutil", "tempfile"},
    # The emulator core takes ``now`` as an argument. Reading its own profile data files
    # (importlib.resources, pathlib) is allowed; a clock, a socket or a thread is not.
    "emulator": IO_AND_TIME,
    # The facade sits on top of everything: nothing imports it, and it imports no layer's
    # command modules (tests/pumpemu/test_api_docs.py).
    "hil": {"pumpemu"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN), ids=sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    files = modules(package)
    assert files, f"{package}/ has no modules"
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The checker itself must be able to fail, or the test above proves nothing.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import time\n    from serial import Serial\n")
    assert {"time", "serial"} <= imported_roots(sample)
