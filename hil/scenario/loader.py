"""Scenario files in, ``Scenario`` values out (docs/scenarios.md).

Every door goes through ``protocol.documents.parse_toml`` (bounded), and every quantity
through hil/quantities.py, the one parser of durations and units in hil/. A bad file
is one ``ScenarioError`` naming ``file:line`` and what is wrong, never a traceback: the CLI
turns it into exit code 2.

``tomllib`` gives no positions, so ``_Lines`` finds the line of a key from the text: the
header of the table the key lives in (``[[steps]]`` counted), then the key within it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from emulator.errors import ProfileError
from emulator.profile import Profile, builtin_profile_names, load_profile
from hil import quantities as q
from hil.control_catalogue import parse_fault_param
from hil.ctl import prescription_file
from hil.errors import UsageError
from hil.fault_builders import FAULT_ALIASES, FAULTS, build_fault
from hil.hazards import is_hazard_id
from hil.scenario.model import (
    ACTIONS,
    OUTCOMES,
    PROGRAMMER_ACTIONS,
    Expect,
    Oracle,
    Scenario,
    Setup,
    Step,
)
from hil.text_files import TextFileError, read_text_file
from protocol.device_state import AlarmKind, EventKind, TherapyState
from protocol.documents import DocumentError, parse_toml
from protocol.messages import OVERRIDE_DOSE_CHANGE, OVERRIDE_SOFT_LIMIT
from protocol.prescription import Prescription
from protocol.refusal import FieldId, RefusalCode

MAX_FILE_BYTES = 1 << 20
MAX_SWEEP_RUNS = 10_000
"""A sweep larger than this is refused: a typo in a range must not start a week of runs."""


DEFAULT_CLOCK = "2026-01-05T00:00:00"
"""A Monday at midnight: the pump clock at ``0d 00:00`` unless ``setup.clock`` says."""

_TOP = frozenset(
    {"id", "title", "hazards", "tags", "seed", "end", "setup", "steps", "oracles", "sweep"}
)
_SETUP = frozenset({"profile", "age", "clock", "reservoir", "catheter", "prescription"})
_RESERVOIR = frozenset({"volume", "drug", "concentration"})
_CATHETER = frozenset({"length_cm", "primed"})
_STEP_COMMON = frozenset({"at", "after", "do", "name", "expect"})
_PROGRAMMER_COMMON = frozenset({"role"})
_STEP_KEYS: Mapping[str, frozenset[str]] = {
    "interrogate": frozenset({"read"}),
    "program": frozenset({"prescription", "override"}),
    "clinician-bolus": frozenset({"dose", "duration"}),
    "patient-bolus": frozenset(),
    "cancel-bolus": frozenset(),
    "prime": frozenset({"volume"}),
    "refill": frozenset({"volume", "withdrawn", "injected", "pocket", "concentration"}),
    "start": frozenset(),
    "stop": frozenset(),
    "acknowledge": frozenset({"alarm"}),
    "alarm-test": frozenset(),
    "set-clock": frozenset({"time"}),
    "clear-memory-error": frozenset(),
    "reset-flow-valve": frozenset(),
    "fault": frozenset({"fault", "params"}),
    "link-fault": frozenset({"kind", "when", "dir", "duration", "params"}),
    "advance": frozenset(),
}
_EXPECT = frozenset(
    {"outcome", "refusal", "field", "limit", "state", "alarms", "log", "no_log", "discrepancy"}
)
READS = ("status", "log", "alarms", "prescription", "clock", "info")
_ORACLE_KEYS: Mapping[str, frozenset[str]] = {
    "dose": frozenset(
        {"from", "to", "per", "believed", "patient", "patient_at_most", "patient_at_least"}
    ),
    "refill-discrepancy": frozenset({"step", "flagged", "sign"}),
    "alarm-latency": frozenset({"fault", "alarm", "within", "never"}),
    "exactly-once": frozenset(),
    "reservoir": frozenset({"from", "to", "every", "max_gap", "min_gap"}),
}
ORACLE_CHECKS = tuple(_ORACLE_KEYS)
SIGNS = ("negative", "positive", "zero")

Path_ = tuple[str | int, ...]


class ScenarioError(UsageError):
    """A scenario file that cannot be run: ``file:line: what is wrong``."""


class _FileError(Exception):
    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


# -- line numbers ---------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


class _Lines:
    """Where a key of the document is written: the table header, then the key under it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[int, Path_]] = []  # (index of the line, concrete path)
        arrays: dict[str, int] = {}
        for number, line in enumerate(self.lines):
            match = _HEADER.match(line)
            if match is None:
                continue
            parts = [p.strip().strip("\"'") for p in match.group(2).split(".")]
            path: list[str | int] = []
            for i, part in enumerate(parts):
                path.append(part)
                name = ".".join(parts[: i + 1])
                last = i == len(parts) - 1
                if last and match.group(1) == "[[":
                    arrays[name] = arrays.get(name, 0) + 1
                    path.append(arrays[name] - 1)
                elif name in arrays:
                    path.append(arrays[name] - 1)
            self.headers.append((number, tuple(path)))

    def line(self, path: Path_) -> int:
        best = -1
        best_len = 0
        for number, header in self.headers:
            if len(header) >= best_len and tuple(path[: len(header)]) == header:
                best, best_len = number, len(header)
        rest = [p for p in path[best_len:] if isinstance(p, str)]
        start = best + 1
        following = [n for n, _ in self.headers if n > best]
        end = following[0] if following else len(self.lines)
        if rest:
            key = re.compile(rf"^\s*[\"']?{re.escape(rest[0])}[\"']?\s*=")
            for number in range(start, end):
                if key.match(self.lines[number]):
                    return number + 1
            inner = re.compile(rf"[{{,]\s*[\"']?{re.escape(rest[-1])}[\"']?\s*=")
            for number in range(start, end):
                if inner.search(self.lines[number]):
                    return number + 1
        return max(best + 1, 1)


# -- entry points ---------------------------------------------------------------------------


def scenario_files(paths: Sequence[str]) -> list[Path]:
    """The scenario files PATHS name: a file as given (``load`` reports one that does not
    exist), a directory as every ``.toml`` below it, sorted. A directory without one is a
    ``ScenarioError``."""
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(path.rglob("*.toml"))
            if not found:
                raise ScenarioError(f"{text}:1: a directory with no .toml scenario files")
            out.extend(found)
        else:
            out.append(path)
    return out


def _read(path: str | os.PathLike[str]) -> str:
    try:
        return read_text_file(path, max_bytes=MAX_FILE_BYTES)
    except TextFileError as exc:
        raise ScenarioError(f"{os.fspath(path)}:1: {exc}") from None


def load(path: str | os.PathLike[str]) -> list[Scenario]:
    """Every run a scenario file describes (one, or one per sweep point)."""
    return list(open_runs(path))


def loads(text: str, name: str = "<scenario>", *, base: Path | None = None) -> list[Scenario]:
    """Parse scenario TOML ``text``; ``name`` is used in messages, ``base`` resolves files."""
    return list(Runs(text, name, base=base))


def open_runs(path: str | os.PathLike[str]) -> Runs:
    """The runs of a scenario file, each built when it is asked for (``Runs``)."""
    return Runs(_read(path), os.fspath(path), base=Path(path).resolve().parent)


class Runs(Sequence[Scenario]):
    """The runs a scenario text describes, built one at a time on demand.

    The document is parsed and the sweep checked (its keys, its size) at once, so a bad
    file fails here; each sweep point is built only when indexed. A campaign worker that
    runs point 817 of a 1,000-point sweep builds that one point, not all 1,000 (building a
    point costs about as much as running a 30-day story on the api backend)."""

    def __init__(self, text: str, name: str = "<scenario>", *, base: Path | None = None) -> None:
        try:
            document = parse_toml(text, max_bytes=MAX_FILE_BYTES)
        except DocumentError as exc:
            message = str(exc)
            match = re.search(r"\(at line (\d+), column \d+\)", message)
            line = int(match.group(1)) if match else 1
            raise ScenarioError(f"{name}:{line}: {message}") from None
        self._document = document
        self._name = name
        self._base = base or Path.cwd()
        self._lines = _Lines(text)
        try:
            self._axes = _axes(document)
        except _FileError as bad:
            raise ScenarioError(f"{name}:{self._lines.line(bad.path)}: {bad.message}") from None
        self._count = math.prod(len(values) for _, values in self._axes)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Scenario: ...

    @overload
    def __getitem__(self, index: slice) -> list[Scenario]: ...

    def __getitem__(self, index: int | slice) -> Scenario | list[Scenario]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(f"{self._name} has {self._count} run(s), not run {index + 1}")
        return self._run(index % self._count)

    def __iter__(self) -> Iterator[Scenario]:
        return (self._run(i) for i in range(self._count))

    def _run(self, index: int) -> Scenario:
        doc, values = _point(self._document, self._axes, index)
        try:
            run = _build(doc, self._name, self._base, values)
        except _FileError as bad:
            raise ScenarioError(
                f"{self._name}:{self._lines.line(bad.path)}: {bad.message}"
            ) from None
        lines = self._lines
        return dataclasses.replace(
            run,
            steps=tuple(
                dataclasses.replace(s, line=lines.line(("steps", s.index))) for s in run.steps
            ),
            oracles=tuple(
                dataclasses.replace(o, line=lines.line(("oracles", o.index))) for o in run.oracles
            ),
        )


# -- sweeps ---------------------------------------------------------------------------------


_Axes = list[tuple[str, list[Any]]]


def _axes(document: Mapping[str, Any]) -> _Axes:
    """The sweep's keys and values, checked (an empty list: no sweep, one run)."""
    sweep = document.get("sweep")
    if sweep is None:
        return []
    if not isinstance(sweep, Mapping):
        raise _FileError(("sweep",), "sweep must be a table of key = [values] or {from, to, step}")
    axes: _Axes = []
    for key, spec in sweep.items():
        values = _sweep_values(key, spec)
        if not values:
            raise _FileError(("sweep", key), f"sweep {key!r} expands to nothing")
        if key != "seed":
            _sweep_target(document, key)
        axes.append((key, values))
    if not axes:
        raise _FileError(("sweep",), "the sweep table is empty: it expands to nothing")
    total = math.prod(len(values) for _, values in axes)
    if total > MAX_SWEEP_RUNS:
        raise _FileError(("sweep",), f"the sweep expands to {total} runs, at most {MAX_SWEEP_RUNS}")
    return axes


def _point(
    document: Mapping[str, Any], axes: _Axes, index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sweep point ``index`` (in ``itertools.product`` order: the last key varies fastest)
    as its document and its chosen values."""
    if not axes:
        return dict(document), {}
    combo: list[Any] = []
    for _, values in reversed(axes):
        index, at = divmod(index, len(values))
        combo.append(values[at])
    combo.reverse()
    doc = copy.deepcopy(dict(document))
    del doc["sweep"]
    chosen: dict[str, Any] = {}
    for (key, _), value in zip(axes, combo, strict=True):
        chosen[key] = value
        if key == "seed":
            doc["seed"] = value
            continue
        *parents, leaf = _sweep_target(doc, key)
        table: Any = doc
        for part in parents:
            table = table[part]
        table[leaf] = value
    doc["id"] = f"{doc.get('id', 'scenario')}{_sweep_label(chosen)}"
    return doc, chosen


def _sweep_label(chosen: Mapping[str, Any]) -> str:
    return "[" + ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in chosen.items()) + "]"


def _sweep_values(key: str, spec: Any) -> list[Any]:
    if isinstance(spec, list):
        return list(spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"from", "to", "step"}
        if unknown or not {"from", "to"} <= set(spec):
            raise _FileError(
                ("sweep", key), f"sweep {key!r}: a range is {{from = A, to = B, step = S}}"
            )
        low, high, stride = spec["from"], spec["to"], spec.get("step", 1)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, stride)):
            raise _FileError(("sweep", key), f"sweep {key!r}: from, to and step must be integers")
        if stride < 1:
            raise _FileError(("sweep", key), f"sweep {key!r}: step must be at least 1")
        return list(range(low, high + 1, stride))
    raise _FileError(("sweep", key), f"sweep {key!r} must be a list or a range table")


def _sweep_target(doc: Mapping[str, Any], key: str) -> list[str | int]:
    """The path a sweep key names (``setup.reservoir.volume``, ``steps.2.dose``)."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    table: Any = doc
    for part in parts[:-1]:
        ok = (isinstance(table, Mapping) and part in table) or (
            isinstance(table, list) and isinstance(part, int) and part < len(table)
        )
        if not ok:
            raise _FileError(("sweep", key), f"sweep key {key!r} names nothing in this file")
        table = table[part]
    if not isinstance(table, Mapping | list):
        raise _FileError(("sweep", key), f"sweep key {key!r} names nothing in this file")
    return parts


# -- building -------------------------------------------------------------------------------


def _keys(table: Any, allowed: frozenset[str], path: Path_, what: str) -> Mapping[str, Any]:
    if not isinstance(table, Mapping):
        raise _FileError(path, f"{what} must be a table")
    for key in table:
        if key not in allowed:
            hint = ", ".join(sorted(allowed)) or "none"
            raise _FileError((*path, key), f"unknown key {key!r} in {what} (allowed: {hint})")
    return table


def _str(table: Mapping[str, Any], key: str, path: Path_, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        if value is None:
            raise _FileError((*path, key), f"{key} is missing")
        raise _FileError((*path, key), f"{key} must be a string, got {_show(value)}")
    return value


def _int(table: Mapping[str, Any], key: str, path: Path_, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FileError((*path, key), f"{key} must be an integer, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.40}"


def _quantity(table: Mapping[str, Any], key: str, path: Path_, parse: Any) -> int | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, str):
        raise _FileError((*path, key), f"{key} must be a string with its unit, got {_show(value)}")
    try:
        result: int = parse(value)
    except q.QuantityError as exc:
        raise _FileError((*path, key), f"{key}: {exc}") from None
    return result


def parse_time(text: str) -> int:
    """A scenario time in ms: ``2d 08:00``, ``08:00`` (day 0), or a duration (``36h``), in
    the one duration grammar (hil/quantities.py, docs/quantities.md)."""
    return q.parse_duration(text) * 1_000


def _time(table: Mapping[str, Any], key: str, path: Path_) -> int | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, str):
        raise _FileError(
            (*path, key), f'{key} must be a time string like "2d 08:00", got {_show(value)}'
        )
    try:
        return parse_time(value)
    except q.QuantityError as exc:
        raise _FileError((*path, key), f"{key}: {exc}") from None


def _duration_ms(table: Mapping[str, Any], key: str, path: Path_) -> int | None:
    seconds = _quantity(table, key, path, q.parse_duration)
    return None if seconds is None else seconds * 1_000


def _name_of(enum: Any, value: Any, path: Path_, what: str) -> str:
    if not isinstance(value, str):
        raise _FileError(path, f"{what} must be a name, got {_show(value)}")
    key = value.strip().upper().replace("-", "_").replace(" ", "_")
    if key not in enum.__members__:
        known = ", ".join(enum.__members__)
        raise _FileError(path, f"unknown {what} {value!r} (known: {known})")
    return key


def _names(enum: Any, value: Any, path: Path_, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _FileError(path, f"{what}s must be a list of names, got {_show(value)}")
    return tuple(_name_of(enum, v, path, what) for v in value)


def _build(doc: Mapping[str, Any], name: str, base: Path, sweep: Mapping[str, Any]) -> Scenario:
    _keys(doc, _TOP, (), "a scenario")
    sid = _str(doc, "id", ())
    base_id = sid[: -len(_sweep_label(sweep))] if sweep else sid  # a sweep adds [k=v,...]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,100}", base_id):
        raise _FileError(("id",), f"id {base_id!r} must be letters, digits, '-', '_' or '.'")
    title = _str(doc, "title", ())
    hazards = doc.get("hazards", [])
    if not isinstance(hazards, list) or not all(isinstance(h, str) for h in hazards):
        raise _FileError(("hazards",), 'hazards must be a list of ids like "H13"')
    for hazard in hazards:
        if not is_hazard_id(hazard):
            raise _FileError(
                ("hazards",), f"unknown hazard {hazard!r}: ids are H1-H17, C1-C5 (docs/hazards.md)"
            )
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _FileError(("tags",), "tags must be a list of strings")
    seed = _int(doc, "seed", (), 0)
    if not 0 <= seed < 2**64:
        raise _FileError(("seed",), "seed must be 0..2^64-1")
    setup, _profile_checked = _setup(doc.get("setup", {}), base)
    steps = _steps(doc.get("steps", []), setup, base)
    oracles = _oracles(doc.get("oracles", []), steps)
    end = _time(doc, "end", ())
    last = steps[-1].at_ms if steps else 0
    if end is not None and end < last:
        raise _FileError(("end",), "end is before the last step (time going backwards)")
    return Scenario(
        id=sid,
        title=title,
        hazards=tuple(hazards),
        tags=tuple(tags),
        seed=seed,
        path=name,
        setup=setup,
        steps=steps,
        oracles=oracles,
        end_ms=max(last, end or 0, *_oracle_ends(oracles)),
        sweep=dict(sweep),
    )


def _oracle_ends(oracles: Sequence[Oracle]) -> list[int]:
    """A window's ``to`` is run to: an oracle never judges a window the run stopped short of."""
    return [o.params["to_ms"] for o in oracles if o.params.get("to_ms") is not None]


def _profile(text: str, base: Path) -> Profile:
    if text in builtin_profile_names():
        return load_profile(text)
    return load_profile(base / text)


def _setup(table: Any, base: Path) -> tuple[Setup, Profile]:
    path: Path_ = ("setup",)
    t = _keys(table, _SETUP, path, "[setup]")
    profile_name = _str(t, "profile", path, "peristaltic-20")
    try:
        profile = _profile(profile_name, base)
    except ProfileError as exc:
        raise _FileError((*path, "profile"), str(exc)) from None
    if profile_name not in builtin_profile_names():
        profile_name = str((base / profile_name).resolve())
    age = _quantity(t, "age", path, q.parse_duration) or 0
    clock_text = _str(t, "clock", path, DEFAULT_CLOCK)
    try:
        clock = q.parse_pump_time(clock_text) if clock_text.lower() != "now" else -1
    except q.QuantityError as exc:
        raise _FileError((*path, "clock"), f"clock: {exc}") from None
    if clock < age * 1_000:
        raise _FileError(
            (*path, "clock"), "clock must be a fixed time (not 'now') after the pump's age"
        )
    res = _keys(t.get("reservoir", {}), _RESERVOIR, (*path, "reservoir"), "setup.reservoir")
    volume = _quantity(res, "volume", (*path, "reservoir"), q.parse_volume)
    if volume is not None and volume > profile.reservoir_usable_nl:
        raise _FileError(
            (*path, "reservoir", "volume"),
            f"volume is above the profile's usable {q.volume(profile.reservoir_usable_nl)}",
        )
    conc = _quantity(res, "concentration", (*path, "reservoir"), q.parse_concentration)
    drug = res.get("drug")
    if drug is not None and not isinstance(drug, str):
        raise _FileError((*path, "reservoir", "drug"), "drug must be a string")
    cat = _keys(t.get("catheter", {}), _CATHETER, (*path, "catheter"), "setup.catheter")
    length = cat.get("length_cm")
    if length is not None and (
        isinstance(length, bool)
        or not isinstance(length, int)
        or not 1 <= length <= profile.catheter_max_length_cm
    ):
        raise _FileError(
            (*path, "catheter", "length_cm"),
            f"length_cm must be an integer 1..{profile.catheter_max_length_cm}",
        )
    primed = cat.get("primed", True)
    if not isinstance(primed, bool):
        raise _FileError((*path, "catheter", "primed"), "primed must be true or false")
    rx = None
    if "prescription" in t:
        rx = _prescription(t["prescription"], (*path, "prescription"), base)
        if conc is not None and conc != rx.concentration_ug_per_ml:
            raise _FileError(
                (*path, "reservoir", "concentration"),
                "the reservoir's concentration differs from the prescription's",
            )
        if drug is not None and drug.lower() != rx.drug_name.lower():
            raise _FileError(
                (*path, "reservoir", "drug"), "the reservoir's drug differs from the prescription's"
            )
        conc, drug = rx.concentration_ug_per_ml, rx.drug_name
    setup = Setup(
        profile=profile_name,
        age_ms=age * 1_000,
        clock_ms=clock,
        reservoir_nl=volume,
        drug=drug,
        concentration_ug_per_ml=conc,
        catheter_length_cm=length,
        catheter_primed=primed,
        prescription=rx,
    )
    return setup, profile


def _prescription(value: Any, path: Path_, base: Path) -> Prescription:
    try:
        if isinstance(value, str):
            return prescription_file.load(base / value).prescription
        if isinstance(value, Mapping):
            return prescription_file.from_table(value, "prescription").prescription
    except prescription_file.PrescriptionFileError as exc:
        raise _FileError(path, str(exc)) from None
    raise _FileError(path, "prescription must be an inline table or a prescription file's path")


def _steps(value: Any, setup: Setup, base: Path) -> tuple[Step, ...]:
    if not isinstance(value, list):
        raise _FileError(("steps",), "steps must be an array of tables: [[steps]]")
    steps: list[Step] = []
    now = 0
    concentration = setup.concentration_ug_per_ml
    names: set[str] = set()
    for index, raw in enumerate(value):
        path: Path_ = ("steps", index)
        if not isinstance(raw, Mapping):
            raise _FileError(path, "a step must be a table")
        do = raw.get("do")
        if not isinstance(do, str) or do not in _STEP_KEYS:
            raise _FileError((*path, "do"), f"unknown step {do!r} (known: {', '.join(ACTIONS)})")
        allowed = _STEP_COMMON | _STEP_KEYS[do]
        if do in PROGRAMMER_ACTIONS:
            allowed |= _PROGRAMMER_COMMON
        t = _keys(raw, allowed, path, f"a {do} step")
        at = _time(t, "at", path)
        after = _duration_ms(t, "after", path)
        if at is not None and after is not None:
            raise _FileError((*path, "after"), "give at or after, not both")
        when = at if at is not None else now + (after or 0)
        if when < now:
            raise _FileError(
                (*path, "at"), "time going backwards: this step is before the previous one"
            )
        now = when
        step_name = _str(t, "name", path, f"{do}-{index + 1}")
        if step_name in names:
            raise _FileError((*path, "name"), f"two steps are named {step_name!r}")
        names.add(step_name)
        params, concentration = _params(do, t, path, concentration, base)
        expect = _expect(t["expect"], (*path, "expect")) if "expect" in t else None
        line = 0  # filled by the caller's _Lines when reporting; kept for reports
        steps.append(Step(index, line, when, do, step_name, params, expect))
    return tuple(steps)


def _dose(t: Mapping[str, Any], key: str, path: Path_, concentration: int | None) -> int | None:
    if key not in t:
        return None
    text = t[key]
    if isinstance(text, str) and q.is_mass(text):
        if concentration is None:
            raise _FileError((*path, key), f"{key} is a mass but no concentration is known here")
        mass = _quantity(t, key, path, q.parse_mass)
        assert mass is not None
        try:
            return q.volume_for_mass(text, mass, concentration, "nL")
        except q.QuantityError as exc:
            raise _FileError((*path, key), f"{key}: {exc}") from None
    return _quantity(t, key, path, q.parse_volume)


def _params(
    do: str,
    t: Mapping[str, Any],
    path: Path_,
    concentration: int | None,
    base: Path,
) -> tuple[dict[str, Any], int | None]:
    p: dict[str, Any] = {}
    if do in PROGRAMMER_ACTIONS:
        role = _str(t, "role", path, "patient" if do == "patient-bolus" else "clinician")
        if role not in ("patient", "clinician"):
            raise _FileError((*path, "role"), 'role must be "patient" or "clinician"')
        p["role"] = role
    if do == "interrogate":
        read = _str(t, "read", path, "status")
        if read not in READS:
            raise _FileError((*path, "read"), f"read must be one of {', '.join(READS)}")
        p["read"] = read
    elif do == "program":
        if "prescription" not in t:
            raise _FileError(path, "a program step needs prescription (inline table or file)")
        rx = _prescription(t["prescription"], (*path, "prescription"), base)
        p["prescription"] = rx
        p["overrides"] = _overrides(t.get("override", []), (*path, "override"))
        concentration = rx.concentration_ug_per_ml
    elif do == "clinician-bolus":
        dose = _dose(t, "dose", path, concentration)
        duration = _quantity(t, "duration", path, q.parse_duration)
        if dose is None or duration is None:
            raise _FileError(path, "a clinician-bolus step needs dose and duration")
        p.update(dose_nl=dose, duration_s=duration)
    elif do == "prime":
        p["volume_nl"] = _quantity(t, "volume", path, q.parse_volume)
    elif do == "refill":
        volume = _quantity(t, "volume", path, q.parse_volume)
        if volume is None:
            raise _FileError(path, "a refill step needs volume (what the clinician enters)")
        new_conc = _quantity(t, "concentration", path, q.parse_concentration)
        p.update(
            volume_nl=volume,
            withdrawn_nl=_quantity(t, "withdrawn", path, q.parse_volume),
            injected_nl=_quantity(t, "injected", path, q.parse_volume),
            pocket_nl=_quantity(t, "pocket", path, q.parse_volume) or 0,
            concentration_ug_per_ml=new_conc,
        )
        if new_conc is not None:
            concentration = new_conc
    elif do == "acknowledge":
        p["alarm"] = _name_of(AlarmKind, t.get("alarm"), (*path, "alarm"), "alarm")
    elif do == "set-clock":
        text = _str(t, "time", path)
        try:
            p["time_ms"] = q.parse_pump_time(text)
        except q.QuantityError as exc:
            raise _FileError((*path, "time"), f"time: {exc}") from None
    elif do == "fault":
        p.update(_plant_fault(t, path))
    elif do == "link-fault":
        p.update(_link_fault(t, path))
    return p, concentration


def _plant_fault(t: Mapping[str, Any], path: Path_) -> dict[str, Any]:
    """A plant fault by its name in hil/control.py's FAULTS registry (so a fault added there
    works here at once), its parameters checked by the registry's own builder. A parameter
    may be a string in the one grammar (``*_s`` a duration, ``*_nl`` a volume, ``ppm`` a
    fraction, ``*_ug_per_ml`` a concentration)."""
    name = _str(t, "fault", path)
    key = FAULT_ALIASES.get(name, name)
    if key not in FAULTS:
        raise _FileError((*path, "fault"), f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    raw = t.get("params", {})
    if not isinstance(raw, Mapping):
        raise _FileError((*path, "params"), "params must be a table")
    params: dict[str, Any] = {}
    for pname, value in raw.items():
        if isinstance(value, str) and pname != "part":  # repair's part is a name
            # The same reading as `pumpemu fault` and the control API (docs/quantities.md):
            # "2h", "25%", "1 mL", or digits in the unit the name ends with.
            try:
                params[pname] = parse_fault_param(pname, value, signed=pname in FAULTS[key].signed)
            except ValueError as exc:
                raise _FileError((*path, "params", pname), f"{pname}: {exc}") from None
        else:
            params[pname] = value
    missing = [n for n, (required, _) in FAULTS[key].params.items() if required and n not in params]
    if missing:
        raise _FileError((*path, "fault"), f"fault {key!r} needs parameter {missing[0]!r}")
    try:
        build_fault(key, params)
    except ValueError as exc:
        raise _FileError((*path, "params"), str(exc)) from None
    return {"fault": key, "params": params}


def _link_fault(t: Mapping[str, Any], path: Path_) -> dict[str, Any]:
    # The proxy's fault grammar, loaded by the files that use it: a campaign worker on a
    # file without link faults never imports it (docs/campaigns.md, "Runs and ids").
    from hil.proxy.faults import FaultKind, FaultSpecError, parse_fault_table  # noqa: PLC0415

    kind = _str(t, "kind", path)
    if kind not in {k.value for k in FaultKind}:
        known = ", ".join(k.value for k in FaultKind)
        raise _FileError((*path, "kind"), f"unknown link fault {kind!r} (known: {known})")
    duration = _duration_ms(t, "duration", path)
    if duration is None or duration < 1:
        raise _FileError((*path, "duration"), "a link-fault step needs duration (its window)")
    table: dict[str, Any] = dict(t.get("params", {}))
    table["when"] = t.get("when", 1.0)
    if "dir" in t:
        table["dir"] = t["dir"]
    try:
        spec = parse_fault_table(kind, table, "link fault")
    except FaultSpecError as exc:
        raise _FileError(path, str(exc)) from None
    return {"spec": spec, "duration_ms": duration}


def _expect(value: Any, path: Path_) -> Expect:
    t = _keys(value, _EXPECT, path, "expect")
    outcome = t.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise _FileError((*path, "outcome"), f"outcome must be one of: {', '.join(OUTCOMES)}")
    refusal = (
        _name_of(RefusalCode, t["refusal"], (*path, "refusal"), "refusal code")
        if "refusal" in t
        else None
    )
    field = _name_of(FieldId, t["field"], (*path, "field"), "field") if "field" in t else None
    limit = None
    if "limit" in t:
        raw = t["limit"]
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise _FileError(
                (*path, "limit"), f"limit must be an integer or a quantity, got {_show(raw)}"
            )
        limit = raw if isinstance(raw, int) else _any_quantity(raw, (*path, "limit"))
    state = _name_of(TherapyState, t["state"], (*path, "state"), "state") if "state" in t else None
    alarms = _names(AlarmKind, t["alarms"], (*path, "alarms"), "alarm") if "alarms" in t else None
    log = _names(EventKind, t["log"], (*path, "log"), "log entry") if "log" in t else None
    no_log = (
        _names(EventKind, t["no_log"], (*path, "no_log"), "log entry") if "no_log" in t else None
    )
    discrepancy = t.get("discrepancy")
    if discrepancy is not None and discrepancy not in ("flagged", "none"):
        raise _FileError((*path, "discrepancy"), 'discrepancy must be "flagged" or "none"')
    return Expect(outcome, refusal, field, limit, state, alarms, log, no_log, discrepancy)


def _any_quantity(text: str, path: Path_) -> int:
    """A refusal's limit in the unit of its field: a volume, a rate, a daily mass, a
    duration (seconds) or a mass."""
    for parse in (q.parse_volume, q.parse_rate, q.parse_mass_rate, q.parse_mass, q.parse_duration):
        try:
            result: int = parse(text)
        except q.QuantityError:
            continue
        return result
    raise _FileError(path, f"limit {text!r} is not a volume, rate, daily dose, mass or duration")


def _oracles(value: Any, steps: Sequence[Step]) -> tuple[Oracle, ...]:
    if not isinstance(value, list):
        raise _FileError(("oracles",), "oracles must be an array of tables: [[oracles]]")
    by_name = {s.name: s for s in steps}
    out: list[Oracle] = []
    for index, raw in enumerate(value):
        path: Path_ = ("oracles", index)
        if not isinstance(raw, Mapping):
            raise _FileError(path, "an oracle must be a table")
        check = raw.get("check")
        if not isinstance(check, str) or check not in _ORACLE_KEYS:
            known = ", ".join(ORACLE_CHECKS)
            raise _FileError((*path, "check"), f"unknown oracle {check!r} (known: {known})")
        t = _keys(raw, _ORACLE_KEYS[check] | {"check"}, path, f"a {check} oracle")
        out.append(Oracle(index, 0, check, _ORACLE_PARSERS[check](t, path, by_name)))
    return tuple(out)


def _window(t: Mapping[str, Any], path: Path_) -> dict[str, Any]:
    return {"from_ms": _time(t, "from", path) or 0, "to_ms": _time(t, "to", path)}


def _dose_oracle(t: Mapping[str, Any], path: Path_, _: Mapping[str, Step]) -> dict[str, Any]:
    p = _window(t, path)
    p["per_ms"] = _duration_ms(t, "per", path)
    shares = ("believed", "patient", "patient_at_most", "patient_at_least")
    for key in shares:
        p[key] = _quantity(t, key, path, q.parse_fraction)
    if all(p[k] is None for k in shares):
        raise _FileError(path, f"a dose oracle needs one of {', '.join(shares)}")
    return p


def _reservoir_oracle(t: Mapping[str, Any], path: Path_, _: Mapping[str, Step]) -> dict[str, Any]:
    p = _window(t, path)
    p["every_ms"] = _duration_ms(t, "every", path)
    p["max_gap_nl"] = _quantity(t, "max_gap", path, q.parse_volume)
    p["min_gap_nl"] = _quantity(t, "min_gap", path, q.parse_volume)
    if p["max_gap_nl"] is None and p["min_gap_nl"] is None:
        raise _FileError(path, "a reservoir oracle needs max_gap or min_gap")
    return p


def _refill_oracle(
    t: Mapping[str, Any], path: Path_, by_name: Mapping[str, Step]
) -> dict[str, Any]:
    step = _str(t, "step", path)
    if step not in by_name or by_name[step].do != "refill":
        raise _FileError((*path, "step"), f"no refill step named {step!r}")
    flagged = t.get("flagged")
    if not isinstance(flagged, bool):
        raise _FileError((*path, "flagged"), "flagged must be true or false")
    sign = t.get("sign")
    if sign is not None and sign not in SIGNS:
        raise _FileError((*path, "sign"), f"sign must be one of {', '.join(SIGNS)}")
    return {"step": step, "flagged": flagged, "sign": sign}


def _latency_oracle(
    t: Mapping[str, Any], path: Path_, by_name: Mapping[str, Step]
) -> dict[str, Any]:
    step = _str(t, "fault", path)
    if step not in by_name:
        raise _FileError((*path, "fault"), f"no step named {step!r}")
    alarm = _name_of(AlarmKind, t.get("alarm"), (*path, "alarm"), "alarm")
    never = t.get("never", False)
    if not isinstance(never, bool):
        raise _FileError((*path, "never"), "never must be true or false")
    within = _duration_ms(t, "within", path)
    if never == (within is not None):
        raise _FileError(path, "an alarm-latency oracle needs within = DURATION or never = true")
    return {"fault": step, "alarm": alarm, "never": never, "within_ms": within}


def _no_params(_t: Mapping[str, Any], _path: Path_, _: Mapping[str, Step]) -> dict[str, Any]:
    return {}


_ORACLE_PARSERS: Mapping[
    str, Callable[[Mapping[str, Any], Path_, Mapping[str, Step]], dict[str, Any]]
] = {
    "dose": _dose_oracle,
    "reservoir": _reservoir_oracle,
    "refill-discrepancy": _refill_oracle,
    "alarm-latency": _latency_oracle,
    "exactly-once": _no_params,
}


OVERRIDES = {"soft-limit": OVERRIDE_SOFT_LIMIT, "dose-change": OVERRIDE_DOSE_CHANGE}
"""A program step's ``override`` names: the drug library's limits a clinician overrides
(STAGE_PRESCRIPTION_OVERRIDE, docs/protocol.md section 7)."""


def _overrides(value: Any, path: Path_) -> int:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _FileError(path, "override must be a name or a list of names")
    flags = 0
    for name in names:
        if name not in OVERRIDES:
            raise _FileError(path, f"override {name!r}: one of {', '.join(OVERRIDES)}")
        flags |= OVERRIDES[name]
    return flags
