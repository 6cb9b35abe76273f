"""Drug in the fluid path: the clinical signature of each catheter and pocket hazard.

Each test asserts what the clinic would see (the sign and size of the refill discrepancy,
what a catheter access port (CAP) aspiration returns) and the drug mass that really reached
the patient, against numbers worked out by hand in the docstring from the profile files.

peristaltic-20 (emulator/profiles/peristaltic-20.toml): stroke 200 nL, bias +1 %, usable
20 mL, refill discrepancy threshold 1 mL, catheter 110 cm x 2,600 nL = 286,000 nL, internal
path 200,000 nL, catheter compliance 20,000 nL, priming dispersion 10 %. 1 ug/mL = 1 pg/nL.
A basal rate of R nL/day moves R x 1.01 nL a day (the bias).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from emulator.faults import (
    CapInjection,
    CatheterDisconnect,
    CatheterErosion,
    CatheterKink,
    CatheterLeak,
    CatheterMigration,
    CatheterOcclusion,
    CatheterRepair,
    InflammatoryMass,
    PumpFlip,
    PumpReseat,
)
from emulator.firmware.results import BolusStarted, RefillBegun, RefillCompleted, Refused
from emulator.plant import AspirationResult, CatheterState
from emulator.pump import Pump
from protocol.device_state import TherapyState
from protocol.prescription import Prescription
from protocol.units import S_PER_DAY

PumpFactory = Callable[..., Pump]
RxFactory = Callable[..., Prescription]

ML = 1_000_000
MG = 1_000_000_000  # pg
CATHETER = 286_000
COMPLIANCE = 20_000


def refill(pump: Pump, volume_nl: int = 20 * ML, **kw: object) -> RefillCompleted:
    begun = pump.refill_begin()
    assert isinstance(begun, RefillBegun), begun
    done = pump.refill_complete(volume_nl, **kw)  # type: ignore[arg-type]
    assert isinstance(done, RefillCompleted), done
    return done


# -- H1: pocket fill and a flipped pump ----------------------------------------------------------


@pytest.mark.hazard("H1")
def test_pocket_fill_is_a_systemic_dose_and_a_negative_discrepancy(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """Morphine 1 mg/mL at 1 mL/day, 4 mL in the reservoir. Refill: 20 mL entered, 8 mL
    into the reservoir, 12 mL into the pocket.

    - systemic dose at once: 12 mL x 1,000 pg/nL = 12,000,000,000 pg (12 mg);
    - 10 days later the firmware predicts 20 - 10 = 10 mL left; the mechanism tried to
      move 10.1 mL from 8 mL, so the residual is 0: discrepancy 0 - 10 mL = -10 mL, flagged;
    - intrathecal dose in those 10 days: the 8 mL that left the reservoir pushed 8 mL of
      1 mg/mL out of the path and catheter: 8,000,000,000 pg (8 mg), not the 10 mg
      believed (10 x 1.01 mL x 1 mg/mL would be 10.1 mg).
    """
    pump = programmed(rx(1 * ML), reservoir_nl=4 * ML)
    refill(pump, 20 * ML, injected_nl=8 * ML, pocket_nl=12 * ML)
    truth = pump.plant_truth()
    assert truth.pocket_pg == truth.systemic_pg == 12 * MG
    delivered_before = truth.delivered_pg
    pump.advance(10 * S_PER_DAY)
    assert pump.plant_truth().delivered_pg - delivered_before == 8 * MG
    assert pump.cap_aspirate(0).result is AspirationResult.CSF  # the catheter is fine
    done = refill(pump)
    assert done.discrepancy_nl == -10 * ML
    assert done.discrepancy_flagged
    assert pump.plant_truth().balance_pg() == 0


@pytest.mark.hazard("H1")
def test_flipped_pump_puts_the_refill_in_the_pocket(programmed: PumpFactory, rx: RxFactory) -> None:
    """1 mL/day at 1 mg/mL from 20 mL. After 10 days the firmware predicts 10 mL; the
    reservoir really holds 20 - 10.1 = 9.9 mL. The pump has flipped: the needle draws
    nothing (residual 0: discrepancy -10 mL, flagged) and the 20 mL refill goes into the
    pocket: a systemic dose of 20 mL x 1 mg/mL = 20 mg at once, while the reservoir still
    holds the old 9.9 mL. CAP aspiration finds nothing (the port is missed too).
    """
    pump = programmed(rx(1 * ML))
    pump.advance(10 * S_PER_DAY)
    pump.inject(PumpFlip())
    assert pump.cap_aspirate(500_000).result is AspirationResult.NO_FLOW
    done = refill(pump)
    assert done.discrepancy_nl == -10 * ML
    assert done.discrepancy_flagged
    truth = pump.plant_truth()
    assert truth.flipped
    assert truth.pocket_nl == 20 * ML
    assert truth.systemic_pg == 20 * MG
    assert truth.reservoir_nl == 9_900_000
    assert pump.status().reservoir_estimate_nl == 20 * ML  # the pump believes the entry
    pump.inject(PumpReseat())
    assert not pump.plant_truth().flipped


# -- H2: injection into the catheter access port -------------------------------------------------


@pytest.mark.hazard("H2")
def test_cap_injection_bypasses_the_pump_and_every_limit(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """A refill of 2 mL of morphine 10 mg/mL meant for the reservoir goes into the CAP of a
    pump primed with 1 mg/mL (catheter 286,000 nL = 286 ug).

    The 2,000,000 nL push out of the tip at once the catheter's 286,000 nL of 1 mg/mL
    (286,000,000 pg) and 1,714,000 nL of the injection (17,140,000,000 pg): 17,426,000,000
    pg (17.4 mg) intrathecal at once, above the profile's 15 mg/day for morphine, with no
    refusal. The catheter then holds 286,000 nL at 10 mg/mL (2,860,000,000 pg), which the
    next flow delivers. The firmware sees nothing: same status, same log, no alarm. The next
    refill (10 days at 0.5 mL/day: predicted 15 mL, real 20 - 5.05) shows only the bias,
    -50,000 nL, not flagged. A CAP aspiration of 1 mL returns the catheter's 286,000 nL
    (2,860,000,000 pg) and then 714,000 nL of CSF.
    """
    pump = programmed(rx(500_000))
    status, log = pump.status(), pump.log()
    got = pump.cap_inject(2 * ML, 10_000)
    assert (got.volume_nl, got.mass_pg, got.into_pocket) == (2 * ML, 20 * MG, False)
    truth = pump.plant_truth()
    assert truth.delivered_nl == 2 * ML
    assert truth.delivered_pg == 17_426_000_000
    assert truth.catheter_pg == 2_860_000_000
    assert pump.status() == status
    assert pump.log() == log
    assert pump.alarms() == ()
    aspirated = pump.cap_aspirate(1 * ML)
    assert aspirated.result is AspirationResult.CSF
    assert (aspirated.drug_nl, aspirated.drug_pg, aspirated.csf_nl) == (
        CATHETER,
        2_860_000_000,
        714_000,
    )
    assert pump.plant_truth().catheter_nl == 0  # CSF now fills it: the next flow refills it
    pump.advance(10 * S_PER_DAY)
    done = refill(pump)
    assert (done.discrepancy_nl, done.discrepancy_flagged) == (-50_000, False)
    assert pump.plant_truth().balance_pg() == 0


@pytest.mark.hazard("H2")
def test_cap_injection_as_a_fault_and_into_a_blocked_or_flipped_pump(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """``CapInjection`` (the scenario form) is ``cap_inject``. Into a fully occluded catheter
    nothing goes in (the syringe meets resistance); into a flipped pump the needle misses
    the port and 1 mL x 10 mg/mL = 10 mg goes into the pocket: systemic."""
    pump = programmed(rx(500_000))
    pump.inject(CapInjection(volume_nl=1 * ML, concentration_ug_per_ml=10_000))
    assert pump.plant_truth().cap_injected_pg == 10 * MG
    pump.inject(CatheterOcclusion())
    assert pump.cap_inject(1 * ML, 10_000).volume_nl == 0
    pump.inject(CatheterRepair())
    pump.inject(PumpFlip())
    before = pump.plant_truth().delivered_pg
    assert pump.cap_inject(1 * ML, 10_000).into_pocket
    truth = pump.plant_truth()
    assert truth.pocket_pg == truth.systemic_pg == 10 * MG
    assert truth.delivered_pg == before


# -- H3: priming mixes drug with the fluid in the catheter --------------------------------------


@pytest.mark.hazard("H3")
def test_priming_drug_arrives_early_then_a_weaker_column_follows(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """An unprimed catheter (CSF/sterile water) primed with 1 mg/mL.

    The priming bolus runs at 24 mL/day: one 200 nL stroke every 720 ms. At 500 s, 694
    strokes moved 694 x 202 = 140,188 nL (bias floored: 138,800 + 1,388). No solution has
    reached the tip yet (the catheter holds 286,000 nL), but 10 % of the drug filling it ran
    ahead of the front: 140,188 x 1,000 x 10 % = 14,018,800 pg arrived already.

    Priming ends after 1,430 strokes = 288,860 nL: the catheter holds 286,000 nL with 90 %
    of its drug (257,400,000 pg), the 2,860 nL past full pushed out 2,860 nL of 900 pg/nL
    (2,574,000 pg): 28,600,000 + 2,574,000 = 31,174,000 pg reached the patient. The column
    at the tip is 900 ug/mL: the next 283,140 nL delivered carry 10 % less than the
    reservoir's 1 mg/mL (a period of lower concentration).

    The refill shows only the bias: the firmware counted 1,430 x 200 = 286,000 nL, the
    reservoir lost 288,860: -2,860 nL, not flagged. A 300,000 nL CAP aspiration then draws
    the catheter's 286,000 nL (254,826,000 + 2,860,000 = 257,686,000 pg) and 14,000 nL of
    CSF.
    """
    pump = programmed(rx(500_000), catheter_primed=False)
    pump.stop()
    assert isinstance(pump.prime(), BolusStarted)
    pump.advance(500)
    truth = pump.plant_truth()
    assert (truth.delivered_nl, truth.delivered_pg) == (0, 14_018_800)
    pump.advance(530)
    truth = pump.plant_truth()
    assert pump.status().state is TherapyState.STOPPED
    assert truth.catheter_nl == CATHETER
    assert (truth.delivered_nl, truth.delivered_pg) == (2_860, 31_174_000)
    assert truth.catheter_slugs == ((283_140, 254_826_000), (2_860, 2_860_000))
    assert truth.catheter_slugs[0][1] * 1_000 // truth.catheter_slugs[0][0] == 900_000
    assert truth.balance_pg() == 0
    done = refill(pump)
    assert (done.discrepancy_nl, done.discrepancy_flagged) == (-2_860, False)
    got = pump.cap_aspirate(300_000)
    assert (got.result, got.drug_nl, got.drug_pg, got.csf_nl) == (
        AspirationResult.CSF,
        CATHETER,
        257_686_000,
        14_000,
    )


@pytest.mark.hazard("H3")
def test_new_concentration_reaches_the_patient_only_after_the_path_and_catheter(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """Refilled from 1 mg/mL to 2 mg/mL (entered and injected), 1 mL/day. The first
    200,000 + 286,000 = 486,000 nL that leave the tip are the old 1 mg/mL still in the
    internal path and catheter (the reason for a bridge bolus). After one day (1,010,000
    nL): 486,000 x 1 + 524,000 x 2 = 1,534,000,000 pg, not 2,020,000,000."""
    pump = programmed(rx(1 * ML))
    refill(pump, 20 * ML, new_concentration_ug_per_ml=2_000)
    before = pump.plant_truth().delivered_pg
    pump.advance(S_PER_DAY)
    assert pump.plant_truth().delivered_pg - before == 1_534_000_000


@pytest.mark.hazard("H10", "H11")
def test_wrong_concentration_fill_is_plant_truth(programmed: PumpFactory, rx: RxFactory) -> None:
    """Entered 1 mg/mL, injected 10 mg/mL (a 10x compounding slip) after withdrawing the
    20 mL residual. After the 486,000 nL of old drug in the path and catheter, each nL
    carries 10,000 pg: on day 2 (1,010,000 nL) the patient gets 10.1 mg where the firmware
    believes 1 mg/mL. The pump never knows."""
    pump = programmed(rx(1 * ML))
    refill(
        pump, 20 * ML, new_concentration_ug_per_ml=1_000, injected_concentration_ug_per_ml=10_000
    )
    assert pump.plant_truth().drug_concentration_ug_per_ml == 10_000
    pump.advance(S_PER_DAY)
    before = pump.plant_truth().delivered_pg
    pump.advance(S_PER_DAY)
    assert pump.plant_truth().delivered_pg - before == 10_100_000_000


# -- H13: occlusion and an inflammatory mass ------------------------------------------------------


@pytest.mark.hazard("H13")
def test_occlusion_29_days_then_repair_releases_at_most_the_compliance(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """Morphine 25 mg/mL at 0.5 mL/day from 20 mL (12.5 mg/day). Day 1 runs normally
    (505,000 nL out). Then a full occlusion for 29 days: the rotor fills the compliance
    (20,000 nL) and moves nothing more; the firmware counts 29 x 0.5 = 14.5 mL delivered.

    - reservoir: 20,000,000 - 505,000 - 20,000 = 19,475,000 nL; firmware: 20 - 15 = 5 mL;
    - intrathecal dose during the occlusion: 0 pg; CAP aspiration: nothing (NO_FLOW);
    - repair: 20,000 nL released, pushing 20,000 nL of 25 mg/mL out of the tip: 500,000,000
      pg = 0.5 mg (not the 14.5 mL x 25 mg/mL = 362.5 mg a stored-up bolus would be);
    - refill: residual 19,475,000 vs predicted 5,000,000: +14,475,000 nL, flagged (above).
    """
    pump = programmed(rx(500_000, concentration=25_000), drug_concentration_ug_per_ml=25_000)
    pump.advance(S_PER_DAY)
    pump.inject(CatheterOcclusion())
    before = pump.plant_truth()
    pump.advance(29 * S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.delivered_pg == before.delivered_pg
    assert truth.retained_nl == COMPLIANCE
    assert truth.reservoir_nl == 19_475_000
    assert pump.status().reservoir_estimate_nl == 5 * ML
    assert pump.status().state is TherapyState.CONTINUOUS  # the pump cannot sense it
    assert pump.alarms() == ()
    assert pump.cap_aspirate(1 * ML).result is AspirationResult.NO_FLOW
    pump.inject(CatheterRepair())
    released = pump.plant_truth().delivered_pg - truth.delivered_pg
    assert released == 500_000_000
    assert released <= pump.profile.catheter_compliance_nl * 25_000
    done = refill(pump)
    assert done.discrepancy_nl == 14_475_000
    assert done.discrepancy_flagged
    assert pump.plant_truth().balance_pg() == 0
    assert pump.plant_truth().balance_nl() == 0


@pytest.mark.hazard("H13")
def test_partial_occlusion_keeps_the_rest_in_the_reservoir(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """A quarter of the flow passes (250,000 ppm) for 10 days at 1 mL/day, 1 mg/mL: the
    mechanism moves 10.1 x 1/4 = 2,525,000 nL, so 2,525 ug reach the patient instead of
    10,100; the residual is 20 - 2.525 = 17.475 mL against 10 mL predicted: +7,475,000 nL,
    flagged. CSF can still be aspirated (the catheter is not closed)."""
    pump = programmed(rx(1 * ML))
    pump.inject(CatheterOcclusion(delivered_ppm=250_000))
    before = pump.plant_truth().delivered_pg
    pump.advance(10 * S_PER_DAY)
    assert pump.plant_truth().delivered_pg - before == 2_525 * 1_000_000
    assert pump.cap_aspirate(100_000).result is AspirationResult.CSF
    done = refill(pump)
    assert (done.discrepancy_nl, done.discrepancy_flagged) == (7_475_000, True)


@pytest.mark.hazard("H13")
def test_inflammatory_mass_dose_falls_while_the_firmware_sees_nothing(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """A mass grows over 28 days from open to closed, 0.5 mL/day at 1 mg/mL. The firmware
    steps once a day (505,000 nL pushed a day); the fraction that passes on day i is the
    mean of the linear fall over the day, 1 - (2i + 1)/56, whose sum over 28 days is
    28 - 28^2/56 = 14 days' worth: 14 x 505,000 = 7,070,000 nL (each day rounded down to
    the nL: at most 28 nL less). At day 28 the catheter closes: the compliance takes
    20,000 nL. Residual: 20,000,000 - 7,070,000 - 20,000 = 12,910,000 (+ up to 28) against
    the predicted 20 - 14 = 6 mL: about +6.91 mL, flagged. Day 27 alone delivers
    505,000 x 1/56 = 9,017 nL (9.0 ug) where day 0 delivered 505,000 x 55/56 = 495,982."""
    pump = programmed(rx(500_000))
    pump.inject(InflammatoryMass(grow_s=28 * S_PER_DAY))
    daily: list[int] = []
    for _ in range(28):
        before = pump.plant_truth().pumped_nl
        pump.advance(S_PER_DAY)
        daily.append(pump.plant_truth().pumped_nl - before)
    assert daily[0] == 495_982
    assert daily[26] == 505_000 * 3 // 56
    assert daily[27] == 505_000 // 56 + COMPLIANCE
    assert all(a > b for a, b in itertools.pairwise(daily[:27]))
    assert pump.alarms() == ()
    assert pump.plant_truth().delivered_fraction_ppm == 0
    assert pump.cap_aspirate(100_000).result is AspirationResult.NO_FLOW
    done = refill(pump)
    assert 6_910_000 <= done.discrepancy_nl <= 6_910_028
    assert done.discrepancy_flagged


# -- H17: leak, erosion, disconnection, migration, kink ------------------------------------------


@pytest.mark.hazard("H17")
def test_leak_shows_only_as_lost_effect_and_a_systemic_dose(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """A quarter of the flow leaks (250,000 ppm) for 10 days at 1 mL/day, 1 mg/mL: 10.1 mL
    pushed, 2,525,000 nL into tissue (2,525 ug systemic), 7,575,000 nL (7,575 ug) into the
    CSF. The refill matches the prediction but for the bias (-100,000 nL, not flagged): the
    leak is downstream. CSF aspirates (the tip is in place)."""
    pump = programmed(rx(1 * ML))
    pump.inject(CatheterLeak(ppm=250_000))
    pump.advance(10 * S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.leaked_pg == truth.systemic_pg == 2_525_000_000
    assert truth.delivered_pg == 7_575_000_000
    assert pump.cap_aspirate(100_000).result is AspirationResult.CSF
    done = refill(pump)
    assert (done.discrepancy_nl, done.discrepancy_flagged) == (-100_000, False)


@pytest.mark.hazard("H17")
def test_erosion_is_a_leak_on_an_exposed_device(programmed: PumpFactory, rx: RxFactory) -> None:
    """An erosion leaking 100,000 ppm for 1 day at 1 mL/day, 1 mg/mL: 101,000 nL (101 ug)
    into tissue, the device exposed; a repair (revision) covers it again."""
    pump = programmed(rx(1 * ML))
    pump.inject(CatheterErosion(ppm=100_000))
    pump.advance(S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.exposed
    assert truth.catheter is CatheterState.LEAKING
    assert truth.leaked_pg == 101_000_000
    pump.inject(CatheterRepair())
    assert not pump.plant_truth().exposed


@pytest.mark.hazard("H17")
def test_disconnection_sends_everything_to_tissue_and_aspirates_no_csf(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """Disconnected for 10 days at 1 mL/day, 1 mg/mL: 10.1 mL = 10.1 mg into tissue, 0 into
    the CSF; the refill shows only the bias (-100,000 nL); the CAP aspirates no CSF."""
    pump = programmed(rx(1 * ML))
    before = pump.plant_truth().delivered_pg
    pump.inject(CatheterDisconnect())
    pump.advance(10 * S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.delivered_pg == before
    assert truth.leaked_pg == truth.systemic_pg == 10_100_000_000
    assert pump.cap_aspirate(500_000).result is AspirationResult.NO_CSF
    done = refill(pump)
    assert (done.discrepancy_nl, done.discrepancy_flagged) == (-100_000, False)


@pytest.mark.hazard("H17", "H13")
def test_migrated_tip_delivers_elsewhere_and_aspirates_no_csf(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """The tip migrates out of the intrathecal space; 1 day at 1 mL/day, 1 mg/mL: 1,010,000
    nL (1.01 mg) leave the tip outside it (systemic), none into the CSF. A 500,000 nL
    aspiration draws the catheter's 286,000 nL of solution (286 ug) and no CSF."""
    pump = programmed(rx(1 * ML))
    pump.inject(CatheterMigration())
    before = pump.plant_truth().delivered_pg
    pump.advance(S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.delivered_pg == before
    assert truth.misplaced_pg == truth.systemic_pg == 1_010_000_000
    got = pump.cap_aspirate(500_000)
    assert (got.result, got.drug_nl, got.drug_pg, got.csf_nl) == (
        AspirationResult.NO_CSF,
        CATHETER,
        286_000_000,
        0,
    )


@pytest.mark.hazard("H17", "H13")
def test_kink_closed_half_the_time_hides_under_the_threshold(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """A kink closed 12 h of every 24 h, 1 mL/day at 1 mg/mL for 2 days: the firmware
    steps daily, each day's mean open fraction is 1/2, so 2 x 505,000 = 1,010,000 nL move
    (1.01 mg instead of 2.02). Residual 20 - 1.01 = 18.99 mL against 18 mL predicted:
    +990,000 nL, under the 1 mL threshold: not flagged. Aspiration in the closed half
    finds nothing, in the open half CSF."""
    pump = programmed(rx(1 * ML))
    pump.inject(CatheterKink(period_s=S_PER_DAY, closed_s=S_PER_DAY // 2))
    pump.advance(2 * S_PER_DAY)
    assert pump.plant_truth().pumped_nl == 1_010_000
    done = refill(pump)
    assert (done.discrepancy_nl, done.discrepancy_flagged) == (990_000, False)
    assert pump.cap_aspirate(0).result is AspirationResult.NO_FLOW
    pump.advance(S_PER_DAY // 2)
    assert pump.cap_aspirate(0).result is AspirationResult.CSF


@pytest.mark.hazard("H11")
def test_an_impossible_entered_concentration_never_breaks_the_plant(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """An entry of 25,000,000 ug/mL (25 g/mL: mcg typed for a 25 mg/mL vial) is the
    firmware's to accept or refuse with a code, never an exception from the plant; if it is
    accepted, the syringe still held the drug on file (1 mg/mL here), not 25 g/mL."""
    pump = programmed(rx(1 * ML))
    assert pump.refill_begin().ok
    result = pump.refill_complete(20 * ML, new_concentration_ug_per_ml=25_000_000)
    assert pump.plant_truth().drug_concentration_ug_per_ml == 1_000
    assert pump.plant_truth().balance_pg() == 0
    assert isinstance(result, (RefillCompleted, Refused))
    with pytest.raises(ValueError, match="concentration"):
        pump.refill_complete(20 * ML, injected_concentration_ug_per_ml=2_000_000)
