"""``pumpemu serve --low-latency`` against the real PM QoS device: held while serving,
released when serve stops (hil/cpu_latency.py, docs/serve.md "The serve loop's cost")."""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.cpu_latency import PM_QOS_DEVICE
from protocol.keys import PumpKeys
from tests.hil.e2e.conftest import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def current_bound_us() -> int:
    """The kernel's current CPU wake-up latency bound: reading the device gives it."""
    with PM_QOS_DEVICE.open("rb") as device:
        value: int = struct.unpack("=i", device.read(4))[0]
    return value


@pytest.mark.skipif(not PM_QOS_DEVICE.exists(), reason="no PM QoS device (not Linux)")
def test_serve_holds_the_request_while_serving_and_releases_it(
    serve: Callable[..., ServeProcess], pump_keys: tuple[PumpKeys, Path]
) -> None:
    _keys, key_file = pump_keys
    pump = serve("--pty", "--keys", str(key_file), "--low-latency")
    if not os.access(PM_QOS_DEVICE, os.W_OK):
        assert pump.proc.wait(timeout=30) == 2
        assert "no permission to write /dev/cpu_dma_latency" in pump.stderr
        return
    assert pump.first_line().startswith("/dev/"), pump.stderr  # serving on its pty
    pump.wait_stderr("low latency: idle CPUs poll instead of halting")
    assert current_bound_us() == 0
    assert pump.stop(signal.SIGTERM) == 0
    assert current_bound_us() > 0  # released (the default bound is 2,000 s)
