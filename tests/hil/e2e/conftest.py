"""Fixtures for the serve end-to-end tests: a ``pumpemu serve`` subprocess, always cleaned up.

Every wait is bounded. Output is drained by threads so a chatty process never blocks on a
full pipe, and the process is killed in the fixture's teardown whatever the test did.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hil.key_files import write_key_file
from protocol.keys import PumpKeys, generate_keys

START_TIMEOUT_S = 10.0


def pumpemu_command() -> list[str]:
    """The installed ``pumpemu`` script beside this interpreter, or the module itself."""
    script = Path(sys.executable).with_name("pumpemu")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from hil.cli import main; main()"]


class ServeProcess:
    """A running ``pumpemu serve`` (or another long-running subcommand such as ``proxy``):
    its stdout lines, its stderr lines, its exit."""

    def __init__(
        self,
        args: list[str],
        cwd: Path,
        subcommand: str = "serve",
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*pumpemu_command(), subcommand, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # A file size limit needs the child's own setrlimit (test_state_e2e.py); the
            # hook only calls setrlimit, which is safe between fork and exec.
            preexec_fn=preexec_fn,  # noqa: PLW1509
        )
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._drain_stdout, daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _drain_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._stdout.put(line.rstrip("\n"))
        self._stdout.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self._stderr.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._stderr.append("<eof>")
            self._cond.notify_all()

    def first_line(self, timeout_s: float = START_TIMEOUT_S) -> str:
        try:
            line = self._stdout.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(
                f"no stdout line within {timeout_s} s; stderr: {self.stderr}"
            ) from None
        assert line is not None, f"serve exited before printing its address; stderr: {self.stderr}"
        return line

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self._stderr)

    def wait_stderr(self, text: str, timeout_s: float = 5.0) -> str:
        """The first stderr line containing ``text`` (waits, bounded)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: any(text in line for line in self._stderr), timeout_s)
            lines = list(self._stderr)
        assert ok, f"no stderr line with {text!r} within {timeout_s} s:\n" + "\n".join(lines)
        return next(line for line in lines if text in line)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 5.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout_s)
        self.wait_stderr("<eof>", timeout_s)
        return code

    def kill(self) -> None:
        """Kill the process if it still runs, then release its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for thread in self._threads:
            thread.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """``serve("--pty", "--keys", K, ...)`` starts pumpemu serve; teardown always kills it."""
    started: list[ServeProcess] = []

    def start(*args: str, preexec_fn: Callable[[], None] | None = None) -> ServeProcess:
        process = ServeProcess(list(args), tmp_path, preexec_fn=preexec_fn)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@pytest.fixture
def pump_keys(tmp_path: Path) -> tuple[PumpKeys, Path]:
    keys = generate_keys("PE-000042", os.urandom(64))
    path = tmp_path / "pump.keys"
    write_key_file(path, keys)
    return keys, path
