"""hil/hazards.py is docs/hazards.md's table, ID for ID and name for name."""

from __future__ import annotations

import re
from pathlib import Path

from hil.hazards import HAZARDS, is_hazard_id

DOC = Path(__file__).resolve().parents[2] / "docs" / "hazards.md"
ROW = re.compile(r"^\| (H\d+|C\d+) \| ([^|]+?) \|", re.MULTILINE)


def test_the_catalogue_is_the_documents_table() -> None:
    rows = dict(ROW.findall(DOC.read_text()))
    assert rows == HAZARDS
    assert list(rows) == list(HAZARDS)  # the document's order


def test_is_hazard_id() -> None:
    assert is_hazard_id("H17")
    assert is_hazard_id("C1")
    assert not is_hazard_id("H18")
    assert not is_hazard_id("h1")
    assert not is_hazard_id(5)
