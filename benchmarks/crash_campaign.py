"""Crash campaign: ``pumpemu serve --state`` killed with SIGKILL at random moments, restarted.

Run: ``.venv/bin/python benchmarks/crash_campaign.py --kills 1000 --json`` (progress on
stderr, one JSON object on stdout). Not part of the default test suite; a 50-kill run is
(tests/hil/e2e/test_state_e2e.py).

Each cycle starts ``pumpemu serve --tcp 127.0.0.1:0 --state FILE --clock manual --control
unix:SOCK`` on the same FILE, drives it with the reference programmer (hil.programmer.client:
clinician boluses and stage+commit, each with a fresh command id) and the control API (time
advances), and SIGKILLs the process after a random delay (seeded), whatever it is doing: in
the middle of a command, of a save, of an advance. After every restart it checks, against
what the programmer and the control client saw before the kill:

- ``lost_acked_commands``: a command the pump ACKed (outcome APPLIED) whose application is
  not in the restarted pump's event log (its entries carry the command id in ``value_b``,
  docs/protocol.md section 11);
- ``double_applied``: a command id applied more than once (in the log);
- ``time_went_back``: the restarted pump's time (STATUS) below a time read before the kill
  (STATUS ``pump_time_ms`` or an ``advance`` answer);
- ``unloadable_states``: a restart that refused its state file;
- ``leftover_temp_files``: temporary files of the state file still there once serve started
  (``temp_files_found_after_kill`` counts those the kills left, which the restart removes).

Commands whose outcome was not known when the pump died (the kill came before the ACK left)
are sent again, same id, after the restart: the pump must apply each exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

# Run as a script, this file's folder comes first on sys.path, and benchmarks/serial.py is
# named like pyserial's package: drop the folder so ``import serial`` finds pyserial.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from hil.control import ControlClient, ControlError  # noqa: E402
from hil.errors import HilError  # noqa: E402
from hil.key_files import write_key_file  # noqa: E402
from hil.links import SerialLink  # noqa: E402
from hil.programmer.client import Programmer  # noqa: E402
from hil.programmer.core import Outcome, RetryPolicy  # noqa: E402
from protocol.device_state import Role  # noqa: E402
from protocol.keys import PumpKeys, generate_keys  # noqa: E402
from protocol.messages import (  # noqa: E402
    ClinicianBolus,
    CommitPrescription,
    Message,
    PrescriptionStaged,
    Status,
)
from protocol.prescription import (  # noqa: E402
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)

APPLYING_KINDS = frozenset({"CLINICIAN_BOLUS_STARTED", "PRESCRIPTION_COMMITTED"})
"""The event kinds the campaign's commands write, with their command id in value_b."""
START_TIMEOUT_S = 20.0
POLICY = RetryPolicy(reply_timeout_ms=400, attempts=2, reopen_attempts=1, busy_wait_ms=0)
MAX_OPS_PER_CYCLE = 40
"""Caps the log entries one cycle writes far below the log's capacity, so every command of
the cycle before a kill is still in the log when the restart is checked."""


def prescription(rate_nl_per_day: int) -> Prescription:
    return Prescription(
        drug_name="baclofen",
        concentration_ug_per_ml=500,
        mode=InfusionMode.CONTINUOUS,
        repeat=Repeat.DAILY,
        steps=(FlexStep(0, rate_nl_per_day),),
        patient_bolus=PatientBolusLimits(
            dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=4
        ),
        low_reservoir_threshold_nl=2_000_000,
    )


def pumpemu_command() -> list[str]:
    script = Path(sys.executable).with_name("pumpemu")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from hil.cli import main; main()"]


@dataclass
class Figures:
    kills: int = 0
    lost_acked_commands: int = 0
    double_applied: int = 0
    time_went_back: int = 0
    unloadable_states: int = 0
    leftover_temp_files: int = 0
    elapsed_s: float = 0.0
    seed: int = 0
    acked_commands: int = 0
    refused_commands: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    """Refused commands by NAK code (refusals are fine: nothing was applied)."""
    unknown_then_resent: int = 0
    reported_not_applied_but_applied: int = 0
    """Commands the programmer reported NOT_APPLIED that the pump's log shows applied."""
    temp_files_found_after_kill: int = 0
    advances: int = 0
    status_reads: int = 0
    failures: list[str] = field(default_factory=list)
    """The first few problems, for a person to read."""

    def fail(self, what: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(what)


class Campaign:
    def __init__(self, kills: int, seed: int, workdir: Path, progress: bool) -> None:
        self.kills_wanted = kills
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.progress = progress
        self.figures = Figures(seed=seed)
        self.keys: PumpKeys = generate_keys("PE-CRASH01", self.rng.randbytes(64))
        self.key_file = workdir / "pump.keys"
        write_key_file(self.key_file, self.keys)
        self.state = workdir / "pump.state"
        self.sock = workdir / "control.sock"
        self.next_id = 1
        self.seen_time = 0
        self.acked_ids: set[int] = set()
        self.acked_unchecked: set[int] = set()
        self.not_applied: set[int] = set()
        self.unknown: list[Message] = []
        self.reported_double: set[int] = set()
        self.committed = False

    # -- one serve process --

    def start(self) -> tuple[subprocess.Popen[str], str] | None:
        proc = subprocess.Popen(
            [
                *pumpemu_command(),
                "serve",
                "--tcp",
                "127.0.0.1:0",
                "--keys",
                str(self.key_file),
                "--state",
                str(self.state),
                "--clock",
                "manual",
                "--control",
                f"unix:{self.sock}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        url = proc.stdout.readline().strip() if ready else ""
        if not url:
            proc.kill()
            _out, err = proc.communicate(timeout=10)
            self.figures.unloadable_states += 1
            self.figures.fail(f"serve did not start: {err.strip()[-300:]}")
            return None
        # stderr is not read while serving: send it nowhere (the pipe could fill).
        threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        return proc, url

    def control(self) -> ControlClient:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client = ControlClient(f"unix:{self.sock}", timeout_s=10)
                client.ping()
                return client
            except (ControlError, OSError, HilError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    # -- the campaign --

    def run(self) -> Figures:
        started = time.monotonic()
        cycle = 0
        while True:
            launched = self.start()
            if launched is None:
                break
            proc, url = launched
            link: SerialLink | None = None
            try:
                leftovers = [p for p in self.workdir.iterdir() if p.name.endswith(".tmp")]
                self.figures.leftover_temp_files += len(leftovers)
                control = self.control()
                link = SerialLink(url)
                programmer = Programmer(
                    link,
                    self.keys.serial,
                    Role.CLINICIAN,
                    self.keys.clinician,
                    policy=POLICY,
                    entropy=self.rng.randbytes,
                )
                if cycle:
                    self.check_restart(programmer, control)
                if cycle >= self.kills_wanted:
                    break
                self.drive_until_killed(proc, programmer, control)
            finally:
                if link is not None:
                    with contextlib.suppress(Exception):
                        link.close()
                if proc.poll() is None:
                    proc.kill()
                proc.wait(10)
            cycle += 1
            self.figures.kills += 1
            self.figures.temp_files_found_after_kill += sum(
                p.name.endswith(".tmp") for p in self.workdir.iterdir()
            )
            if self.progress and (cycle % 10 == 0 or cycle == self.kills_wanted):
                f = self.figures
                print(
                    f"crash campaign: {cycle}/{self.kills_wanted} kills, {f.acked_commands} "
                    f"ACKed, lost {f.lost_acked_commands}, double {f.double_applied}, "
                    f"time back {f.time_went_back}, {time.monotonic() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        self.figures.elapsed_s = round(time.monotonic() - started, 1)
        return self.figures

    def drive_until_killed(
        self, proc: subprocess.Popen[str], programmer: Programmer, control: ControlClient
    ) -> None:
        delay = self.rng.uniform(0.0, 0.5)
        timer = threading.Timer(delay, proc.send_signal, (signal.SIGKILL,))
        timer.start()
        try:
            ops = 0
            while proc.poll() is None:
                if ops >= MAX_OPS_PER_CYCLE:
                    time.sleep(0.01)
                    continue
                ops += 1
                self.one_op(programmer, control)
        except (HilError, OSError, ControlError, ValueError):
            pass  # the pump died under the request: its outcome is unknown (kept below)
        finally:
            timer.join()

    def one_op(self, programmer: Programmer, control: ControlClient) -> None:
        what = self.rng.choice(["bolus", "bolus", "commit", "advance", "status"])
        if what == "advance" or (what == "bolus" and not self.committed):
            answer = control.advance(f"{self.rng.randint(1, 600)}s")
            self.figures.advances += 1
            self.seen_time = max(self.seen_time, int(answer["now_ms"]))
        elif what == "status":
            self.read_status(programmer)
        elif what == "bolus":
            dose = self.rng.choice([200, 1_000, 2_000])
            duration = self.rng.choice([1, 30, 600])
            bolus = ClinicianBolus(command_id=self.fresh_id(), dose_nl=dose, duration_s=duration)
            self.command(programmer, bolus)
        else:
            rate = self.rng.choice([100_000, 200_000, 300_000])
            staged = programmer.stage(prescription(rate))
            if isinstance(staged.reply, PrescriptionStaged):
                commit = CommitPrescription(command_id=self.fresh_id(), digest=staged.reply.digest)
                self.command(programmer, commit)

    def fresh_id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value

    def command(self, programmer: Programmer, message: Message) -> None:
        command_id = int(getattr(message, "command_id"))  # noqa: B009
        self.unknown.append(message)  # until its outcome is known
        result = programmer.request(message)
        if result.outcome is Outcome.APPLIED:
            self.unknown.remove(message)
            self.acked_ids.add(command_id)
            self.acked_unchecked.add(command_id)
            self.figures.acked_commands += 1
            if isinstance(message, CommitPrescription):
                self.committed = True
        elif result.outcome in (Outcome.REFUSED, Outcome.NOT_APPLIED):
            self.unknown.remove(message)
            self.figures.refused_commands += 1
            if result.outcome is Outcome.NOT_APPLIED:
                self.not_applied.add(command_id)
            code = getattr(result.reply, "code", None)
            name = code.name if code is not None else result.outcome.name
            self.figures.refusals[name] = self.figures.refusals.get(name, 0) + 1

    def read_status(self, programmer: Programmer) -> int | None:
        result = programmer.status()
        if isinstance(result.reply, Status):
            self.figures.status_reads += 1
            self.seen_time = max(self.seen_time, result.reply.pump_time_ms)
            return result.reply.pump_time_ms
        return None

    # -- after a restart --

    def check_restart(self, programmer: Programmer, control: ControlClient) -> None:
        before = self.seen_time
        now = self.read_status(programmer)
        if now is None:
            self.figures.fail("no STATUS after a restart")
        elif now < before:
            self.figures.time_went_back += 1
            self.figures.fail(f"pump time {now} after a restart, {before} was read before")
        applied = self.applied_counts(control)
        for command_id in sorted(self.acked_unchecked):
            if applied[command_id] == 0:
                self.figures.lost_acked_commands += 1
                self.figures.fail(f"command {command_id} was ACKed and is gone")
        self.acked_unchecked.clear()
        for command_id in sorted(self.not_applied):
            if applied[command_id]:
                self.figures.reported_not_applied_but_applied += 1
                self.figures.fail(f"command {command_id} reported NOT_APPLIED, yet applied")
        self.not_applied.clear()
        # Commands the kill left unresolved: the same id again must apply at most once.
        pending, self.unknown = self.unknown, []
        for message in pending:
            self.figures.unknown_then_resent += 1
            self.command(programmer, message)
        if pending:
            applied = self.applied_counts(control)
        for command_id, count in applied.items():
            if count > 1 and command_id not in self.reported_double:
                self.reported_double.add(command_id)
                self.figures.double_applied += 1
                self.figures.fail(f"command {command_id} applied {count} times")

    def applied_counts(self, control: ControlClient) -> Counter[int]:
        counts: Counter[int] = Counter()
        for entry in control.log()["entries"]:
            if entry["kind"] in APPLYING_KINDS and entry["value_b"]:
                counts[int(entry["value_b"])] += 1
        return counts


def _drain(stream: object) -> None:
    with contextlib.suppress(Exception):
        for _line in stream:  # type: ignore[attr-defined]
            pass


def run_campaign(
    kills: int, seed: int, workdir: Path | None = None, *, progress: bool = False
) -> Figures:
    """Run ``kills`` kill-and-restart cycles; the figures (all problem counts 0 on success)."""
    if workdir is not None:
        return Campaign(kills, seed, workdir, progress).run()
    with TemporaryDirectory(prefix="pumpemu-crash-") as tmp:
        return Campaign(kills, seed, Path(tmp), progress).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = run_campaign(args.kills, args.seed, progress=True)
    out = asdict(figures)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:28} {value}")
    problems = (
        figures.lost_acked_commands
        + figures.double_applied
        + figures.time_went_back
        + figures.unloadable_states
        + figures.leftover_temp_files
    )
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
