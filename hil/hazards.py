"""The hazard IDs of docs/hazards.md, as data: what test markers and scenarios may name.

H1-H17 are the pump's hazards (docs/domain.md section 3), C1-C5 the link's and the
protocol's. The pytest plugin (hil/pytest_plugin.py) checks every ``hazard`` marker against
this table, and tests/hil/test_hazards_catalogue.py checks the table against the document,
so an installed pumpemu knows the IDs without the source tree.
"""

from __future__ import annotations

__all__ = ["HAZARDS", "is_hazard_id"]

HAZARDS: dict[str, str] = {
    "H1": "pocket fill",
    "H2": "catheter access port injection",
    "H3": "priming bolus",
    "H4": "feedthrough short: stall or low-battery reset",
    "H5": "permanent motor stall",
    "H6": "early battery depletion",
    "H7": "wrong replacement date shown",
    "H8": "memory error",
    "H9": "flex mis-entry",
    "H10": "wrong refill volume entered",
    "H11": "misprogramming overdose",
    "H12": "stall-then-restart overdose",
    "H13": "occlusion",
    "H14": "MRI",
    "H15": "valve-gated pump and a magnet",
    "H16": "withdrawal at low residual",
    "H17": "catheter kink/leak/disconnect",
    "C1": "reply lost after a bolus was applied",
    "C2": "corrupted or truncated frame",
    "C3": "replayed command",
    "C4": "programming without authority",
    "C5": "session cut mid-programming",
}
"""Hazard ID -> its name in docs/hazards.md, in the document's order."""


def is_hazard_id(value: object) -> bool:
    return isinstance(value, str) and value in HAZARDS
