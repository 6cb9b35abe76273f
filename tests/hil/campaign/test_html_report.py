"""`pumpemu campaign run --report DIR` (hil/campaign/html_report.py; docs/campaigns.md,
"Report"): the page's structure checked by parsing it; the browser check is
tests/hil/e2e/test_scenario_report_browser_e2e.py."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hil.campaign.html_report import (
    CampaignInfo,
    metrics,
    percent,
    rerun_command,
    swept_parameter,
    write_report,
)
from hil.campaign.plan import expand
from hil.campaign.runner import run_campaign
from hil.cli import main
from hil.html_page import bins
from tests.hil.campaign.leak_sweep import write_leak_sweep
from tests.hil.campaign.test_campaign import InlineExecutor
from tests.hil.scenario.test_html_report import Page


@pytest.fixture(scope="module")
def leaks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_leak_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def lines(leaks: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("campaign") / "results.jsonl"
    return run_campaign(expand([leaks]), InlineExecutor(), out).results


def test_the_page_has_summary_distributions_scatter_and_reruns(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    info = CampaignInfo(results_path="results.jsonl", backend="api", seconds=3)
    path = write_report(lines, info, tmp_path / "report")
    assert path == tmp_path / "report" / "index.html"
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    text = "".join(page.text)
    assert "4 pass, 2 fail" in text
    counts = {a["data-verdict"]: a for a in page.all("td") if a.get("data-verdict")}
    assert set(counts) == {"pass", "fail", "skip", "error"}
    headings = [
        t for t in page.text
        if t.startswith("oracle") and " runs)" not in t and " against " not in t
    ]  # fmt: skip
    assert "oracle1.dose: delivered vs programmed dose error" in headings
    assert "oracle2.reservoir: largest gap" in headings
    histograms = page.all("svg", "histogram")
    assert len(histograms) == len(headings)
    # Each run is in exactly one bar of each histogram.
    bars = page.all("rect", "bar")
    assert sum(int(a["data-count"] or 0) for a in bars) == 6 * len(histograms)
    # The leak's size is the one swept parameter: delivered error falls as it grows.
    assert len(page.all("svg", "scatter")) == len(headings)
    points = page.all("circle", "point")[:6]  # the first figure: delivered dose error
    delivered = {int(a["data-x"] or 0): int(a["data-y"] or 0) for a in points}
    assert sorted(delivered) == [100_000, 200_000, 500_000]
    assert delivered[100_000] > delivered[200_000] > delivered[500_000]
    assert -510_000 < delivered[500_000] < -480_000  # half the flow lost, in ppm (H17)
    reruns = [t for t in page.text if t.startswith("pumpemu campaign run")]
    assert len(reruns) == 2  # the two 500 000 ppm runs fail the 70% lower bound
    assert all("ppm=500000" in shlex.split(r)[-1] for r in reruns)
    assert "<script" not in path.read_text(encoding="utf-8")
    assert "http" not in path.read_text(encoding="utf-8")


def test_the_rerun_command_reproduces_the_recorded_line(
    leaks: Path, lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    run_campaign(expand([leaks]), InlineExecutor(), out)
    failed = next(line for line in lines if line["verdict"] == "fail")
    argv = shlex.split(rerun_command(failed, CampaignInfo(str(out), "api")))
    assert argv[:3] == ["pumpemu", "campaign", "run"]
    result = CliRunner().invoke(main, argv[1:])
    assert "identical to the result recorded" in result.output
    assert result.exit_code == 1  # the run fails, as recorded


def test_report_with_rerun_is_a_usage_error(leaks: Path) -> None:
    result = CliRunner().invoke(
        main, ["campaign", "run", str(leaks), "--rerun", "x", "--report", "r"]
    )
    assert result.exit_code == 2
    assert "--report" in result.output


DOSE = [{"programmed_pg": 1_000, "believed_pg": 1_010, "patient_pg": 500}]


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        pytest.param(
            {"oracle1.dose": DOSE},
            {
                "oracle1.dose: delivered vs programmed dose error": -500_000,
                "oracle1.dose: believed vs programmed dose error": 10_000,
            },
            id="dose-errors-in-ppm",
        ),
        pytest.param(
            {"oracle1.dose": [{"programmed_pg": 0, "believed_pg": 0, "patient_pg": 0}]},
            {
                "oracle1.dose: delivered vs programmed dose error": None,
                "oracle1.dose: believed vs programmed dose error": None,
            },
            id="nothing-programmed-no-error",
        ),
        pytest.param(
            {"oracle3.alarm-latency": {"latency_ms": None}},
            {"oracle3.alarm-latency: time to first alarm": None},
            id="alarm-never-came",
        ),
        pytest.param(
            {"oracle1.refill-discrepancy": {"discrepancy_nl": -5_120_000, "flagged": True}},
            {"oracle1.refill-discrepancy: refill discrepancy": -5_120_000},
            id="refill-discrepancy-flag-is-not-a-figure",
        ),
    ],
)
def test_metrics_of_a_line(figures: dict[str, Any], expected: dict[str, int | None]) -> None:
    found = metrics({"figures": figures})
    assert {name: value for name, (_metric, value) in found.items()} == expected


@pytest.mark.parametrize(
    ("ppm", "text"),
    [
        pytest.param(0, "+0 %", id="zero"),
        pytest.param(-494_927, "-49.4927 %", id="negative"),
        pytest.param(10_000, "+1 %", id="whole"),
    ],
)
def test_percent(ppm: int, text: str) -> None:
    assert percent(ppm) == text


def test_the_swept_parameter_is_the_one_that_varies_besides_the_seed() -> None:
    def line(**parameters: Any) -> dict[str, Any]:
        return {"parameters": parameters}

    assert swept_parameter([line(seed=1, ppm=1), line(seed=2, ppm=2)]) == "ppm"
    assert swept_parameter([line(seed=1, ppm=1), line(seed=2, ppm=1)]) is None
    assert swept_parameter([line(a=1, b=1), line(a=2, b=2)]) is None


@given(st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=200))
def test_bins_count_every_value_once_in_contiguous_bins(values: list[int]) -> None:
    groups = bins(values)
    assert sum(n for _, _, n in groups) == len(values)
    assert len(groups) <= 20
    assert groups[0][0] == min(values)
    assert groups[-1][1] == max(values)
    for (_, high, _), (low, _, _) in itertools.pairwise(groups):
        assert high == low
    for value in values:
        inside = [
            i for i, (low, high, _) in enumerate(groups)
            if low <= value < high or (i == len(groups) - 1 and value == high)
        ]  # fmt: skip
        assert len(inside) == 1
