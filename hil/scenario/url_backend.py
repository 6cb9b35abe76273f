"""The ``url`` backend: any pump at a link URL, driven as a clinic would drive it
(docs/scenarios.md, "Backends").

Programmer steps go through the blocking reference programmer (hil/programmer/client.py)
over the link ``pumpemu ctl --port`` opens, with the keys of the pump's key file, in real
link time (hil/pump_at_url.py, shared with the pytest plugin). With a control API
(``--control``, as ``pumpemu fault/time/truth`` take it) plant faults and time go through
it, and belief and truth are read from its ``truth`` and ``log``: that is the ``serve``
backend's path too (serve_backend.py starts a serve and then runs this).

Without a control API the target is a real rig, and the runner is told what it cannot do,
so that it reports it skipped with the reason, never passed:

- moving time: a rig's clock is real, so no step after ``0d 00:00`` can be reached
  (``advance_to`` gives the reason; the runner skips every later step);
- plant faults (the plant is out of reach) and link faults (no proxy on the link);
- plant truth (``no_truth``): the oracles that compare belief with truth are skipped;
  belief is read over the wire (STATUS, CURRENT_PRESCRIPTION, EVENT_LOG_PAGE);
- a refill with no ``withdrawn`` figure (what the syringe drew is plant truth) or with
  ``injected``/``pocket`` (where the drug really went).

The url backend does not build the pump from ``[setup]``: it finds it as it is. It checks
the one thing it can read that the story depends on, the committed prescription, and a run
whose target does not hold ``[setup]``'s prescription is a setup error, not a run.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

from emulator.profile import load_profile
from hil.control import ControlClient, ControlError
from hil.errors import HilError
from hil.links import SerialLink
from hil.programmer.client import Programmer
from hil.programmer.core import Entropy, Outcome, RetryPolicy
from hil.proxy.faults import FaultSpec
from hil.pump_at_url import PumpAtUrl
from hil.scenario.backends import SetupError, StepResult
from hil.scenario.model import Setup
from hil.scenario.wire_backend import ProgrammerSteps
from protocol.device_state import EventKind, LogEntry, Role, TherapyState
from protocol.messages import (
    CurrentPrescription,
    EventLogPage,
    Message,
    ReadEventLog,
    ReadPrescription,
    ReadStatus,
    Status,
)
from protocol.units import U32_MAX

REPLY_TIMEOUT_MS = 2_000
"""How long the programmer waits for one reply before it retries (a rig answers in ms)."""

NO_TIME = (
    "the target's clock is real and only a control API (--control) moves pump time: no "
    "step after 0d 00:00 can be reached"
)
NO_PLANT = "a plant fault needs the control API (--control): a real rig's plant is out of reach"
NO_TRUTH = (
    "plant truth needs the control API (--control): a real rig shows only what its "
    "firmware believes"
)
LOG_PAGE = 32


class TargetError(HilError):
    """The target did not answer a read the runner needs."""


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


class WirePump:
    """What the runner reads of a pump it reaches only as a programmer does: firmware
    belief over the wire, one session per reading. There is no plant truth, and the
    firmware's count of what it delivered is not on the wire (``delivered_nl`` is 0:
    the dose oracles that need it are skipped with the truth ones)."""

    def __init__(self, programmer: Programmer, profile_name: str) -> None:
        self._programmer = programmer
        self.profile = load_profile(profile_name)
        self.first_seq: int | None = None
        """The log position when the run began: older entries are not the story's."""

    def _read(self, message: Message, reply: type[Message]) -> Any:
        result = self._programmer.request(message)
        if result.outcome is not Outcome.ANSWERED or not isinstance(result.reply, reply):
            raise TargetError(
                f"the target did not answer {type(message).__name__}: {result.outcome.value}"
                f"{' (' + result.detail + ')' if result.detail else ''}"
            )
        return result.reply

    def status(self) -> Any:
        try:
            status: Status = self._read(ReadStatus(), Status)
            current: CurrentPrescription = self._read(ReadPrescription(), CurrentPrescription)
            page: EventLogPage = self._read(ReadEventLog(from_seq=U32_MAX, count=1), EventLogPage)
        finally:
            self._programmer.close()
        if self.first_seq is None:
            self.first_seq = page.next_seq
        return SimpleNamespace(
            time_ms=status.pump_time_ms,
            local_time_ms=status.pump_time_ms,
            state=status.state,
            reservoir_estimate_nl=status.reservoir_nl,
            delivered_nl=0,
            prescription=current.prescription,
            log_next_seq=page.next_seq,
        )

    def plant_truth(self) -> Any:
        raise TargetError(NO_TRUTH)

    def log(self, since_seq: int = 0) -> tuple[LogEntry, ...]:
        seq = max(since_seq, self.first_seq or 0)
        entries: list[LogEntry] = []
        try:
            while True:
                page: EventLogPage = self._read(
                    ReadEventLog(from_seq=seq, count=LOG_PAGE), EventLogPage
                )
                entries.extend(page.entries)
                if not page.entries or page.entries[-1].seq + 1 >= page.next_seq:
                    return tuple(entries)
                seq = page.entries[-1].seq + 1
        finally:
            self._programmer.close()


class UrlBackend(ProgrammerSteps):
    """The pump at ``target``: one link for both roles (a pty or a serial device admits one
    opener), the clinician's and the patient's programmers on it."""

    name = "url"
    _programmers: tuple[Programmer, ...] = ()
    _link: SerialLink | None = None
    _target: PumpAtUrl | None = None

    def __init__(self, target: PumpAtUrl, setup: Setup, *, entropy: Entropy | None = None) -> None:
        self._target = target
        self._link = target.open_link()
        try:
            self._connect(target, setup, entropy)
        except BaseException:
            self.close()  # a target that does not answer keeps no port open
            raise

    def _connect(self, target: PumpAtUrl, setup: Setup, entropy: Entropy | None) -> None:
        assert self._link is not None
        policy = RetryPolicy(reply_timeout_ms=REPLY_TIMEOUT_MS)
        more: dict[str, Any] = {} if entropy is None else {"entropy": entropy}
        self._programmers = tuple(
            target.programmer(self._link, role, policy=policy, **more)
            for role in (Role.CLINICIAN, Role.PATIENT)
        )
        self.clinician, self.patient = self._programmers
        self._control = target.control
        self.pump: RemotePump | WirePump
        if self._control is not None:
            self.pump = RemotePump(self._control, setup.profile)
            self.no_truth: str | None = None
        else:
            self.pump = WirePump(self.clinician, setup.profile)
            self.no_truth = NO_TRUTH
        status = self.pump.status()
        # The scenario's 0d 00:00 is the target's time now: pump time moves by differences.
        self._now = status.time_ms
        self._offset = status.time_ms - setup.clock_ms
        if self._control is None:
            self._check_prescription(setup)

    def _check_prescription(self, setup: Setup) -> None:
        """The story's programmed-dose ledger starts from ``[setup]``'s prescription: a
        target that holds another one would be judged against the wrong story."""
        status = self.pump.status()
        if status.prescription != setup.prescription:
            raise SetupError(
                "the target's committed prescription is not the scenario's [setup] one: the "
                "url backend runs the story on the pump as it finds it (program it first)"
            )

    def advance_to(self, internal_ms: int) -> str | None:
        target_ms = internal_ms + self._offset
        if target_ms <= self._now:
            return None
        if self._control is None:
            return NO_TIME
        try:
            self._now = self._control.advance(f"{target_ms - self._now}ms")["now_ms"]
        except ControlError as exc:
            return f"the control API cannot move the target's clock: {exc}"
        return None

    def inject(self, name: str, params: dict[str, Any]) -> str | None:
        if self._control is None:
            return NO_PLANT
        self._control.fault(name, **params)  # the registry's own names, as the file gives
        return None

    def link_fault(self, spec: FaultSpec, start_ms: int, end_ms: int, seed: int) -> str | None:
        return (
            f"the {self.name} backend has no fault proxy on its link: put pumpemu proxy "
            "between (docs/proxy.md) or run it on wire"
        )

    def _hands(self, injected_nl: int | None, pocket_nl: int) -> str | None:
        if injected_nl is not None or pocket_nl:
            return (
                f"the {self.name} backend cannot reach the plant's side of a refill "
                "(injected, pocket)"
            )
        return None

    def _refill(self, peer: Any, params: dict[str, Any], ids: tuple[int, ...]) -> StepResult:
        if self.no_truth is not None and params["withdrawn_nl"] is None:
            return StepResult(
                skipped="what the syringe drew is plant truth: give the step withdrawn = "
                "(the reading a clinician enters), or --control"
            )
        return super()._refill(peer, params, ids)

    def close(self) -> None:
        for programmer in self._programmers:
            with contextlib.suppress(Exception):
                programmer.close()
        if self._link is not None:
            with contextlib.suppress(Exception):
                self._link.close()
