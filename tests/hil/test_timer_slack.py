"""hil.timer_slack: the calling thread's timer slack is read, narrowed and restored."""

from __future__ import annotations

import sys

import pytest

from hil.timer_slack import PACED_SLACK_NS, get_timer_slack_ns, set_timer_slack_ns

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")


@linux_only
def test_the_slack_is_narrowed_for_this_thread_and_restored() -> None:
    before = get_timer_slack_ns()
    assert before is not None
    assert before >= 1
    try:
        assert set_timer_slack_ns(PACED_SLACK_NS)
        assert get_timer_slack_ns() == PACED_SLACK_NS
    finally:
        assert set_timer_slack_ns(before)
    assert get_timer_slack_ns() == before


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(0, id="zero-means-default"),
        pytest.param(-5, id="negative"),
        pytest.param(True, id="bool"),
        pytest.param(1.5, id="float"),
    ],
)
def test_a_slack_that_is_not_a_positive_int_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="timer slack"):
        set_timer_slack_ns(bad)  # type: ignore[arg-type]
