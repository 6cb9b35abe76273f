"""One run of a campaign, in whatever process or machine executes it.

``execute`` is a plain top-level function of plain arguments, so a process pool pickles it
and a Dask worker imports it. Its result is one JSON-ready line: the same for the same spec
on every executor and machine (no timing, no host name), so two campaigns compare line for
line (docs/campaigns.md, "Results").
"""

from __future__ import annotations

from typing import Any

from hil.campaign.plan import RunSpec

__all__ = ["execute", "execute_batch"]

_LOADED: dict[tuple[str, int, int], Any] = {}
"""Files this process has parsed, by (path, size, mtime): a sweep of N runs is one file,
parsed once per worker (not once per run), whose points are built one at a time as the
worker is given them (``loader.Runs``). Building all N points in every worker cost each
worker as much as running them (a 1,000-point sweep: about 1 s of a 3.7 s campaign), time
a second worker could not share."""


def _runs_of(path: str) -> Any:
    import os  # noqa: PLC0415

    from hil.scenario import loader  # noqa: PLC0415 (a worker loads it once)

    info = os.stat(path)
    key = (path, info.st_size, info.st_mtime_ns)
    runs = _LOADED.get(key)
    if runs is None:
        runs = loader.open_runs(path)
        _LOADED.clear()  # a worker follows one campaign's files: keep the memory bounded
        _LOADED[key] = runs
    return runs


def execute(spec: RunSpec, backend: str = "api") -> dict[str, Any]:
    """Run ``spec`` on ``backend`` and return its result line."""
    from hil.scenario import runner  # noqa: PLC0415 (a worker loads it once)

    line: dict[str, Any] = {
        "id": spec.id,
        "file": spec.file,
        "seed": spec.seed,
        "parameters": dict(spec.sweep),
        "hazards": list(spec.hazards),
        "backend": backend,
    }
    try:
        scenario = _runs_of(spec.file)[spec.index]
    except Exception as exc:  # the file changed or vanished under the campaign
        return {**line, "verdict": "error", "error": f"cannot load the run: {exc}"}
    if scenario.id != spec.id:
        return {
            **line,
            "verdict": "error",
            "error": f"{spec.file} changed: run {spec.index + 1} is now {scenario.id!r}",
        }
    result = runner.run(scenario, backend)
    return {
        **line,
        "verdict": result.verdict,
        "error": result.error,
        "figures": result.figures,
        "failed": [
            {"where": f.where, "what": f.what, "expected": f.expected, "happened": f.happened}
            for f in result.findings
            if f.ok is False
        ],
    }


def execute_batch(specs: list[RunSpec], backend: str = "api") -> list[dict[str, Any]]:
    """``execute`` for each spec, in order: one task for several short runs, so sending a
    task costs little next to the runs it carries."""
    return [execute(spec, backend) for spec in specs]
