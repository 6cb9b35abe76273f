"""``pumpemu hazards``: the hazard catalogue and its traceability report (docs/hazards.md).

``pumpemu hazards report`` runs the tests marked ``@pytest.mark.hazard`` (through pytest and
pumpemu's plugin, ``--hazard-report``) and prints hazard -> mitigation -> tests -> outcomes;
``--from FILE`` renders a report a test run already wrote. ``--strict`` exits 1 when a
hazard in scope has no passing test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from hil.errors import UsageError
from hil.hazard_report import (
    FORMATS,
    build_rows,
    mitigations_from_doc,
    read_records,
    render,
)
from hil.hazards import HAZARDS
from hil.json_output import echo_json, json_option

EPILOG = """\\b
Examples:
  pumpemu hazards list
  pumpemu hazards report                          run tests/ (-m hazard), print markdown
  pumpemu hazards report --strict -o trace.html   fail if a hazard has no passing test
  pytest --hazard-report run.json && pumpemu hazards report --from run.json --format md
"""

PYTEST_TIMEOUT_S = 3_600


@click.group("hazards", epilog=EPILOG)
def hazards() -> None:
    """The hazard catalogue and its traceability to tests (a safety case's evidence)."""


@hazards.command(
    "list", epilog="\b\nExamples:\n  pumpemu hazards list\n  pumpemu hazards list --json"
)
@json_option('one JSON object: {"hazards": [{"id", "name"}, ...]}')
def hazards_list(as_json: bool) -> None:
    """List the hazard IDs that markers and scenarios may name."""
    if as_json:
        echo_json({"hazards": [{"id": h, "name": name} for h, name in HAZARDS.items()]})
        return
    for hazard, name in HAZARDS.items():
        click.echo(f"{hazard:<4} {name}")


@hazards.command("report", epilog=EPILOG)
@click.argument("paths", nargs=-1)
@click.option(
    "--from",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Render this --hazard-report JSON instead of running the tests.",
)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default=None, help="Default: by -o, else md."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Exit 1 if a hazard in scope has no passing test.")
@click.option(
    "--hazards-doc",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="docs/hazards.md, for the mitigation column (default: ./docs/hazards.md if present).",
)
def hazards_report(
    paths: tuple[str, ...],
    *,
    from_file: Path | None,
    fmt: str | None,
    output: Path | None,
    strict: bool,
    hazards_doc: Path | None,
) -> None:
    """Hazard -> mitigation -> tests -> outcomes, uncovered hazards first.

    Runs ``pytest -m hazard`` on PATHS (default: tests) with pumpemu's plugin, or renders
    --from a JSON written by ``pytest --hazard-report FILE.json``.
    """
    if from_file is not None and paths:
        raise UsageError("give PATHS to run, or --from FILE to render, not both")
    data = _load(from_file) if from_file is not None else _run(paths or ("tests",))
    try:
        records = read_records(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{from_file}: {exc}") from None
    doc = hazards_doc or Path("docs/hazards.md")
    mitigations = mitigations_from_doc(doc.read_text()) if doc.exists() else {}
    rows = build_rows(records, mitigations)
    chosen = fmt or (output.suffix.lstrip(".") if output and output.suffix else "md")
    if chosen not in FORMATS:
        raise UsageError(f"-o {output}: end the name in .json, .md or .html, or give --format")
    text = render(rows, chosen)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    uncovered = [row.hazard for row in rows if not row.covered]
    if strict and uncovered:
        click.echo(f"not covered by a passing test: {', '.join(uncovered)}", err=True)
        sys.exit(1)


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a hazard report JSON: {exc}") from None


def _run(paths: tuple[str, ...]) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "hazards.json"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                   "hazard", f"--hazard-report={report}", *paths]  # fmt: skip
        click.echo("running: " + " ".join(command[1:]), err=True)
        try:
            # This interpreter's pytest on the user's own paths, as a list: no shell.
            subprocess.run(  # noqa: S603
                command, timeout=PYTEST_TIMEOUT_S, check=False, stdout=sys.stderr
            )
        except subprocess.TimeoutExpired:
            raise UsageError(f"the tests took longer than {PYTEST_TIMEOUT_S} s") from None
        if not report.exists():
            raise UsageError("pytest wrote no hazard report (see its output above)")
        return _load(report)
