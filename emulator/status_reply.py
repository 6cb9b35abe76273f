"""The STATUS reply's payload built from a plan: the pump's answer to READ_STATUS, the
request a programmer sends most (a poll, and the read that resolves every uncertain
command, C1), without a ``FirmwareStatus`` or a ``Status`` built on the way.

``PumpDevice._status`` is the reference: it takes the whole firmware status, builds the
``Status`` message (which checks every field) and the codec encodes it. This plan reads
only the seven figures STATUS carries (``Pump.status_figures``), converts them as
``_status`` does (rates and volumes capped at u32, the battery as a whole percentage of the
profile's capacity, the alarms as their bitmap) and packs them with one ``struct`` derived
from the layout protocol/wire.py declares, so the layout stays single-sourced. Like the
codec's fast plans (docs/architecture.md, "The codec's two paths") it never decides
anything: a figure outside its field's range gives None, and the device answers through the
reference, whose ``Status`` raises as before. tests/emulator/test_status_reply.py checks
that the two give the same bytes over pumps driven through therapy, boluses, alarms, clock
changes and battery drain. docs/serve.md, "The serve loop's cost", says what it saves.
"""

from __future__ import annotations

import struct

from emulator.pump import Pump
from protocol import wire
from protocol.device_state import TherapyState
from protocol.enum_values import member_bits
from protocol.messages import Opcode
from protocol.units import U32_MAX, U64_MAX

_FIELDS = (
    "state",
    "rate_nl_per_day",
    "reservoir_nl",
    "battery_percent",
    "active_alarms",
    "last_command_id",
    "pump_time_ms",
)
"""The order this plan packs in; checked against wire.py's STATUS layout at import."""


def _status_struct() -> struct.Struct:
    layout = wire.flat_layout(Opcode.STATUS.value)
    if layout is None or tuple(name for name, _ in layout) != _FIELDS:
        raise RuntimeError(f"STATUS layout {layout!r} is not the plan's fields {_FIELDS}")
    return struct.Struct("<" + "".join(code for _, code in layout))


_pack = _status_struct().pack


def status_payload(pump: Pump) -> bytes | None:
    """The STATUS payload ``PumpDevice._status`` would encode now, or None if a figure is
    outside its field (then the reference decides)."""
    state, rate, reservoir, battery_nah, alarms, last_command_id, pump_time_ms = (
        pump.status_figures()
    )
    rate = min(rate, U32_MAX)
    reservoir = min(reservoir, U32_MAX)
    percent = min(100, max(0, battery_nah * 100 // pump.profile.battery_capacity_nah))
    bitmap = member_bits(alarms)
    last = last_command_id or 0
    if (
        state.__class__ is not TherapyState
        or rate < 0
        or reservoir < 0
        or bitmap > U32_MAX
        or not 0 <= last <= U32_MAX
        or not 0 <= pump_time_ms <= U64_MAX
    ):
        return None
    return _pack(state, rate, reservoir, percent, bitmap, last, pump_time_ms)


__all__ = ["status_payload"]
