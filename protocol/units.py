"""Integer units used on the wire and throughout the pump model (docs/architecture.md principle 4).

A float never touches a dose. Every quantity is an integer in one of these units, and every
conversion between them is exact integer arithmetic:

- volume: nanolitres (nL). 1 mL = 1_000_000 nL.
- volume rate: nanolitres per day (nL/day). 1 mL/day = 1_000_000 nL/day.
- concentration: micrograms per millilitre (ug/mL).
- mass: picograms (pg). ``mass_pg = volume_nl * concentration_ug_per_ml`` exactly, because
  1 nL x 1 ug/mL = 1e-6 mL x 1 ug/mL = 1e-6 ug = 1 pg. Daily masses reach 1e10 pg and more,
  so mass fields are unsigned 64-bit on the wire.
- durations: whole seconds (s) on the wire; the pump core counts milliseconds (ms).
- instants: milliseconds since the pump's epoch (ms), unsigned 64-bit on the wire.
"""

from __future__ import annotations

NL_PER_UL = 1_000
NL_PER_ML = 1_000_000
PG_PER_UG = 1_000_000
PG_PER_MG = 1_000_000_000
MS_PER_S = 1_000
S_PER_MIN = 60
S_PER_HOUR = 3_600
S_PER_DAY = 86_400
S_PER_WEEK = 7 * S_PER_DAY
MS_PER_HOUR = S_PER_HOUR * MS_PER_S
MS_PER_DAY = S_PER_DAY * MS_PER_S

U8_MAX = 0xFF
U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


def mass_pg(volume_nl: int, concentration_ug_per_ml: int) -> int:
    """Drug mass in a volume of solution, exactly, in picograms."""
    return volume_nl * concentration_ug_per_ml


PUMP_CLOCK_MAX_MS = 253_402_300_799_999
"""The latest pump clock SET_CLOCK accepts: 9999-12-31 23:59:59.999, the last instant a
four-digit ISO 8601 year names. Far enough for any rig, and it leaves the clock, the log
stamps and every prediction on it room in a u64 for hundreds of millions of years."""
