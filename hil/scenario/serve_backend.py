"""The ``serve`` backend: a ``pumpemu serve`` subprocess over a pty, the real serial path
(docs/scenarios.md, "Backends").

The setup's pump is built in-process exactly as on the other backends (``build_pump``) and
handed to serve as its ``--state`` file, so all three start from the same pump. Serve runs
with ``--clock manual``: pump time moves only when the runner advances it through the
control API, so every programmer step happens at the same pump instant as on ``api`` and
``wire``. Programmer steps go through the blocking reference programmer (``Programmer``)
over the pty, in real link time; plant faults and time through the control API; belief
and truth are read from the control API's ``truth`` and ``log``.

What serve cannot do is reported skipped: link faults (they need ``pumpemu proxy`` between
the programmer and serve), and a refill whose drug went elsewhere than entered (the plant's
side of a refill is not in the control API).
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from emulator.device import PumpDevice
from emulator.profile import load_profile
from hil.clock import SystemClock
from hil.control import ControlClient
from hil.errors import HilError
from hil.key_files import write_key_file
from hil.links import open_link
from hil.programmer.client import Programmer
from hil.programmer.core import RetryPolicy
from hil.proxy.faults import FaultSpec
from hil.scenario.backends import SERIAL, ProgrammerSteps, build_pump
from hil.scenario.model import Setup
from hil.state_file import StateFile
from protocol.device_state import EventKind, LogEntry, Role, TherapyState
from protocol.keys import generate_keys

START_TIMEOUT_S = 20.0
"""How long serve may take to print its pty (a loaded 2-core CI machine is slow)."""


class ServeError(HilError):
    """pumpemu serve could not be started or reached."""


class RemotePump:
    """What the runner reads of the pump, through the control API."""

    def __init__(self, control: ControlClient, profile_name: str) -> None:
        self._control = control
        self.profile = load_profile(profile_name)

    def _truth(self) -> dict[str, Any]:
        return self._control.truth()

    def status(self) -> Any:
        fw = self._truth()["firmware"]
        rx = fw.get("prescription")
        prescription = (
            SimpleNamespace(concentration_ug_per_ml=rx["concentration_ug_per_ml"])
            if isinstance(rx, dict)
            else None
        )
        return SimpleNamespace(
            time_ms=fw["time_ms"],
            local_time_ms=fw["local_time_ms"],
            state=TherapyState[fw["state"]],
            reservoir_estimate_nl=fw["reservoir_estimate_nl"],
            delivered_nl=fw["delivered_nl"],
            prescription=prescription,
            log_next_seq=fw["log_next_seq"],
        )

    def plant_truth(self) -> Any:
        return SimpleNamespace(**self._truth()["plant"])

    def log(self, since_seq: int = 0) -> tuple[LogEntry, ...]:
        entries = self._control.log(since_seq)["entries"]
        return tuple(
            LogEntry(
                e["seq"],
                e["time_ms"],
                EventKind[e["kind"]],
                e["detail"],
                e["value_a"],
                e["value_b"],
            )
            for e in entries
        )


class ServeBackend(ProgrammerSteps):
    """A ``pumpemu serve --pty --clock manual --control`` subprocess, always stopped by
    ``close()``."""

    name = "serve"

    def __init__(self, setup: Setup, seed: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="pumpemu-scenario-")
        work = Path(self._dir.name)
        rng = random.Random(seed)  # noqa: S311 (seeded: one seed, one run)
        keys = generate_keys(SERIAL, rng.randbytes(64))
        write_key_file(work / "pump.keys", keys)
        device = PumpDevice(build_pump(setup), keys, rng.randbytes)
        state = StateFile(work / "pump.state", keys)
        with state:
            state.write(device.snapshot())
        control = work / "control.sock"
        self._out = (work / "stdout").open("w+")
        self._err = (work / "stderr").open("w+")
        self._proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-c",
                "from hil.cli import main; main()",
                "serve",
                "--pty",
                "--keys",
                str(work / "pump.keys"),
                "--state",
                str(work / "pump.state"),
                "--clock",
                "manual",
                "--control",
                f"unix:{control}",
            ],
            stdout=self._out,
            stderr=self._err,
            cwd=work,
        )
        self._programmers: list[Programmer] = []
        try:
            port = self._first_line()
            self._control = ControlClient(f"unix:{control}")
            self.pump = RemotePump(self._control, setup.profile)
            self._now = self.pump.status().time_ms
            policy = RetryPolicy(reply_timeout_ms=2_000)
            clock = SystemClock()
            self._link = open_link(port)  # one pty, opened once (exclusive): both roles use it
            for role, key in ((Role.CLINICIAN, keys.clinician), (Role.PATIENT, keys.patient)):
                link = self._link
                self._programmers.append(
                    Programmer(
                        link, SERIAL, role, key, policy=policy, clock=clock, entropy=rng.randbytes
                    )
                )
        except BaseException:
            self.close()
            raise
        self.clinician, self.patient = self._programmers

    def _first_line(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._out.seek(0)
            line = self._out.readline()
            if line.endswith("\n"):
                return line.strip()
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self._err.seek(0)
        raise ServeError(f"pumpemu serve did not start: {self._err.read().strip()[-500:]}")

    def advance_to(self, internal_ms: int) -> None:
        if internal_ms > self._now:
            self._now = self._control.advance(f"{internal_ms - self._now}ms")["now_ms"]

    def inject(self, name: str, params: dict[str, Any]) -> None:
        self._control.fault(name, **params)  # the registry's own names, as the file gives

    def link_fault(self, spec: FaultSpec, start_ms: int, end_ms: int, seed: int) -> str | None:
        return "the serve backend has no fault proxy on its pty: link faults run on wire"

    def _hands(self, injected_nl: int | None, pocket_nl: int) -> str | None:
        if injected_nl is not None or pocket_nl:
            return "the serve backend cannot reach the plant's side of a refill (injected, pocket)"
        return None

    def close(self) -> None:
        for programmer in self._programmers:
            with contextlib.suppress(Exception):
                programmer.close()
        with contextlib.suppress(Exception):
            self._control.close()
        with contextlib.suppress(Exception):
            self._link.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._out.close()
        self._err.close()
        self._dir.cleanup()
