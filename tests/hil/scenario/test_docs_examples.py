"""Every example in docs/scenarios.md is a file under test: the runnable ones pass on the
wire backend (and on api where they have no link fault), the bad ones give the error shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.scenario import loader
from hil.scenario.runner import run

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "scenarios.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
GOOD = [b for b in BLOCKS if not b.startswith("# error:")]
BAD = [b for b in BLOCKS if b.startswith("# error:")]


def _id(block: str) -> str:
    match = re.search(r'^id = "([^"]+)"', block, re.MULTILINE)
    return match.group(1) if match else "?"


def test_the_document_has_examples_of_each_kind() -> None:
    assert len(GOOD) >= 6
    assert len(BAD) >= 5


@pytest.mark.parametrize("block", GOOD, ids=_id)
def test_runnable_example_passes_on_the_wire_backend(block: str) -> None:
    runs = loader.loads(block, f"docs/scenarios.md#{_id(block)}", base=DOC.parent)
    for scenario in runs:
        result = run(scenario, "wire")
        failed = [(f.where, f.what, f.expected, f.happened) for f in result.findings if not f.ok]
        assert result.verdict == "pass", (result.error, failed)


@pytest.mark.parametrize("block", BAD, ids=lambda b: b.splitlines()[0])
def test_bad_example_gives_its_error(block: str) -> None:
    expected = block.splitlines()[0].removeprefix("# error: ")
    with pytest.raises(loader.ScenarioError) as caught:
        loader.loads(block, "bad.toml")
    assert str(caught.value).startswith("bad.toml:")
    assert expected in str(caught.value)
