"""The documents cite only what the repository holds (issue 11): a programmer team gets the
repository, so a citation of a file outside it is a dead end in a normative text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", ROOT / "pyproject.toml"])
OUTSIDE = re.compile(r"\b(DESIGN\.md|DOMAIN\.md|TECH-NOTES)\b")
"""Design notes that lived beside the repository, never in it."""
PATH = re.compile(
    r"(?<![\w/.-])((?:docs|protocol|emulator|hil|tests|benchmarks)/[\w./*-]*\w)(?![\w/])"
)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_document_cites_only_files_in_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert not OUTSIDE.findall(text)
    cited = set(PATH.findall(text))
    missing = sorted(p for p in cited if not any(ROOT.glob(p)))
    assert missing == [], missing


def test_the_path_pattern_finds_a_citation() -> None:
    assert PATH.findall("see docs/protocol.md section 12 and emulator/profiles/*.toml.") == [
        "docs/protocol.md",
        "emulator/profiles/*.toml",
    ]
