"""What the firmware believes it delivered, in volume and mass (docs/protocol.md
STATUS_DETAIL).

Belief, not truth: a stroke the firmware counted as delivered (its sensors saw nothing
wrong) at the concentration the running prescription holds. A leaking catheter or a
pocket fill is invisible here, as on a real pump (H1, H13, H17); plant truth is in
``Pump.plant_truth()``.

- ``delivered_pg``: every counted stroke since power-on, x the concentration then;
- today: since the start of the current pump-clock day (local midnight, docs/protocol.md
  section 10.1). A stroke at exactly 00:00:00.000 belongs to the day it starts. The pump
  splits a step that crosses midnight exactly (the engine says how many strokes fell before
  it), so no stroke is counted on the wrong day. A SET_CLOCK onto another day starts the
  day's count at 0; one within the same day keeps it;
- since the last refill: since the last REFILL_COMPLETE (since power-on before the first).

A stroke counted with no prescription (a priming bolus before the first COMMIT) adds its
volume but no mass: the pump knows no concentration for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.units import MS_PER_DAY

__all__ = ["DeliveryTotals", "day_of"]


def day_of(local_ms: int) -> int:
    """The pump-clock day (days since 1970-01-01 local) holding ``local_ms``."""
    return local_ms // MS_PER_DAY


@dataclass(slots=True)
class DeliveryTotals:
    delivered_pg: int = 0
    day: int = 0
    """The pump-clock day ``today_pg`` counts."""
    today_pg: int = 0
    refill_mark_pg: int = 0
    """``delivered_pg`` at the last REFILL_COMPLETE."""

    def roll_to(self, day: int) -> None:
        """Start counting ``day`` (a new day: nothing delivered in it yet)."""
        if day != self.day:
            self.day = day
            self.today_pg = 0

    def add(self, mass_pg: int) -> None:
        self.delivered_pg += mass_pg
        self.today_pg += mass_pg

    def mark_refill(self) -> None:
        self.refill_mark_pg = self.delivered_pg

    def today_at(self, day: int) -> int:
        """Mass counted on pump-clock day ``day``: 0 if it has not been rolled to yet."""
        return self.today_pg if day == self.day else 0

    @property
    def since_refill_pg(self) -> int:
        return self.delivered_pg - self.refill_mark_pg

    def to_json(self) -> dict[str, int]:
        return {
            "delivered_pg": self.delivered_pg,
            "day": self.day,
            "today_pg": self.today_pg,
            "refill_mark_pg": self.refill_mark_pg,
        }

    @classmethod
    def from_json(cls, value: Any) -> DeliveryTotals:
        """KeyError/TypeError/ValueError on a malformed record (the caller wraps them)."""
        return cls(
            int(value["delivered_pg"]),
            int(value["day"]),
            int(value["today_pg"]),
            int(value["refill_mark_pg"]),
        )
