"""pumpemu's pytest plugin: fixtures for a pump and a programmer, markers, and selection
by hazard (docs/pytest-plugin.md).

Installed with pumpemu (the ``pytest11`` entry point ``pumpemu``), so any project's tests
can use it, pumpemu's own included:

- fixtures ``pump`` (in-process), ``pump_target`` (the pump the options point at),
  ``programmer`` (the reference programmer, connected), ``pump_keys``, ``pump_clock``,
  ``plant_faults``, ``pump_link`` (raw bytes to the pump) and ``pump_device_factory`` (how
  the wire and pty backends build the pump: override it to test a pump of your own);
- options ``--pump-backend api|wire|pty|url``, ``--pump-url``, ``--pump-keys``,
  ``--pump-control``, ``--pump-control-token``, ``--pump-profile``;
- markers ``role(name)``, ``pump_profile(name)``, ``needs_plant_control``;

- ``@pytest.mark.hazard("H5", ...)`` says a test demonstrates the pump-side behaviour for
  those hazards of docs/hazards.md. An ID that is not in the catalogue (hil/hazards.py) is
  a usage error at collection, so a typo never hides a test from its hazard.
- ``--hazard H5`` (repeatable) keeps exactly the tests marked with one of the IDs given and
  deselects the rest. ``-k H5`` works too: each hazard ID is a keyword of the tests marked
  with it. ``-k`` matches substrings, so ``-k H1`` also keeps H10-H17; ``--hazard H1``
  does not.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.plant import PlantTruth
from emulator.pump import Pump
from hil.clock import SystemClock
from hil.control import ControlClient
from hil.device_link import DeviceLink
from hil.fault_builders import build_fault
from hil.hazard_report import (
    FORMATS,
    CoverageRecord,
    build_rows,
    format_of,
    mitigations_from_doc,
    render,
)
from hil.hazards import HAZARDS, is_hazard_id
from hil.key_files import load_keys
from hil.links import Link, PtyLink, SerialLink
from hil.programmer.client import Programmer
from hil.programmer.core import RetryPolicy
from hil.pump_at_url import connect_pump
from hil.serve import PumpServer
from protocol.device_state import Role
from protocol.keys import PumpKeys, generate_keys

__all__ = [
    "BACKENDS",
    "DeviceFactory",
    "PlantControl",
    "PumpTarget",
    "hazard_ids",
]

BACKENDS = ("api", "wire", "pty", "url")
"""Where the pump under test is: in-process without a wire (``api``), in-process behind the
wire on a manual clock (``wire``, the default), served on a real pty in a thread of this
process (``pty``), or any pump at ``--pump-url`` (``url``: a device team's hardware, another
emulator, ``pumpemu serve``)."""

DEFAULT_PROFILE = "peristaltic-20"
TEST_SERIAL = "PE-PYTEST-1"

DeviceFactory = Callable[[str, PumpKeys], PumpDevice]
"""Builds the pump behind the wire from (profile name, keys)."""

MARKER_HELP = (
    "hazard(*ids): the test demonstrates the pump-side behaviour for hazards of "
    "docs/hazards.md (H1-H17, C1-C5); select with --hazard ID"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pumpemu")
    group.addoption(
        "--pump-backend",
        choices=BACKENDS,
        default="wire",
        help="where the pump under test is (default wire: in-process, manual clock)",
    )
    group.addoption("--pump-url", metavar="URL", help="the pump's port, for --pump-backend url")
    group.addoption(
        "--pump-keys", metavar="FILE", help="the pump's key file (url backend; default: fresh)"
    )
    group.addoption(
        "--pump-control",
        metavar="ADDR",
        help="the control API of the pump at --pump-url (pumpemu serve --control), for "
        "plant faults and time; without it those tests are skipped",
    )
    group.addoption(
        "--pump-control-token", metavar="FILE", help="token file of a TCP --pump-control"
    )
    group.addoption(
        "--pump-profile",
        metavar="NAME",
        default=DEFAULT_PROFILE,
        help=f"the profile of an emulated pump (default {DEFAULT_PROFILE})",
    )
    group.addoption(
        "--hazard-report",
        metavar="FILE",
        help="write hazard traceability (hazard -> mitigation -> tests -> outcomes) to "
        "FILE: .json, .md or .html by its suffix",
    )
    group.addoption(
        "--hazard",
        action="append",
        default=[],
        metavar="ID",
        help="run only the tests marked @pytest.mark.hazard with this ID (H1-H17, C1-C5); "
        "repeat for several",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line(
        "markers", "role(name): the programmer fixture's role, clinician (default) or patient"
    )
    config.addinivalue_line(
        "markers", "pump_profile(name): the profile of the emulated pump for this test"
    )
    config.addinivalue_line(
        "markers",
        "needs_plant_control: the test injects plant faults or moves time; skipped, with the "
        "reason, on a target without a control API",
    )
    report = config.getoption("hazard_report")
    if report and not hasattr(config, "workerinput"):  # written once, by the controller
        path = Path(report)
        if format_of(path) not in FORMATS:
            raise pytest.UsageError(
                f"--hazard-report {report}: end the name in .json, .md or .html"
            )
        config.pluginmanager.register(
            _HazardRecorder(path, config.rootpath), "pumpemu-hazard-report"
        )
    if config.getoption("pump_backend") == "url" and not config.getoption("pump_url"):
        raise pytest.UsageError("--pump-backend url needs --pump-url URL (and --pump-keys FILE)")
    unknown = [h for h in config.getoption("hazard") if not is_hazard_id(h)]
    if unknown:
        raise pytest.UsageError(
            f"--hazard {', '.join(unknown)}: not a hazard ID (known: {', '.join(HAZARDS)})"
        )


def hazard_ids(item: pytest.Item) -> tuple[str, ...]:
    """Every hazard ID the item's markers name, in marker order, each once."""
    ids: list[str] = []
    for marker in item.iter_markers("hazard"):
        for value in marker.args:
            if value not in ids:
                ids.append(value)
    return tuple(ids)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in item.iter_markers("hazard"):
            if not marker.args or not all(is_hazard_id(i) for i in marker.args):
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.hazard needs IDs of docs/hazards.md "
                    f"(H1-H17, C1-C5), got {marker.args!r}"
                )
        ids = hazard_ids(item)
        item.extra_keyword_matches.update(ids)
        if ids:
            # A user property: it reaches --junitxml and, under xdist, the controller.
            item.user_properties.append(("hazards", ",".join(ids)))
    wanted = set(config.getoption("hazard"))
    if not wanted:
        return
    keep = [item for item in items if wanted & set(hazard_ids(item))]
    dropped = [item for item in items if not wanted & set(hazard_ids(item))]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# -- the pump under test -----------------------------------------------------------------


class PlantControl(Protocol):
    """What a test may do to the pump besides programming it: plant faults and time."""

    def fault(self, name: str, **params: Any) -> None:
        """Inject a fault by its control-API name (``pumpemu fault list``)."""

    def advance(self, seconds: int) -> None:
        """Let pump time pass."""

    def truth(self) -> dict[str, Any]:
        """The plant's physical truth (the control API's ``truth`` plant fields)."""


@dataclass
class _LocalControl:
    """Control of an in-process device (wire backend)."""

    link: DeviceLink

    def fault(self, name: str, **params: Any) -> None:
        self.link.device.pump.inject(build_fault(name, params))

    def advance(self, seconds: int) -> None:
        self.link.advance(seconds * 1000)

    def truth(self) -> dict[str, Any]:
        return _plain(self.link.device.pump.plant_truth())


@dataclass
class _ServerControl:
    """Control of a pump served in this process (pty backend)."""

    server: PumpServer

    def fault(self, name: str, **params: Any) -> None:
        self.server.inject(build_fault(name, params))

    def advance(self, seconds: int) -> None:
        self.server.advance(seconds * 1000)

    def truth(self) -> dict[str, Any]:
        return _plain(self.server.view().truth)


@dataclass
class _RemoteControl:
    """The control API of a pump elsewhere (url backend with --pump-control)."""

    client: ControlClient

    def fault(self, name: str, **params: Any) -> None:
        self.client.fault(name, **params)

    def advance(self, seconds: int) -> None:
        self.client.advance(seconds)

    def truth(self) -> dict[str, Any]:
        plant: dict[str, Any] = self.client.truth()["plant"]
        return plant


def _plain(truth: PlantTruth) -> dict[str, Any]:
    """Plant truth as the control API shows it: plain JSON values (enums as integers)."""
    return {k: (int(v) if isinstance(v, int) else v) for k, v in asdict(truth).items()}


@dataclass
class PumpTarget:
    """The pump the options point at, and how to reach it."""

    backend: str
    keys: PumpKeys
    open_link: Callable[[], Link]
    """A new connection to the pump (a device path is reopened; the wire link is shared)."""
    clock: Any
    """The programmer's clock: the manual clock of an in-process pump, else real time."""
    control: PlantControl | None
    device: PumpDevice | None = None
    """The pump behind the wire when it runs in this process (wire, pty), else None."""
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self._cleanup:
            with contextlib.suppress(Exception):
                self._cleanup.pop()()


def _marker_arg(request: pytest.FixtureRequest, name: str) -> str | None:
    marker = request.node.get_closest_marker(name)
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        raise pytest.UsageError(f"@pytest.mark.{name} takes one name, got {marker.args!r}")
    value: str = marker.args[0]
    return value


@pytest.fixture
def pump_profile(request: pytest.FixtureRequest) -> str:
    """The emulated pump's profile: the test's ``pump_profile`` marker, else --pump-profile."""
    return _marker_arg(request, "pump_profile") or str(request.config.getoption("pump_profile"))


@pytest.fixture
def pump_keys(request: pytest.FixtureRequest) -> PumpKeys:
    """The pump's role keys: --pump-keys FILE, else fresh random keys for an emulated pump."""
    path = request.config.getoption("pump_keys")
    if path:
        return load_keys(path)
    return generate_keys(TEST_SERIAL, secrets.token_bytes(64))


@pytest.fixture
def pump(pump_profile: str) -> Pump:
    """A freshly implanted pump, in-process (docs/api.md): no wire, time passed in."""
    return Pump(pump_profile)


def _default_device(profile: str, keys: PumpKeys) -> PumpDevice:
    return PumpDevice(Pump(profile), keys, secrets.token_bytes)


@pytest.fixture
def pump_device_factory() -> DeviceFactory:
    """How the wire and pty backends build the pump behind the wire. Override this fixture
    in a conftest.py to run the same tests against a device of your own."""
    return _default_device


@pytest.fixture
def pump_target(
    request: pytest.FixtureRequest,
    pump_profile: str,
    pump_keys: PumpKeys,
    pump_device_factory: DeviceFactory,
) -> Iterator[PumpTarget]:
    """The pump under test, as --pump-backend says."""
    config = request.config
    backend = str(config.getoption("pump_backend"))
    if backend == "api":
        pytest.skip("--pump-backend api has no wire: this test needs a programmer")
    if backend == "wire":
        clock = ManualClock(0)
        device = pump_device_factory(pump_profile, pump_keys)
        if device.now_ms:
            clock.set(device.now_ms)
        link = DeviceLink(device, clock)
        target = PumpTarget(backend, pump_keys, lambda: link, clock, _LocalControl(link), device)
    elif backend == "pty":
        device = pump_device_factory(pump_profile, pump_keys)
        pty = PtyLink()
        server = PumpServer(device, pty, ManualClock(device.now_ms), log=lambda _line: None)
        server.start()
        target = PumpTarget(
            backend,
            pump_keys,
            lambda: SerialLink(pty.name),
            SystemClock(),
            _ServerControl(server),
            device,
        )
        target._cleanup.append(server.stop)
    else:
        # The same connection code as ``pumpemu scenario run --backend url``
        # (hil/pump_at_url.py): ctl's link URLs, fault/time/truth's control address and token.
        address = config.getoption("pump_control")
        token_file = config.getoption("pump_control_token")
        at = connect_pump(
            str(config.getoption("pump_url")),
            pump_keys,
            str(address) if address else None,
            Path(token_file) if token_file else None,
        )
        control = _RemoteControl(at.control) if at.control is not None else None
        target = PumpTarget(backend, pump_keys, at.open_link, SystemClock(), control)
        target._cleanup.append(at.close)
    if request.node.get_closest_marker("needs_plant_control") and target.control is None:
        target.close()
        pytest.skip(f"the {backend} target has no control API (--pump-control) for faults")
    try:
        yield target
    finally:
        target.close()


@pytest.fixture
def programmer(request: pytest.FixtureRequest, pump_target: PumpTarget) -> Iterator[Programmer]:
    """The reference programmer, connected to the pump under test; it opens its session
    with the first request. The role is the test's ``role`` marker (default clinician)."""
    name = _marker_arg(request, "role") or "clinician"
    try:
        role = Role[name.upper()]
    except KeyError:
        raise pytest.UsageError(
            f"@pytest.mark.role: {name!r} is not clinician or patient"
        ) from None
    keys = pump_target.keys
    link = pump_target.open_link()
    # On a manual clock a wait costs nothing, so the programmer may be as patient as a real
    # one; on real time the defaults keep a dead target from stalling a run for long.
    programmer = Programmer(
        link, keys.serial, role, keys.key_for(role), policy=RetryPolicy(), clock=pump_target.clock
    )
    try:
        yield programmer
    finally:
        with contextlib.suppress(Exception):
            programmer.close()
        if pump_target.backend != "wire":
            link.close()


@pytest.fixture
def pump_link(pump_target: PumpTarget) -> Iterator[Link]:
    """Raw bytes to the pump under test, for tests that build frames themselves."""
    link = pump_target.open_link()
    yield link
    if pump_target.backend != "wire":
        link.close()


def _control(target: PumpTarget) -> PlantControl:
    if target.control is None:
        pytest.skip(f"the {target.backend} target has no control API (--pump-control)")
    return target.control


@pytest.fixture
def plant_faults(pump_target: PumpTarget) -> PlantControl:
    """Inject plant faults into the pump under test (skipped without a control API)."""
    return _control(pump_target)


@pytest.fixture
def pump_clock(pump_target: PumpTarget) -> PlantControl:
    """Move the pump's time (skipped without a control API)."""
    return _control(pump_target)


# -- hazard traceability (--hazard-report) ------------------------------------------------


class _HazardRecorder:
    """Collects the outcome of every hazard-marked test (on the xdist controller too)."""

    def __init__(self, path: Path, rootpath: Path) -> None:
        self.path = path
        self.rootpath = rootpath
        self.outcomes: dict[str, tuple[tuple[str, ...], str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        hazards = dict(report.user_properties).get("hazards")
        if not isinstance(hazards, str):
            return
        ids = tuple(hazards.split(","))
        previous = self.outcomes.get(report.nodeid, (ids, "passed"))[1]
        if report.when == "call" or report.outcome != "passed":
            outcome = "error" if report.failed and report.when != "call" else report.outcome
            # The worst phase decides: a teardown error after a pass is an error.
            worst = max((previous, outcome), key=_SEVERITY.__getitem__)
            self.outcomes[report.nodeid] = (ids, worst)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        records = [
            CoverageRecord(nodeid, ids, outcome) for nodeid, (ids, outcome) in self.outcomes.items()
        ]
        doc = self.rootpath / "docs" / "hazards.md"
        mitigations = mitigations_from_doc(doc.read_text()) if doc.exists() else {}
        fmt = format_of(self.path)
        if fmt == "json":
            text = json.dumps(
                {
                    "tests": [
                        {"nodeid": r.nodeid, "hazards": list(r.hazards), "outcome": r.outcome}
                        for r in records
                    ],
                    "report": json.loads(render(build_rows(records, mitigations), "json")),
                },
                indent=2,
            )
        else:
            text = render(build_rows(records, mitigations), fmt)
        self.path.write_text(text, encoding="utf-8")


_SEVERITY = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


# -- scenario files as test items ---------------------------------------------------------


def _is_scenario(path: Path) -> bool:
    """A TOML file that reads as a scenario (docs/scenarios.md): an ``id``, a ``title`` and
    a story (``[[steps]]`` or ``[setup]``). Any other TOML (pyproject.toml, a prescription
    file) is left alone."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:65_536]
    except OSError:
        return False
    lines = {line.split("=", 1)[0].strip() for line in head.splitlines()}
    return "id" in lines and "title" in lines and ("[[steps]]" in lines or "[setup]" in lines)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".toml" and _is_scenario(file_path):
        collected: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
        return collected
    return None


class ScenarioFile(pytest.File):
    """One scenario file: a test item per run (a sweep expands into several)."""

    def collect(self) -> Iterator[pytest.Item]:
        from hil.scenario.loader import load  # noqa: PLC0415 (only when a scenario is found)

        for scenario in load(self.path):
            item = ScenarioItem.from_parent(self, name=scenario.id, scenario=scenario)
            if scenario.hazards:
                item.add_marker(pytest.mark.hazard(*scenario.hazards))
            yield item


class ScenarioItem(pytest.Item):
    """One scenario run, judged by the scenario runner; its failure report reads like
    ``pumpemu scenario run``'s."""

    def __init__(self, *, scenario: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result: Any = None

    def runtest(self) -> None:
        from hil.scenario.runner import run  # noqa: PLC0415

        backend = "api" if self.config.getoption("pump_backend") == "api" else "wire"
        self.result = result = run(self.scenario, backend)
        self.user_properties.append(("seed", str(self.scenario.seed)))
        self.user_properties.append(("backend", backend))
        self.user_properties.append(("figures", json.dumps(result.figures, sort_keys=True)))
        if result.verdict == "skip":
            pytest.skip(f"a step could not run on the {backend} backend")
        if result.verdict != "pass":
            raise ScenarioFailedError(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        error = excinfo.value
        if not isinstance(error, ScenarioFailedError):
            return str(super().repr_failure(excinfo))
        result = error.result
        lines = [f"scenario {result.scenario.id} [{result.backend}]: {result.verdict}"]
        if result.error:
            lines.append(f"  {result.error}")
        for finding in result.findings:
            if finding.ok is False:
                lines.append(f"FAILED {finding.where}: {finding.what}")
                lines.append(f"    expected: {finding.expected}")
                lines.append(f"    happened: {finding.happened}")
                if finding.at is not None:
                    lines.append(f"    {finding.at.describe()}")
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"scenario {self.name}"


class ScenarioFailedError(Exception):
    """A scenario run whose verdict was fail or error."""

    def __init__(self, result: Any) -> None:
        super().__init__(f"{result.scenario.id}: {result.verdict}")
        self.result = result
