"""``pumpemu proxy --conformance``'s listener: the programmer's side of the proxy only, bytes
read from it before the faults and bytes written to it after them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.conformance.recorder import ConformanceRecorder
from hil.proxy.conformance import conformance_listener
from hil.proxy.engine import Received, Sent
from hil.proxy.faults import Direction
from tests.hil.conformance.rig import KEYS, Rig
from tests.hil.conformance.test_rules import bad_retry_new_id


class ProxyTap:
    """Turns the rig's programmer-side traffic into the events a proxy with the programmer on
    ``side`` emits, and also the events of the pump's side, which the listener must ignore."""

    def __init__(self, recorder: ConformanceRecorder, side: str) -> None:
        self.listen = conformance_listener(recorder, side)
        self.out = Direction.A2B if side == "a" else Direction.B2A

    def feed(self, direction: str, data: bytes, link_ms: int) -> None:
        if direction == "to_pump":
            self.listen(Received(link_ms, self.out, data))
            self.listen(Sent(link_ms, self.out, data[:-1]))  # the pump's side, damaged
        else:
            self.listen(Received(link_ms, self.out.reverse, data[:5]))  # the pump's side
            self.listen(Sent(link_ms, self.out.reverse, data))


@pytest.mark.parametrize("side", ["a", "b"])
def test_the_listener_judges_the_programmer_side(side: str, tmp_path: Path) -> None:
    recorder = ConformanceRecorder(KEYS, report_dir=tmp_path)
    rig = Rig()
    rig.monitor.feed = ProxyTap(recorder, side).feed  # type: ignore[method-assign]
    bad_retry_new_id(rig)
    violations = recorder.finish(rig.now)
    assert [v.rule for v in violations] == ["RETRY-NEW-ID"]
    assert (tmp_path / "conformance.json").exists()


def test_a_side_other_than_a_or_b_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'a' or 'b'"):
        conformance_listener(ConformanceRecorder(KEYS, report_dir=tmp_path), "c")
