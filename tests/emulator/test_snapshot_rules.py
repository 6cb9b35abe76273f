"""emulator/snapshot_rules.py: a saved pump whose fields break a rule is refused with one
SnapshotError line naming the field, before it can loop, crash or run a refused therapy."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from emulator.device import DEVICE_STATE_MAGIC, PumpDevice
from emulator.faults import CatheterErosion, CatheterOcclusion, InflammatoryMass, PumpFlip
from emulator.firmware.nvram import SnapshotError, decode_record, encode_record
from emulator.pump import SNAPSHOT_MAGIC, Pump
from protocol.messages import ClinicianBolus, StagePrescription
from tests.emulator.test_device import KEYS, RX, acked, ok, pair


def programmed() -> Pump:
    pump = Pump("peristaltic-20")
    pump.program(RX, command_id=1)
    pump.advance(3_600)
    return pump


def refused(pump: Pump, change: Callable[[dict[str, Any]], None]) -> str:
    record = decode_record(SNAPSHOT_MAGIC, pump.snapshot())
    change(record)
    with pytest.raises(SnapshotError) as error:
        Pump.restore(encode_record(SNAPSHOT_MAGIC, record))
    message = str(error.value)
    assert "\n" not in message
    return message


def firmware(record: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = record["firmware"]["record"]
    return result


def test_a_battery_check_deadline_far_behind_is_refused_not_looped_over() -> None:
    # Found by reading Firmware._battery_check: it catches up one interval per loop turn, so
    # a deadline at 0 with the pump at year 30 would be 15 million turns at the first step.
    pump = programmed()
    pump.advance_to(30 * 365 * 86_400_000)
    message = refused(pump, lambda r: firmware(r).update(next_battery_check_ms=0))
    assert "next_battery_check_ms" in message


def test_a_prescription_the_profile_refuses_is_refused() -> None:
    def too_fast(record: dict[str, Any]) -> None:
        firmware(record)["rx"]["steps"] = [[0, 10**9]]

    assert "the profile refuses this prescription (RATE_ABOVE_MAX" in refused(
        programmed(), too_fast
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: firmware(r).update(estimate=True), "estimate"),
        (lambda r: firmware(r).update(stalled=1), "stalled"),
        (lambda r: firmware(r).update(battery_nah=-5), "battery_nah"),
        (lambda r: firmware(r).update(patient_grants=list(range(300))), "patient_grants"),
        (lambda r: firmware(r).update(alarms=[[1, 0, False], [1, 5, True]]), "alarms"),
        (lambda r: r.update(now=2**70), "pump.now"),
        (lambda r: firmware(r).update(clock_offset_ms=2**64 - 5), "clock_offset_ms"),
        (lambda r: r["plant"].update(_now=r["now"] + 1), "pump.plant._now"),
        (lambda r: r["engine"].update(basal_rate_nl_per_day=10**8), "basal_rate"),
        (lambda r: r["log"].update(capacity=10**9), "pump.log.capacity"),
        (lambda r: r["profile"].update(battery_check_interval_s=1), "check_interval_s"),
        (lambda r: r["profile"].update(surprise=1), "unknown ['surprise']"),
        (lambda r: firmware(r)["rx"].update(conc=True), "conc"),
        (lambda r: r.update(extra={}), "fields differ"),
        (lambda r: r["plant"]["_fluid"].update(_path=[[1, 5]]), "pump.plant._fluid._path"),
        (
            lambda r: r["plant"]["_fluid"].update(_catheter=[[0, 5]]),
            "pump.plant._fluid._catheter[0][0]",
        ),
        (
            lambda r: r["plant"]["_fluid"].update(_catheter=[[286_001, 5]]),
            "pump.plant._fluid._catheter",
        ),
        (
            lambda r: r["plant"]["_fluid"].update(_catheter=[[1, 1]] * 65),
            "pump.plant._fluid._catheter",
        ),
        (
            lambda r: r["plant"]["_fluid"].update(_catheter=[[1, -1]]),
            "pump.plant._fluid._catheter[0][1]",
        ),
        (lambda r: r["plant"]["_fluid"].update(_catheter="slugs"), "pump.plant._fluid._catheter"),
        (lambda r: r["plant"]["_fluid"].update(_flow_kind=3, _flow_span_ms=0), "_flow_span_ms"),
        (lambda r: r["plant"]["_fluid"].update(_flow_kind=9), "pump.plant._fluid._flow_kind"),
        (lambda r: r["plant"]["_fluid"].update(_flow_start_ms=r["now"] + 1), "_flow_start_ms"),
        (lambda r: r["plant"]["_fluid"].update(_retained=10**9), "pump.plant._fluid._retained"),
        (lambda r: r["plant"]["_fluid"].update(_flipped=1), "pump.plant._fluid._flipped"),
        (lambda r: r["plant"]["_fluid"].update(_conc=10**7), "pump.plant._fluid._conc"),
        (lambda r: r["plant"].update(_fluid=[]), "pump.plant._fluid must be an object"),
        (lambda r: r["plant"]["_fluid"].pop("_dry"), "pump.plant._fluid: fields differ"),
        (
            lambda r: r["plant"]["_fluid"].update(_res_segment_pg=-1),
            "pump.plant._fluid._res_segment_pg",
        ),
        # issue 12: delivered totals, the battery reading's time, the catheter belief
        (lambda r: firmware(r)["totals"].update(today_pg=10**20), "totals.today_pg"),
        (lambda r: firmware(r)["totals"].update(refill_mark_pg=-1), "totals.refill_mark_pg"),
        (lambda r: firmware(r)["battery_read"].update(ms=r["now"] + 1), "battery_read.ms"),
        (lambda r: firmware(r)["battery_read"].update(delivered_nl=-1), "battery_read.delivered"),
        (lambda r: firmware(r)["catheter"].update(length_cm=0), "catheter.length_cm"),
        (lambda r: firmware(r)["catheter"].update(primed=2), "catheter.primed"),
        (lambda r: firmware(r).pop("catheter"), "catheter"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_rule_names_its_field(change: Callable[[dict[str, Any]], None], field: str) -> None:
    assert field in refused(programmed(), change)


def device_record() -> dict[str, Any]:
    tp = pair(program=True)
    acked(tp, ClinicianBolus(command_id=7, dose_nl=2_000, duration_s=60))
    ok(tp, StagePrescription(prescription=RX))
    return decode_record(DEVICE_STATE_MAGIC, tp.device.snapshot())


def device_refused(change: Callable[[dict[str, Any]], None]) -> str:
    record = device_record()
    change(record)
    with pytest.raises(SnapshotError) as error:
        PumpDevice.restore(
            encode_record(DEVICE_STATE_MAGIC, record), KEYS, random.Random(1).randbytes
        )
    return str(error.value)


def test_an_emptied_ledger_behind_a_pump_that_applied_a_command_is_refused() -> None:
    def drop_last(record: dict[str, Any]) -> None:
        record["ledger"]["entries"].append([9, "00" * 32, record["ledger"]["entries"][0][2]])

    assert "ACK is not for command id 9" in device_refused(drop_last)

    def renumber(record: dict[str, Any]) -> None:
        record["pump"]["firmware"]["record"]["last_command_id"] = 3

    assert "last_command_id" in device_refused(renumber)


def test_a_staged_prescription_must_match_its_digest() -> None:
    def other_digest(record: dict[str, Any]) -> None:
        record["pump"]["firmware"]["staged"][1] = "00" * 16

    assert "digest" in device_refused(other_digest)


def test_failed_openings_above_the_limit_are_refused() -> None:
    assert "failed_openings" in device_refused(
        lambda r: r["session"].update(failed_openings=10**6, lockout_left_ms=1)
    )


def test_an_uppercase_hex_ack_is_not_canonical() -> None:
    def upper(record: dict[str, Any]) -> None:
        entry = record["ledger"]["entries"][0]
        entry[2] = entry[2].upper()

    message = device_refused(upper)
    assert "device.ledger.entries[0][2] was altered" in message


def test_a_pump_mid_fault_with_mixed_drug_resumes_exactly() -> None:
    """Every fluid-path field goes through the snapshot: slugs of two concentrations, a
    growing mass, retained drug, a flipped pump, an eroded (exposed) catheter, the CAP
    totals. The twin and the original then run a month apart and agree to the picogram."""
    pump = programmed()
    assert pump.refill_begin().ok
    assert pump.refill_complete(10_000_000, injected_concentration_ug_per_ml=2_500).ok
    pump.advance(6 * 3_600)
    pump.cap_aspirate(50_000)
    pump.cap_inject(10_000, 7_000)
    pump.inject(CatheterOcclusion())
    pump.advance(86_400)
    pump.inject(PumpFlip())
    pump.inject(InflammatoryMass(grow_s=14 * 86_400, delivered_ppm=100_000))
    twin = Pump.restore(pump.snapshot())
    assert twin.plant_truth() == pump.plant_truth()
    assert len(pump.plant_truth().catheter_slugs) > 1
    for p in (pump, twin):
        p.advance(30 * 86_400)
        p.inject(CatheterErosion(ppm=5_000))
        p.advance(86_400)
    assert twin.plant_truth() == pump.plant_truth()
    assert twin.plant_truth().exposed
    assert twin.plant_truth().balance_pg() == 0
    assert twin.snapshot() == pump.snapshot()
