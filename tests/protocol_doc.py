"""docs/protocol.md read as data: its sections, its tables and its vector blocks.

The document is normative, so the tests take what they check from it rather than from a
copy: the vectors (tests/protocol/test_docs_vectors.py), the refusal table of section 12
(tests/emulator/test_refusal_conformance.py), the examples a built-in profile must answer
(tests/emulator/test_device_doc_examples.py). One parser, shared.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from protocol import device_state, messages, prescription, refusal

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
TEXT = DOC.read_text(encoding="utf-8")
_BLOCK = re.compile(r"```(vector|digest)\n(.*?)```", re.DOTALL)
_HEADING = re.compile(r"^## (\d+)\. ", re.MULTILINE)

# The names a vector's message expression may use: messages, records and enums, nothing else.
NAMESPACE: dict[str, Any] = {
    name: value
    for module in (messages, prescription, device_state, refusal)
    for name, value in vars(module).items()
    if isinstance(value, type) and not name.startswith("_")
}
NAMESPACE.update({"bytes": bytes, "frozenset": frozenset, "None": None})


def section(number: int) -> str:
    """The text of section ``number`` (``## 12. ...``) up to the next ``## `` heading."""
    starts = {int(m.group(1)): m.start() for m in _HEADING.finditer(TEXT)}
    begin = starts[number]
    later = [at for at in starts.values() if at > begin]
    return TEXT[begin : min(later, default=len(TEXT))]


def table(text: str) -> list[dict[str, str]]:
    """The first markdown table in ``text``: one dict per row, keyed by the header cells.

    Cells are stripped; backticks are kept (a test decides what they mean). A row with a
    different number of cells than the header is an error, not a silently short row.
    """
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    header = _cells(lines[start])
    if not re.fullmatch(r"\|(\s*-+\s*\|)+", lines[start + 1].replace(" ", "")):
        raise ValueError(f"no separator row under {lines[start]!r}")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        if len(cells) != len(header):
            raise ValueError(f"{len(cells)} cells, header has {len(header)}: {line!r}")
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


def blocks(tag: str) -> list[dict[str, str]]:
    """Every fenced block tagged ``tag`` (``vector``, ``digest``) as its key: value lines."""
    found = []
    for kind, body in _BLOCK.findall(TEXT):
        if kind == tag:
            lines = (line.split(": ", 1) for line in body.strip().splitlines())
            found.append({key.strip(): value.strip() for key, value in lines})
    return found


def vector(name: str) -> dict[str, str]:
    (found,) = [v for v in blocks("vector") if v["name"] == name]
    return found


def evaluate(expression: str) -> Any:
    """A vector's ``message`` expression as a value. Only names and calls from NAMESPACE:
    parse first and refuse anything else."""
    tree = ast.parse(expression, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in NAMESPACE:
            raise AssertionError(f"vector uses unknown name {node.id!r}")
    return eval(compile(tree, "<vector>", "eval"), {"__builtins__": {}}, NAMESPACE)
