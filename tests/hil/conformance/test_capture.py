"""Judging a capture after the fact: a serve capture (rx/tx) and a proxy capture (the
programmer's side, before and after the faults) give the verdict the live monitor gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.capture import CaptureWriter, read_capture
from hil.conformance.capture import judge_capture
from tests.hil.conformance.rig import KEYS, Rig
from tests.hil.conformance.test_rules import bad_commit_after_refusal


@pytest.mark.parametrize(
    ("to_pump", "to_programmer", "decoys"),
    [("rx", "tx", ()), ("a->b in", "b->a out", ("a->b out", "b->a in"))],
    ids=["serve", "proxy"],
)
def test_a_capture_gives_the_live_verdict(
    to_pump: str, to_programmer: str, decoys: tuple[str, ...], tmp_path: Path
) -> None:
    path = tmp_path / "capture.jsonl"
    rig = Rig()
    live = rig.monitor.feed
    with CaptureWriter(path, source="test") as capture:

        def record(direction: str, data: bytes, link_ms: int) -> None:
            live(direction, data, link_ms)
            name = to_pump if direction == "to_pump" else to_programmer
            capture.record(name, data, sim_ms=None, wall_ns=link_ms * 1_000_000)
            for decoy in decoys:  # the pump's side of a proxy: never judged
                capture.record(decoy, data[:-3], sim_ms=None, wall_ns=link_ms * 1_000_000)

        rig.monitor.feed = record  # type: ignore[method-assign]
        bad_commit_after_refusal(rig)
    expected = [v.rule for v in rig.finish()]
    assert expected == ["COMMIT-AFTER-REFUSAL"]
    judged = judge_capture(read_capture(path), KEYS, to_pump=to_pump, to_programmer=to_programmer)
    assert [v.rule for v in judged] == expected
