"""The ``serve`` backend: a ``pumpemu serve`` subprocess over a pty, the real serial path
(docs/scenarios.md, "Backends").

The setup's pump is built in-process exactly as on the other backends (``build_pump``) and
handed to serve as its ``--state`` file (``write_setup_state``), so all of them start from
the same pump. Serve runs with ``--clock manual``: pump time moves only when the runner
advances it through the control API, so every programmer step happens at the same pump
instant as on ``api`` and ``wire``. From there it is the ``url`` backend with a control API
(url_backend.py): programmer steps through the blocking reference programmer over the pty,
in real link time; plant faults and time through the control API; belief and truth from
its ``truth`` and ``log``.

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

from emulator.device import PumpDevice
from hil.control import ControlClient
from hil.errors import HilError
from hil.key_files import write_key_file
from hil.programmer.core import Entropy
from hil.pump_at_url import PumpAtUrl
from hil.scenario.backends import SERIAL, build_pump
from hil.scenario.model import Setup
from hil.scenario.url_backend import UrlBackend
from hil.state_file import StateFile
from protocol.keys import PumpKeys, generate_keys

START_TIMEOUT_S = 20.0
"""How long serve may take to print its pty (a loaded 2-core CI machine is slow)."""


class ServeError(HilError):
    """pumpemu serve could not be started or reached."""


def write_setup_state(setup: Setup, keys: PumpKeys, path: Path, entropy: Entropy) -> None:
    """Write ``setup``'s pump (as every backend builds it) as a ``pumpemu serve --state``
    file: a serve started from it holds the pump the story begins with."""
    device = PumpDevice(build_pump(setup), keys, entropy)
    state = StateFile(path, keys)
    with state:
        state.write(device.snapshot())


class ServeBackend(UrlBackend):
    """A ``pumpemu serve --pty --clock manual --control`` subprocess, always stopped by
    ``close()``."""

    name = "serve"

    def __init__(self, setup: Setup, seed: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="pumpemu-scenario-")
        work = Path(self._dir.name)
        rng = random.Random(seed)  # noqa: S311 (seeded: one seed, one run)
        keys = generate_keys(SERIAL, rng.randbytes(64))
        write_key_file(work / "pump.keys", keys)
        write_setup_state(setup, keys, work / "pump.state", rng.randbytes)
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
        self._serve_target: PumpAtUrl | None = None
        try:
            port = self._first_line()
            self._serve_target = PumpAtUrl(port, keys, ControlClient(f"unix:{control}"))
            super().__init__(self._serve_target, setup, entropy=rng.randbytes)
        except BaseException:
            self.close()
            raise

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

    def close(self) -> None:
        super().close()
        if self._serve_target is not None:
            self._serve_target.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        with contextlib.suppress(Exception):
            self._out.close()
            self._err.close()
        self._dir.cleanup()
