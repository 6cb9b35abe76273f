"""The dashboard's keys: each sends a request the control API accepts."""

from __future__ import annotations

import pytest

from hil import quantities as q
from hil.fault_builders import build_fault
from hil.watch.keys import KEY_ACTIONS, QUIT_KEY, KeyAction


def test_keys_are_unique_and_none_is_the_quit_key() -> None:
    keys = [action.key for action in KEY_ACTIONS]
    assert len(keys) == len(set(keys))
    assert QUIT_KEY not in keys


@pytest.mark.parametrize("action", KEY_ACTIONS, ids=[a.label for a in KEY_ACTIONS])
def test_each_key_sends_a_request_the_control_api_accepts(action: KeyAction) -> None:
    request = action.request
    if request["op"] == "fault":
        params = {k: v for k, v in request.items() if k not in ("op", "fault")}
        build_fault(request["fault"], params)  # raises ValueError on a bad one
    else:
        assert request["op"] == "advance"
        assert q.parse_duration_ms(request["duration"], bare="s") > 0
    assert action.action == f"send('{action.key}')"
