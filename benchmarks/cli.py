"""How fast the ``pumpemu`` command starts, against ``python -c 'import click'`` measured in
the same run (issue 15: a CLI that starts at once).

Run: ``.venv/bin/python benchmarks/cli.py`` (a table) or ``... --json`` (one object).

Each figure is the median wall time of whole processes (interpreter start included), so the
ratio says how much pumpemu adds to the floor any click program pays:

- ``import_click_s``: ``python -c "import click"``, the baseline;
- ``help_s``: ``pumpemu --help`` (target: ``help_vs_import_click_ratio`` at most 2.0);
- ``subcommand_help_s``: the slowest ``pumpemu CMD [SUB...] --help`` of every command and
  nested group, found by walking the click tree (``ctl program``, ``scenario run``, ``fault
  stall``...), each the median of ``--per-command`` processes;
  ``subcommand_help_vs_import_click_ratio`` is that worst one against the baseline (issue
  15: subcommands import none of the emulator, construct, rich or matplotlib);
- ``subcommand_help_median_s``: the median command path's, for scale;
- ``demo_s``: one ``pumpemu demo --days 1`` run, for scale (optional: ``--demo``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and benchmarks/serial.py is
# named like pyserial's package, which walking the commands imports: drop the folder.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from hil.cli import main as pumpemu_main  # noqa: E402
from hil.cli_tree import command_paths  # noqa: E402

PYTHON = sys.executable
PUMPEMU = [PYTHON, "-c", "from hil.cli import main; main()"]


def timed(command: list[str], runs: int) -> float:
    """Median wall seconds of ``runs`` whole processes."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(runs: int, demo: bool, runs_per_command: int = 5) -> dict[str, float | str]:
    baseline = timed([PYTHON, "-c", "import click"], runs)
    help_s = timed([*PUMPEMU, "--help"], runs)
    paths = command_paths(pumpemu_main)[1:]
    per_command = {
        " ".join(path): timed([*PUMPEMU, *path, "--help"], runs_per_command) for path in paths
    }
    slowest = max(per_command, key=per_command.__getitem__)
    out: dict[str, float | str] = {
        "import_click_s": round(baseline, 4),
        "help_s": round(help_s, 4),
        "help_vs_import_click_ratio": round(help_s / baseline, 2),
        "subcommand_help_s": round(per_command[slowest], 4),
        "slowest_subcommand": slowest,
        "subcommands_timed": len(per_command),
        "subcommand_help_median_s": round(statistics.median(per_command.values()), 4),
        "subcommand_help_vs_import_click_ratio": round(per_command[slowest] / baseline, 2),
    }
    if demo:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [*PUMPEMU, "demo", "--days", "1", "--out", str(Path(tmp) / "demo")],
                check=True,
                capture_output=True,
                timeout=600,
            )
            out["demo_s"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=10, help="processes per median (10)")
    parser.add_argument(
        "--per-command", type=int, default=5, help="processes per command path's median (5)"
    )
    parser.add_argument("--demo", action="store_true", help="also time one short demo")
    args = parser.parse_args()
    figures = measure(args.runs, args.demo, args.per_command)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:<40} {value}")


if __name__ == "__main__":
    main()
