"""A campaign worker on the api backend loads the pump, not the wire (issue 14).

A spawned worker (macOS, Windows, or a parent that runs threads: hil/local_pool.py) pays
for its imports before its first run, and both the one-worker and the two-worker campaign
pay it: the smaller it is, the closer two workers come to twice one (``parallel_efficiency``,
benchmarks/campaign.py ``--start-method spawn``); a forked one inherits the parent's. The
api backend calls ``Pump`` directly, so a worker that runs it must not import the device
behind the wire, its session and crypto, the reference programmer or the proxy's engine
(hil/scenario/backends.py imports the wire backend only when one is made), and builds only
the codec plans it uses (protocol/fast_codec.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.messages import Opcode

SWEEP = Path(__file__).with_name("sweep.toml")

WIRE_STACK = (
    "emulator.device",
    "protocol.session",
    "protocol.crypto",
    "hil.programmer.core",
    "hil.proxy.engine",
    "hil.proxy.faults",
    "hil.two_peer",
    "hil.scenario.wire_backend",
)

PROBE = """
import json, sys
from hil.campaign.execute import execute
from hil.campaign.plan import expand
from protocol.fast_codec import PLANS
line = execute(expand([sys.argv[1]])[0], sys.argv[2])
print(json.dumps({
    "verdict": line["verdict"],
    "modules": sorted(sys.modules),
    "plans": sorted(op for op, plan in PLANS.items() if plan is not None),
}))
"""


def probe(backend: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(SWEEP), backend],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


@pytest.mark.e2e
def test_an_api_worker_imports_none_of_the_wire_stack() -> None:
    found = probe("api")
    assert found["verdict"] == "pass"
    modules = found["modules"]
    assert isinstance(modules, list)
    assert [name for name in WIRE_STACK if name in modules] == []
    # The digest of the setup prescription is the only encoding an api run needs.
    assert found["plans"] == [Opcode.STAGE_PRESCRIPTION.value]


@pytest.mark.e2e
def test_a_wire_worker_loads_the_wire_stack_when_it_needs_it() -> None:
    # The probe above would pass vacuously if the names were wrong: on the wire backend
    # each of them is loaded.
    found = probe("wire")
    assert found["verdict"] == "pass"
    modules = found["modules"]
    assert isinstance(modules, list)
    assert [name for name in WIRE_STACK if name not in modules] == []
