"""Plant truth beside firmware belief, as rows: what ``pumpemu truth``, the control API's
``truth`` op and its ``status`` event show (docs/serve.md, "truth"; docs/architecture.md
principle 3: the firmware knows only what its sensors tell it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.firmware.firmware import FirmwareStatus
from emulator.plant import PlantTruth
from hil.capture import fields_of

__all__ = ["compare_rows", "truth_fields"]


def truth_fields(
    truth: PlantTruth, status: FirmwareStatus
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plant, firmware): every field of each, JSON-ready, with the plant's derived totals."""
    plant = fields_of(truth)
    plant["lost_nl"] = truth.lost_nl
    plant["balance_nl"] = truth.balance_nl()
    plant["systemic_nl"] = truth.systemic_nl
    plant["systemic_pg"] = truth.systemic_pg
    plant["balance_pg"] = truth.balance_pg()
    plant.pop("type", None)
    firmware = fields_of(status)
    firmware.pop("type", None)
    return plant, firmware


def compare_rows(plant: Mapping[str, Any], firmware: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the firmware believes beside what is physically true, one row per quantity
    (``None`` where the firmware has no way to know)."""
    motor_fw = "stall detected" if firmware["motor_stall_detected"] else "ok"
    return [
        {
            "quantity": "reservoir",
            "unit": "nL",
            "firmware": firmware["reservoir_estimate_nl"],
            "plant": plant["reservoir_nl"],
        },
        {
            "quantity": "pumped since power-on",
            "unit": "nL",
            "firmware": firmware["delivered_nl"],
            "plant": plant["pumped_nl"],
        },
        {
            "quantity": "reached the patient",
            "unit": "nL",
            "firmware": None,
            "plant": plant["delivered_nl"],
        },
        {
            "quantity": "lost (leak, pocket)",
            "unit": "nL",
            "firmware": None,
            "plant": plant["lost_nl"],
        },
        {
            "quantity": "drug into the CSF",
            "unit": "pg",
            "firmware": None,
            "plant": plant["delivered_pg"],
        },
        {
            "quantity": "drug outside the CSF (systemic)",
            "unit": "pg",
            "firmware": None,
            "plant": plant["systemic_pg"],
        },
        {"quantity": "motor", "unit": "", "firmware": motor_fw, "plant": plant["motor"]},
        {"quantity": "catheter", "unit": "", "firmware": None, "plant": plant["catheter"]},
        {
            "quantity": "battery",
            "unit": "nAh",
            "firmware": firmware["battery_nah"],
            "plant": plant["battery_nah"],
        },
    ]
