"""The dashboard's keys: a few common plant faults and manual time (docs/watch.md, "Keys").

Each binding is one control API request (docs/serve.md), sent as ``pumpemu fault`` and
``pumpemu time advance`` would send it. The parameters are chosen to show the firmware's
reaction quickly: a full occlusion and a 25 % leak the firmware cannot sense (H13, H17), a
motor stall it senses at its next stroke (H5), a battery drain of 100 mAh of the 700 mAh
cell (H4, H6), and a memory corruption that sends it to its safe state at once (H8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["KEY_ACTIONS", "QUIT_KEY", "KeyAction"]


@dataclass(frozen=True, slots=True)
class KeyAction:
    """One key: what the footer says, and the control request it sends."""

    key: str
    label: str
    op: str
    fields: tuple[tuple[str, Any], ...]

    @property
    def request(self) -> dict[str, Any]:
        return {"op": self.op, **dict(self.fields)}

    @property
    def action(self) -> str:
        """The textual action name bound to the key."""
        return f"send('{self.key}')"


KEY_ACTIONS: tuple[KeyAction, ...] = (
    KeyAction("o", "occlusion", "fault", (("fault", "occlusion"),)),
    KeyAction("l", "leak 25%", "fault", (("fault", "leak"), ("ppm", 250_000))),
    KeyAction("s", "motor stall", "fault", (("fault", "stall"),)),
    KeyAction("b", "battery -100 mAh", "fault", (("fault", "battery-drain"), ("nah", 100_000_000))),
    KeyAction("c", "memory corrupt", "fault", (("fault", "memory-corruption"),)),
    KeyAction("r", "repair catheter", "fault", (("fault", "repair"), ("part", "catheter"))),
    KeyAction("m", "repair motor", "fault", (("fault", "repair"), ("part", "motor"))),
    KeyAction("t", "+1 h", "advance", (("duration", "1h"),)),
    KeyAction("d", "+1 d", "advance", (("duration", "1d"),)),
)

QUIT_KEY = "q"
