"""Suite-wide test settings: hypothesis profiles and the real-time rule.

Profiles (docs/architecture.md, "Testing"), chosen with HYPOTHESIS_PROFILE:
- ``dev`` (default): quick, randomized, for the edit-test loop;
- ``ci``: more examples, derandomized so a CI failure reproduces, no deadline because a
  loaded 2-core CI machine makes timing meaningless.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

from emulator.firmware.deadline_cache import CHECK_ALL

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Every pump built in the suite checks its kept next deadline against a fresh computation
# on every request (emulator/firmware/deadline_cache.py): the stateful, differential and
# scenario tests then prove the cache's invalidation.
CHECK_ALL.on = True

pytest_plugins = ["pytester"]
"""pytester runs pytest in-process on generated test files (tests/hil/test_pytest_plugin.py).
The hazard marker and --hazard come from pumpemu's own plugin (hil/pytest_plugin.py), which
the installed package registers."""


class RealTimeOutsideE2EError(AssertionError):
    """A test outside the e2e layer started a thread or a process, or slept."""


@pytest.fixture(autouse=True)
def _real_time_only_in_the_e2e_layer(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the e2e layer may depend on the wall clock or on scheduling (threads, processes,
    sleeps): everything else runs on manual clocks and cannot flake on a loaded machine.
    A test that needs real time is marked ``e2e`` and gives generous bounded timeouts."""
    if request.node.get_closest_marker("e2e") is not None:
        return
    if request.config.getoption("pump_backend") in ("pty", "url"):
        return  # the contract suite against a real link is the real-time layer
    name = request.node.nodeid

    def refuse(what: str) -> Callable[..., object]:
        def call(*_args: object, **_kwargs: object) -> object:
            raise RealTimeOutsideE2EError(
                f"{name} {what}: mark it @pytest.mark.e2e (the real-time layer, with "
                "generous bounded timeouts) or drive it with a manual clock"
            )

        return call

    monkeypatch.setattr(threading.Thread, "start", refuse("starts a thread"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process"))
    real_sleep, refused_sleep = time.sleep, refuse("sleeps")

    def sleep(seconds: float) -> object:
        # A zero sleep only yields to other threads (the serve loop between advance
        # slices does): it waits for no time, so it cannot make a test depend on it.
        if seconds == 0:
            return real_sleep(0)
        return refused_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
