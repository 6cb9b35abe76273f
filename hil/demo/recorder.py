"""Samples of belief and truth over a demo run, for its plot and its summary.

The firmware's reservoir estimate and the plant's real volume drift apart as they do in real
pumps (mechanical bias, H10), and a stall opens a gap between the two (H5). The recorder
keeps both, as exact integers. The cumulative dose integrates each new volume at the
concentration then in the reservoir, so a refill with a new concentration stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.pump import Pump


@dataclass(frozen=True, slots=True)
class Sample:
    time_ms: int
    """The pump's internal timeline (``Pump.now_ms``): monotonic, for the plot's x axis. Log
    stamps are on the pump clock instead (``VisitReport.start_pump_ms``)."""
    reservoir_estimate_nl: int
    reservoir_truth_nl: int
    dose_belief_pg: int
    """Mass the firmware believes it delivered: its strokes x stroke volume x concentration."""
    dose_truth_pg: int
    """Mass that really reached the patient's spinal fluid (plant truth)."""


@dataclass(frozen=True, slots=True)
class Marker:
    time_ms: int
    label: str


@dataclass(slots=True)
class Recorder:
    """Collects samples from a pump the caller owns (the caller holds any lock needed)."""

    samples: list[Sample] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    _belief_nl: int = 0
    _truth_nl: int = 0
    _belief_pg: int = 0
    _truth_pg: int = 0

    def sample(self, pump: Pump) -> Sample:
        status = pump.status()
        truth = pump.plant_truth()
        concentration = status.prescription.concentration_ug_per_ml if status.prescription else 0
        if not self.samples:
            self._belief_nl, self._truth_nl = status.delivered_nl, truth.delivered_nl
        self._belief_pg += (status.delivered_nl - self._belief_nl) * concentration
        self._truth_pg += (truth.delivered_nl - self._truth_nl) * concentration
        self._belief_nl, self._truth_nl = status.delivered_nl, truth.delivered_nl
        sample = Sample(
            time_ms=pump.now_ms,
            reservoir_estimate_nl=status.reservoir_estimate_nl,
            reservoir_truth_nl=truth.reservoir_nl,
            dose_belief_pg=self._belief_pg,
            dose_truth_pg=self._truth_pg,
        )
        self.samples.append(sample)
        return sample

    def mark(self, time_ms: int, label: str) -> None:
        self.markers.append(Marker(time_ms, label))
