"""The rules a saved pump must follow before it is resumed (``Pump.restore``).

A snapshot that passed its checksum (or a state file that passed its MAC) is still data from
outside this process: a file written by a buggy or older build, or edited and re-signed by
someone holding the key. Resuming it without checks could start a pump with a prescription
its profile refuses (H11), a negative reservoir, a battery check deadline so far behind that
the first advance loops for ages, or values that crash the serve loop later. So every field
is checked here for its type (an ``int`` is never a ``bool``, a ``bool`` never an ``int``),
its range, and its consistency with the profile and with the pump's time, and anything else
raises ``SnapshotError`` with a one-line message naming the field.

The ranges are those a running pump can reach, never tighter: a state the emulator wrote
itself always passes (tests/emulator/test_snapshot_rules.py checks both directions).
"""

from __future__ import annotations

from typing import Any

from emulator.firmware.interlocks import check_prescription, prescription_digest
from emulator.firmware.nvram import SnapshotError, canonical_json, prescription_from_json
from emulator.fluid.path import FLUID_FIELDS
from emulator.fluid.slugs import MAX_SLUGS
from emulator.plant import MAX_CONCENTRATION_UG_PER_ML, CatheterState, Flow, MotorState
from emulator.profile import Profile
from protocol.device_state import AlarmKind, TherapyState
from protocol.units import MS_PER_S, U32_MAX, U64_MAX

__all__ = [
    "check_pump_record",
    "first_difference",
    "need_bool",
    "need_int",
    "need_keys",
    "need_opt_int",
]

MAX_CLOCK_MS = U64_MAX - 1_000 * 365 * 86_400_000
"""The latest internal time or pump clock a resumed pump may start at: every later stamp
must still fit the log's u64 (a stamp past it would crash the serve loop at the next log
entry), so a pump starts at least 1,000 years before the end of the range."""
MAX_LOG_TEXT = 1 << 20
"""Longest hex blob (a corrupted NV image) a snapshot may carry, in characters."""

_PUMP_KEYS = frozenset(
    {
        "version",
        "profile",
        "now",
        "catheter_length_cm",
        "last_withdrawn",
        "plant",
        "firmware",
        "engine",
        "log",
    }
)
_FIRMWARE_KEYS = frozenset({"record", "staged", "refill_predicted", "nv_fault"})
_RECORD_KEYS = frozenset(
    {
        "state",
        "rx",
        "intent_running",
        "estimate",
        "delivered",
        "bolus_end_ms",
        "bolus_volume",
        "bolus_done",
        "stalled",
        "stall_detected_ms",
        "empty",
        "memory_error",
        "eri_ms",
        "eos_ms",
        "low_reset_done",
        "battery_nah",
        "next_battery_check_ms",
        "lockout_until_ms",
        "patient_grants",
        "clinician_boluses",
        "last_command_id",
        "clock_offset_ms",
        "alarms",
        "totals",
        "battery_read",
        "catheter",
    }
)
_TOTALS_KEYS = frozenset({"delivered_pg", "day", "today_pg", "refill_mark_pg"})
_CATHETER_KEYS = frozenset({"length_cm", "primed"})
_BATTERY_READ_KEYS = frozenset({"ms", "delivered_nl"})
_ENGINE_KEYS = frozenset(
    {
        "stroke_nl",
        "now_ms",
        "basal_rate_nl_per_day",
        "basal_accumulator",
        "bolus_start_ms",
        "bolus_strokes",
        "bolus_duration_ms",
    }
)
_LOG_KEYS = frozenset({"capacity", "next_seq", "entries"})
_BOLUS_STATES = frozenset(
    {TherapyState.CLINICIAN_BOLUS, TherapyState.PATIENT_BOLUS, TherapyState.PRIMING}
)
_NEEDS_RX = frozenset({TherapyState.CONTINUOUS, TherapyState.FLEX, TherapyState.PATIENT_BOLUS})


def first_difference(saved: object, again: object, where: str) -> str:
    """The path of the first value that differs between two JSON values (for a message)."""
    if isinstance(saved, dict) and isinstance(again, dict) and set(saved) == set(again):
        for key in sorted(saved):
            if canonical_json(saved[key]) != canonical_json(again[key]):
                return first_difference(saved[key], again[key], f"{where}.{key}")
    if isinstance(saved, list) and isinstance(again, list) and len(saved) == len(again):
        for i, (a, b) in enumerate(zip(saved, again, strict=True)):
            if canonical_json(a) != canonical_json(b):
                return first_difference(a, b, f"{where}[{i}]")
    return where


def need_keys(where: str, value: object, keys: frozenset[str]) -> dict[str, Any]:
    """``value`` as an object with exactly ``keys``."""
    if not isinstance(value, dict):
        raise SnapshotError(f"{where} must be an object, got {type(value).__name__}")
    if set(value) != keys:
        missing = sorted(keys - set(value))
        unknown = sorted(str(k) for k in set(value) - keys)
        raise SnapshotError(f"{where}: fields differ (missing {missing}, unknown {unknown})")
    return value


def need_int(where: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SnapshotError(f"{where} must be an integer, got {value!r:.40}")
    if not low <= value <= high:
        raise SnapshotError(f"{where} = {value} is out of range {low}..{high}")
    return value


def need_opt_int(where: str, value: object, low: int, high: int) -> int | None:
    return None if value is None else need_int(where, value, low, high)


def need_bool(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SnapshotError(f"{where} must be true or false, got {value!r:.40}")
    return value


def _need_list(where: str, value: object, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise SnapshotError(f"{where} must be a list, got {type(value).__name__}")
    if len(value) > most:
        raise SnapshotError(f"{where} holds {len(value)} items, at most {most} allowed")
    return value


def _need_hex(where: str, value: object, most_chars: int) -> bytes:
    if not isinstance(value, str) or len(value) > most_chars or len(value) % 2:
        raise SnapshotError(f"{where} must be a hex string of at most {most_chars} characters")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise SnapshotError(f"{where} is not hex") from None


def check_pump_record(record: dict[str, Any], profile: Profile) -> None:
    """Check a decoded ``Pump.snapshot()`` record against ``profile`` (already checked by
    the profile rules). SnapshotError names the first field that breaks a rule."""
    need_keys("pump", record, _PUMP_KEYS)
    p = profile
    now = need_int("pump.now", record["now"], 0, MAX_CLOCK_MS)
    capacity = p.reservoir_capacity_nl
    need_int("pump.catheter_length_cm", record["catheter_length_cm"], 1, p.catheter_max_length_cm)
    need_int("pump.last_withdrawn", record["last_withdrawn"], 0, capacity)
    _check_engine(record["engine"], p, now)
    _check_log(record["log"], p)
    _check_plant(record["plant"], p, now)
    _check_firmware(record["firmware"], p, now)


def _check_engine(value: object, p: Profile, now: int) -> None:
    e = need_keys("pump.engine", value, _ENGINE_KEYS)
    need_int("pump.engine.stroke_nl", e["stroke_nl"], p.stroke_nl, p.stroke_nl)
    need_int("pump.engine.now_ms", e["now_ms"], now, now)
    need_int(
        "pump.engine.basal_rate_nl_per_day", e["basal_rate_nl_per_day"], 0, p.rate_max_nl_per_day
    )
    # The accumulator's own bound (below one stroke) is checked by DeliveryEngine.from_state.
    need_int("pump.engine.basal_accumulator", e["basal_accumulator"], 0, U64_MAX)
    need_int("pump.engine.bolus_start_ms", e["bolus_start_ms"], 0, now)
    # No bolus is larger than the reservoir: the firmware refuses one (INSUFFICIENT_RESERVOIR).
    most_strokes = p.reservoir_capacity_nl // p.stroke_nl + 1
    need_int("pump.engine.bolus_strokes", e["bolus_strokes"], 0, most_strokes)
    need_int("pump.engine.bolus_duration_ms", e["bolus_duration_ms"], 0, U32_MAX * MS_PER_S)


def _check_log(value: object, p: Profile) -> None:
    log = need_keys("pump.log", value, _LOG_KEYS)
    need_int("pump.log.capacity", log["capacity"], p.log_capacity, p.log_capacity)
    need_int("pump.log.next_seq", log["next_seq"], 1, U32_MAX + 1)
    entries = _need_list("pump.log.entries", log["entries"], p.log_capacity)
    for i, entry in enumerate(entries):
        if not isinstance(entry, list) or len(entry) != 6:
            raise SnapshotError(f"pump.log.entries[{i}] must be a list of 6 integers")
        for j, item in enumerate(entry):
            need_int(f"pump.log.entries[{i}][{j}]", item, 0, U64_MAX)


_PLANT_ENUMS = {"_motor": MotorState, "_motor_after_change": MotorState}
_FLUID_ENUMS = {"_catheter_state": CatheterState, "_flow_kind": Flow}
_FLUID_BOOLS = frozenset({"_exposed", "_flipped"})


def _check_slugs(where: str, value: object, most_nl: int) -> int:
    """Slugs ``[[volume_nl >= 1, mass_pg >= 0], ...]`` holding at most ``most_nl``."""
    slugs = _need_list(where, value, MAX_SLUGS)
    total = 0
    for i, slug in enumerate(slugs):
        if not isinstance(slug, list) or len(slug) != 2:
            raise SnapshotError(f"{where}[{i}] must be [volume_nl, mass_pg]")
        total += need_int(f"{where}[{i}][0]", slug[0], 1, most_nl)
        need_int(f"{where}[{i}][1]", slug[1], 0, U64_MAX)
    if total > most_nl:
        raise SnapshotError(f"{where} holds {total} nL, more than {most_nl} nL")
    return total


def _check_plant(value: object, p: Profile, now: int) -> None:
    if not isinstance(value, dict):
        raise SnapshotError("pump.plant must be an object")
    for name, field in value.items():
        where = f"pump.plant.{name}"
        if name == "_valve_closed":
            need_bool(where, field)
        elif name == "_fluid":
            _check_fluid(field, p, now)
        elif name in ("_motor_change_ms", "_motor_resume_ms"):
            # A change that fell due was applied by the last update: what is left is future.
            need_opt_int(where, field, now + 1, U64_MAX)
        elif name in _PLANT_ENUMS:
            enum = _PLANT_ENUMS[name]
            need_int(where, field, min(enum), max(enum))
        elif name == "_bias_ppm":
            need_int(where, field, -999_999, 1_000_000)
        elif name == "_bias_base":
            need_int(where, field, -U64_MAX, U64_MAX)
        elif name == "_stroke_nl":
            need_int(where, field, p.stroke_nl, p.stroke_nl)
        else:
            need_int(where, field, 0, U64_MAX)
    if value.get("_now") != now:
        raise SnapshotError("pump.plant._now differs from the pump's time")
    start = value.get("_start_ms")
    if isinstance(start, int) and start > now:
        raise SnapshotError("pump.plant._start_ms is after the pump's time")
    after = value.get("_motor_after_change")
    pending = value.get("_motor_change_ms") is not None
    if pending and after == MotorState.RECOVERING and value.get("_motor_resume_ms") is None:
        # Plant.update would assert at the change: a recovery needs its end.
        raise SnapshotError("pump.plant: a pending recovery needs _motor_resume_ms")


def _check_fluid(value: object, p: Profile, now: int) -> None:
    """The fluid path (emulator/fluid/path.py): slugs, totals, catheter state, restriction."""
    value = need_keys("pump.plant._fluid", value, frozenset(FLUID_FIELDS))
    catheter_most = p.catheter_volume_nl(p.catheter_max_length_cm)
    for name, field in value.items():
        where = f"pump.plant._fluid.{name}"
        if name in _FLUID_BOOLS:
            need_bool(where, field)
        elif name == "_path":
            path = p.internal_path_nl
            if _check_slugs(where, field, path) != path:
                raise SnapshotError(f"{where} must hold the internal path's {path} nL")
        elif name == "_catheter":
            _check_slugs(where, field, catheter_most)
        elif name == "_catheter_volume":
            need_int(where, field, 0, catheter_most)
        elif name in _FLUID_ENUMS:
            enum = _FLUID_ENUMS[name]
            need_int(where, field, min(enum), max(enum))
        elif name in ("_flow_ppm", "_leak_ppm"):
            need_int(where, field, 0, 1_000_000)
        elif name in ("_reservoir", "_res_segment_nl"):
            need_int(where, field, 0, p.reservoir_capacity_nl)
        elif name == "_retained":
            need_int(where, field, 0, p.catheter_compliance_nl)
        elif name == "_conc":
            need_int(where, field, 0, MAX_CONCENTRATION_UG_PER_ML)
        else:
            need_int(where, field, 0, U64_MAX)
    _check_flow(value, now)


def _check_flow(value: dict[str, Any], now: int) -> None:
    """A flow restriction the catheter model can evaluate (emulator/fluid/catheter.py)."""
    kind, span, closed = (value.get(k) for k in ("_flow_kind", "_flow_span_ms", "_flow_closed_ms"))
    w = "pump.plant._fluid."
    start = value.get("_flow_start_ms")
    if isinstance(start, int) and start > now:
        raise SnapshotError(f"{w}_flow_start_ms is after the pump's time")
    if kind in (Flow.GROWING, Flow.KINKED) and not (isinstance(span, int) and span >= 1):
        raise SnapshotError(f"{w}_flow_span_ms must be >= 1 for a mass or a kink")
    if kind == Flow.KINKED and isinstance(closed, int) and isinstance(span, int) and closed > span:
        raise SnapshotError(f"{w}_flow_closed_ms must be <= _flow_span_ms")
    catheter = value.get("_catheter")
    volume = value.get("_catheter_volume")
    if isinstance(catheter, list) and isinstance(volume, int):
        held = sum(s[0] for s in catheter if isinstance(s, list) and s and isinstance(s[0], int))
        if held > volume:
            raise SnapshotError(f"{w}_catheter holds more than its dead volume")


def _check_firmware(value: object, p: Profile, now: int) -> None:
    fw = need_keys("pump.firmware", value, _FIRMWARE_KEYS)
    r = need_keys("pump.firmware.record", fw["record"], _RECORD_KEYS)
    w = "pump.firmware.record."
    capacity = p.reservoir_capacity_nl
    state = TherapyState(need_int(w + "state", r["state"], min(TherapyState), max(TherapyState)))
    rx = prescription_from_json(r["rx"])
    if rx is not None:
        refused = check_prescription(p, rx)
        if refused is not None:
            raise SnapshotError(
                f"{w}rx: the profile refuses this prescription ({refused.code.name}, "
                f"field {refused.field.name}, limit {refused.limit})"
            )
    if state in _NEEDS_RX and rx is None:
        raise SnapshotError(f"{w}state {state.name} needs a prescription")
    for name in ("intent_running", "stalled", "empty", "memory_error", "low_reset_done"):
        need_bool(w + name, r[name])
    # The estimate may fall below zero by what one step counted past empty, never further.
    need_int(w + "estimate", r["estimate"], -capacity, capacity)
    need_int(w + "delivered", r["delivered"], 0, U64_MAX)
    bolus_end = need_opt_int(w + "bolus_end_ms", r["bolus_end_ms"], 0, U64_MAX)
    if state in _BOLUS_STATES and bolus_end is None:
        raise SnapshotError(f"{w}state {state.name} needs bolus_end_ms")
    need_int(w + "bolus_volume", r["bolus_volume"], 0, capacity)
    need_int(w + "bolus_done", r["bolus_done"], 0, capacity // p.stroke_nl + 1)
    need_int(w + "stall_detected_ms", r["stall_detected_ms"], 0, now)
    need_opt_int(w + "eri_ms", r["eri_ms"], 0, U64_MAX)
    need_opt_int(w + "eos_ms", r["eos_ms"], 0, U64_MAX)
    need_int(w + "battery_nah", r["battery_nah"], 0, p.battery_capacity_nah)
    # The battery check catches up one interval at a time: a deadline far behind ``now``
    # would make the first advance loop for ages, so it must be the next one due.
    interval = p.battery_check_interval_s * MS_PER_S
    need_int(w + "next_battery_check_ms", r["next_battery_check_ms"], now + 1, now + interval)
    lockout_most = now + p.patient_bolus_lockout_s.high * MS_PER_S
    need_int(w + "lockout_until_ms", r["lockout_until_ms"], 0, lockout_most)
    grants = _need_list(w + "patient_grants", r["patient_grants"], 255)
    for i, t in enumerate(grants):
        need_int(f"{w}patient_grants[{i}]", t, 0, now)
    boluses = _need_list(w + "clinician_boluses", r["clinician_boluses"], 100_000)
    for i, item in enumerate(boluses):
        if not isinstance(item, list) or len(item) != 2:
            raise SnapshotError(f"{w}clinician_boluses[{i}] must be [time, volume]")
        need_int(f"{w}clinician_boluses[{i}][0]", item[0], 0, now)
        need_int(f"{w}clinician_boluses[{i}][1]", item[1], 0, capacity)
    need_opt_int(w + "last_command_id", r["last_command_id"], 1, U64_MAX)
    # The pump clock (now + offset) is never negative and leaves room for later stamps.
    need_int(w + "clock_offset_ms", r["clock_offset_ms"], -now, MAX_CLOCK_MS - now)
    _check_alarms(r["alarms"])
    _check_delivery_beliefs(r, p, now)
    _check_volatile(fw, p, now)


def _check_delivery_beliefs(r: dict[str, Any], p: Profile, now: int) -> None:
    """The issue-12 beliefs: delivered mass totals, the battery reading's time, the
    catheter the pump was told of."""
    w = "pump.firmware.record."
    t = need_keys(w + "totals", r["totals"], _TOTALS_KEYS)
    total = need_int(w + "totals.delivered_pg", t["delivered_pg"], 0, U64_MAX)
    need_int(w + "totals.day", t["day"], 0, MAX_CLOCK_MS)
    need_int(w + "totals.today_pg", t["today_pg"], 0, total)
    need_int(w + "totals.refill_mark_pg", t["refill_mark_pg"], 0, total)
    b = need_keys(w + "battery_read", r["battery_read"], _BATTERY_READ_KEYS)
    need_int(w + "battery_read.ms", b["ms"], 0, now)
    need_int(w + "battery_read.delivered_nl", b["delivered_nl"], 0, r["delivered"])
    c = need_keys(w + "catheter", r["catheter"], _CATHETER_KEYS)
    need_int(w + "catheter.length_cm", c["length_cm"], 1, p.catheter_max_length_cm)
    need_bool(w + "catheter.primed", c["primed"])


def _check_alarms(value: object) -> None:
    w = "pump.firmware.record."
    alarms = _need_list(w + "alarms", value, len(AlarmKind))
    kinds: set[int] = set()
    for i, item in enumerate(alarms):
        if not isinstance(item, list) or len(item) != 3:
            raise SnapshotError(f"{w}alarms[{i}] must be [kind, since_ms, acknowledged]")
        kinds.add(need_int(f"{w}alarms[{i}][0]", item[0], min(AlarmKind), max(AlarmKind)))
        need_int(f"{w}alarms[{i}][1]", item[1], 0, U64_MAX)
        need_bool(f"{w}alarms[{i}][2]", item[2])
    if len(kinds) != len(alarms):
        raise SnapshotError(f"{w}alarms: an alarm kind appears twice")


def _check_volatile(fw: dict[str, Any], p: Profile, now: int) -> None:
    staged = fw["staged"]
    if staged is not None:
        if not isinstance(staged, list) or len(staged) != 3:
            raise SnapshotError("pump.firmware.staged must be [prescription, digest, expires]")
        staged_rx = prescription_from_json(staged[0])
        if staged_rx is None or check_prescription(p, staged_rx) is not None:
            raise SnapshotError("pump.firmware.staged: the profile refuses this prescription")
        digest = _need_hex("pump.firmware.staged[1]", staged[1], 64)
        if digest != prescription_digest(staged_rx):
            raise SnapshotError("pump.firmware.staged[1] is not the staged prescription's digest")
        if staged[2] is not None:  # None: the lifetime runs on the device's link timeline
            need_int("pump.firmware.staged[2]", staged[2], 0, now + p.stage_lifetime_s * MS_PER_S)
    need_opt_int(
        "pump.firmware.refill_predicted", fw["refill_predicted"], 0, p.reservoir_capacity_nl
    )
    if fw["nv_fault"] is not None:
        _need_hex("pump.firmware.nv_fault", fw["nv_fault"], MAX_LOG_TEXT)
