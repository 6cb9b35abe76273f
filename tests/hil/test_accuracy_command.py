"""``pumpemu accuracy``: table, JSON, plot, and usage errors (hil/accuracy_command.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.accuracy_command import percent
from hil.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["accuracy", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_table_shows_each_window_and_a() -> None:
    code, out, _ = run("--no-seed")
    assert code == 0
    assert "peristaltic-20, 0.5 mL/day, seed none" in out
    for window in ("1 h", "2 h 30 min", "5 h 30 min", "9 h 30 min", "15 h 30 min"):
        assert f"\n{window:>12}  " in out
    assert "overall error A over the analysis period: +1.00 %" in out


def test_json_carries_the_points_and_the_samples() -> None:
    code, out, _ = run("--json", "--profile", "trial-external", "--rate", "0.2 mL/day")
    assert code == 0
    document = json.loads(out)
    assert document["profile"] == "trial-external"
    assert document["seed"] == 1
    assert [p["window_s"] for p in document["points"]] == [3600, 9000, 19800, 34200, 55800]
    assert len(document["samples_nl"]) == 241  # 60 h / 15 min, plus the start


def test_plot_writes_an_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "trumpet.svg"
    code, out, _ = run("--plot", str(path))
    assert code == 0
    assert f"plot written to {path}" in out
    assert "<svg" in path.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rate", "0.5 mL/dy"), "--rate:"),
        (("--rate", "30 mL/day"), "more than the reservoir"),
        (("--profile", "nope"), "no profile 'nope'"),
        (("--plot", "trumpet.pdf"), "write a .svg or .png file"),
    ],
    ids=["bad-rate", "too-much", "bad-profile", "bad-plot-suffix"],
)
def test_usage_errors_are_one_line_exit_2(args: tuple[str, ...], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("ppm", "text"),
    [(10_000, "+1.00 %"), (-4_240, "-0.42 %"), (-1, "0.00 %"), (182_399, "+18.23 %")],
    ids=["plus-one", "negative", "truncated-to-zero", "truncated-not-rounded"],
)
def test_percent_is_exact(ppm: int, text: str) -> None:
    assert percent(ppm) == text
