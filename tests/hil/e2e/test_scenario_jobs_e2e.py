"""`pumpemu scenario run --jobs N` runs a campaign in N processes with the same report as
one process (results are deterministic, docs/scenarios.md)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hil.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_jobs_give_the_same_report_as_one_process() -> None:
    args = ["scenario", "run", "--builtin", "--backend", "api", "--json"]
    one = CliRunner().invoke(main, args)
    two = CliRunner().invoke(main, [*args, "--jobs", "2"])
    assert two.exit_code == one.exit_code
    assert json.loads(two.output) == json.loads(one.output)
    assert len(json.loads(two.output)["runs"]) >= 20
