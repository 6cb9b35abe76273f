"""Link-fault specifications: what to do to which frames, parsed from the CLI or TOML.

A fault is a *kind* (what happens to a frame), a *trigger* (which frames it hits), a
*direction* (a->b, b->a or both) and the kind's parameters. docs/proxy.md is the user's
reference; the grammar, in one place:

    SPEC     = TRIGGER ("," KEY "=" VALUE)*
    TRIGGER  = RATE | "@" N | WINDOW
    RATE     = a probability per frame: "0.05", "5%" or "50000 ppm" (0 <= p <= 1), exact in ppm
    @N       = the Nth frame (counted from 1, per direction)
    WINDOW   = DURATION ".." DURATION | DURATION ".." | ".." DURATION
               every frame arriving in [start, end) after the proxy started
    DURATION = the one duration grammar with its unit required (docs/quantities.md):
               "250ms", "2s", "1.5s", "2 min", "1m30s"
    KEY      = dir (a2b | b2a | both, also a->b | b->a; default both)
               and the kind's parameters (``PARAMETERS`` below)

Durations need their unit: a bare "500" could be ms or s, and a guess off by a factor of a
thousand turns a 0.5 s glitch into an 8-minute outage. Times are integer milliseconds; a
duration finer than 1 ms is refused rather than rounded.

This module is pure (no I/O, no clock, no randomness): the engine draws the random numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from hil import quantities as q
from hil.errors import UsageError
from hil.text_files import TextFileError, read_text_file
from protocol.documents import MAX_DOCUMENT_BYTES, DocumentError, parse_toml

__all__ = [
    "DEFAULTS",
    "MAX_SEED",
    "PARAMETERS",
    "Direction",
    "DirectionSelector",
    "FaultConfig",
    "FaultKind",
    "FaultSpec",
    "FaultSpecError",
    "Nth",
    "Rate",
    "Trigger",
    "Window",
    "load_fault_file",
    "parse_fault",
    "parse_fault_table",
    "parse_trigger",
]

MAX_SEED = 2**64 - 1
"""The largest seed a fault file or ``--seed`` takes: 64 bits, as printed and repeated."""


class FaultSpecError(UsageError):
    """A fault specification that cannot be understood. The message says what and why."""


class Direction(StrEnum):
    """One way through the proxy: bytes read from one side, written to the other."""

    A2B = "a->b"
    B2A = "b->a"

    @property
    def reverse(self) -> Direction:
        return Direction.B2A if self is Direction.A2B else Direction.A2B


class DirectionSelector(StrEnum):
    """Which directions a fault applies to."""

    A2B = "a2b"
    B2A = "b2a"
    BOTH = "both"

    def includes(self, direction: Direction) -> bool:
        if self is DirectionSelector.BOTH:
            return True
        return (self is DirectionSelector.A2B) == (direction is Direction.A2B)


_DIRECTION_NAMES = {
    "a2b": DirectionSelector.A2B,
    "a->b": DirectionSelector.A2B,
    "b2a": DirectionSelector.B2A,
    "b->a": DirectionSelector.B2A,
    "both": DirectionSelector.BOTH,
}


class FaultKind(StrEnum):
    """What a fault does to a frame. The order here is the order they are applied in when
    several hit one frame (engine.py): a disconnect or a drop ends the frame's story; the
    rest shape what is sent and when."""

    DISCONNECT = "disconnect"
    DROP = "drop"
    TRUNCATE = "truncate"
    CORRUPT = "corrupt"
    DUPLICATE = "duplicate"
    JUNK = "junk"
    SPLIT = "split"
    DELAY = "delay"


PARAMETERS: Mapping[FaultKind, tuple[str, ...]] = {
    FaultKind.DISCONNECT: ("for",),
    FaultKind.DROP: (),
    FaultKind.TRUNCATE: (),
    FaultKind.CORRUPT: ("bits",),
    FaultKind.DUPLICATE: (),
    FaultKind.JUNK: ("bytes",),
    FaultKind.SPLIT: ("pieces", "gap"),
    FaultKind.DELAY: ("by",),
}
"""The parameter keys each kind accepts, besides ``dir``."""

DEFAULTS: Mapping[str, int] = {
    "for": 1000,  # disconnect: ms with nothing forwarded either way
    "bits": 1,  # corrupt: distinct bits flipped
    "bytes": 8,  # junk: random bytes sent before the frame
    "pieces": 2,  # split: pieces the frame is sent in
    "gap": 10,  # split: ms between pieces
    "by": 100,  # delay: ms the frame is held back
}
"""Parameter values when a spec leaves them out (durations in ms)."""

_DURATION_KEYS = frozenset({"for", "gap", "by"})
_LIMITS: Mapping[str, tuple[int, int]] = {
    # Bounds keep a typo from wedging a rig: an hour-long delay or a megabyte of junk is
    # never a link fault worth emulating.
    "for": (1, 3_600_000),
    "gap": (1, 60_000),
    "by": (1, 3_600_000),
    "bits": (1, 8 * 1041),
    "bytes": (1, 4096),
    "pieces": (2, 1041),
}


@dataclass(frozen=True, slots=True)
class Rate:
    """Each frame is hit with this probability (one independent draw per frame)."""

    probability: float

    def __str__(self) -> str:
        return f"{self.probability:g}"


@dataclass(frozen=True, slots=True)
class Nth:
    """Exactly the Nth frame in each selected direction (counted from 1)."""

    n: int

    def __str__(self) -> str:
        return f"@{self.n}"


@dataclass(frozen=True, slots=True)
class Window:
    """Every frame arriving in [start_ms, end_ms) after the proxy started; end None = open."""

    start_ms: int
    end_ms: int | None

    def contains(self, elapsed_ms: int) -> bool:
        return self.start_ms <= elapsed_ms and (self.end_ms is None or elapsed_ms < self.end_ms)

    def __str__(self) -> str:
        start = q.duration_ms(self.start_ms) if self.start_ms else ""
        end = q.duration_ms(self.end_ms) if self.end_ms is not None else ""
        return f"{start}..{end}"


Trigger = Rate | Nth | Window


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault: a kind, its trigger, the directions it applies to, its parameters.

    Parameters are integers (durations in ms). Only the kind's own keys may be given;
    the rest come from ``DEFAULTS``. Build with ``FaultSpec.make`` to get that checked.
    """

    kind: FaultKind
    trigger: Trigger
    direction: DirectionSelector = DirectionSelector.BOTH
    params: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        allowed = PARAMETERS[self.kind]
        for key, value in self.params:
            if key not in allowed:
                raise FaultSpecError(f"{self.kind}: unknown parameter {key!r}{_allowed(allowed)}")
            low, high = _LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise FaultSpecError(
                    f"{self.kind}: {key} must be {_describe_limit(key, low, high)}, got {value!r}"
                )
        if isinstance(self.trigger, Rate):
            p = self.trigger.probability
            if not (isinstance(p, float) and math.isfinite(p) and 0.0 <= p <= 1.0):
                raise FaultSpecError(f"{self.kind}: a rate must be between 0 and 1, got {p!r}")
        elif isinstance(self.trigger, Nth):
            if self.trigger.n < 1:
                raise FaultSpecError(
                    f"{self.kind}: frames are counted from 1, got @{self.trigger.n}"
                )
        else:
            window = self.trigger
            if window.start_ms < 0 or (
                window.end_ms is not None and window.end_ms <= window.start_ms
            ):
                raise FaultSpecError(f"{self.kind}: window {window} ends before it starts")

    @classmethod
    def make(
        cls,
        kind: FaultKind | str,
        trigger: Trigger,
        direction: DirectionSelector | str = DirectionSelector.BOTH,
        **params: int,
    ) -> FaultSpec:
        """Build a spec from Python: ``FaultSpec.make("corrupt", Rate(0.05), bits=2)``.

        Parameter values are ints (durations in ms); ``for_`` may be used for ``for``.
        """
        kind = _kind(str(kind))
        selector = _direction(str(direction))
        items = tuple(sorted((key.rstrip("_"), value) for key, value in params.items()))
        return cls(kind, trigger, selector, items)

    def param(self, key: str) -> int:
        """A parameter's value, given or default."""
        if key not in PARAMETERS[self.kind]:
            raise KeyError(f"{self.kind} has no parameter {key!r}")
        return dict(self.params).get(key, DEFAULTS[key])

    def __str__(self) -> str:
        """The canonical CLI form, e.g. ``corrupt 0.05,dir=a2b,bits=2``."""
        parts = [str(self.trigger)]
        if self.direction is not DirectionSelector.BOTH:
            parts.append(f"dir={self.direction}")
        for key, value in self.params:
            shown = q.duration_ms(value) if key in _DURATION_KEYS else str(value)
            parts.append(f"{key}={shown}")
        return f"{self.kind} {','.join(parts)}"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What a fault file holds: the faults in file order and, optionally, a seed."""

    faults: tuple[FaultSpec, ...]
    seed: int | None = None


# -- parsing -------------------------------------------------------------------------------

_NTH = re.compile(r"^@\s*(\d+)$")


def _duration_ms(text: str) -> int:
    """A window bound or a duration parameter in whole ms, in the one grammar
    (hil/quantities.py): ``250ms``, ``1.5s``, ``2 min``. The unit is required here."""
    try:
        return q.parse_duration_ms(text)
    except q.QuantityError as exc:
        raise FaultSpecError(str(exc)) from None


def parse_trigger(text: str) -> Trigger:
    """A rate (``0.05``, ``5%``), a frame number (``@7``) or a window (``2s..5s``)."""
    text = text.strip()
    if not text:
        raise FaultSpecError("empty trigger: give a rate (0.05 or 5%), @N, or a window (2s..5s)")
    if text.startswith("@"):
        match = _NTH.match(text)
        if match is None:
            raise FaultSpecError(f"{text!r}: @N takes a whole frame number, e.g. @7")
        n = int(match.group(1))
        if n < 1:
            raise FaultSpecError(f"{text!r}: frames are counted from 1")
        return Nth(n)
    if ".." in text:
        start_text, _, end_text = text.partition("..")
        if not start_text.strip() and not end_text.strip():
            raise FaultSpecError(f"{text!r}: a window needs a start, an end or both, e.g. 2s..5s")
        start = _duration_ms(start_text) if start_text.strip() else 0
        end = _duration_ms(end_text) if end_text.strip() else None
        if end is not None and end <= start:
            raise FaultSpecError(f"{text!r}: the window ends before it starts")
        return Window(start, end)
    return Rate(_parse_rate(text))


def _parse_rate(text: str) -> float:
    """A probability per frame in the one fraction grammar: ``0.05``, ``5%``, ``50000 ppm``.
    It is exact in ppm (a finer rate is refused, never rounded); the engine draws against
    the float it equals."""
    try:
        ppm = q.parse_fraction(text, bare="fraction")
    except q.QuantityError as exc:
        if "is not a fraction" in str(exc):  # not a number at all: say what a trigger is
            raise FaultSpecError(
                f"{text!r} is not a trigger: give a rate (0.05, 5% or 50000 ppm), @N, "
                "or a window (2s..5s)"
            ) from None
        raise FaultSpecError(str(exc)) from None
    if ppm > q.PPM:
        raise FaultSpecError(f"{text!r}: a rate must be between 0 and 1, or 0% and 100%")
    return ppm / q.PPM


def parse_fault(kind: FaultKind | str, text: str) -> FaultSpec:
    """One CLI spec for ``kind``: ``TRIGGER[,KEY=VALUE]...``, e.g. ``0.05,bits=2,dir=a2b``."""
    fault_kind = _kind(str(kind))
    trigger_text, *options = text.split(",")
    try:
        trigger = parse_trigger(trigger_text)
        values: dict[str, str] = {}
        for option in options:
            key, sep, value = option.partition("=")
            key = key.strip()
            if not sep or not key or not value.strip():
                raise FaultSpecError(f"{option.strip()!r} is not KEY=VALUE")
            if key in values:
                raise FaultSpecError(f"{key} given twice")
            values[key] = value.strip()
        return _build(fault_kind, trigger, values)
    except FaultSpecError as error:
        raise FaultSpecError(f"--{fault_kind} {text!r}: {_strip_kind(error, fault_kind)}") from None


def parse_fault_table(kind: FaultKind | str, table: Mapping[str, Any], where: str) -> FaultSpec:
    """One TOML table for ``kind``: ``{when = 0.05, dir = "a2b", bits = 2}``."""
    fault_kind = _kind(str(kind))
    try:
        if "when" not in table:
            raise FaultSpecError('missing \'when\' (a rate, "@N" or a window like "2s..5s")')
        when = table["when"]
        if isinstance(when, bool):
            raise FaultSpecError(f"'when' must be a rate, \"@N\" or a window, got {when!r}")
        if isinstance(when, int | float):
            trigger: Trigger = Rate(_parse_rate(repr(when)))
        elif isinstance(when, str):
            trigger = parse_trigger(when)
        else:
            raise FaultSpecError(f"'when' must be a rate, \"@N\" or a window, got {when!r}")
        values: dict[str, str] = {}
        for key, value in table.items():
            if key == "when":
                continue
            if key not in ("dir", *PARAMETERS[fault_kind]):
                raise FaultSpecError(
                    f"unknown key {key!r}{_allowed(('when', 'dir', *PARAMETERS[fault_kind]))}"
                )
            if key in _DURATION_KEYS or key == "dir":
                if not isinstance(value, str):
                    hint = ' with a unit, e.g. "250ms"' if key in _DURATION_KEYS else ""
                    raise FaultSpecError(f"{key} must be a string{hint}, got {value!r}")
                values[key] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise FaultSpecError(f"{key} must be a whole number, got {value!r}")
                values[key] = str(value)
        return _build(fault_kind, trigger, values)
    except FaultSpecError as error:
        raise FaultSpecError(f"{where}: {_strip_kind(error, fault_kind)}") from None


def load_fault_file(path: str | Path) -> FaultConfig:
    """Read a TOML fault file (docs/proxy.md): ``seed`` and ``[[KIND]]`` tables."""
    name = str(path)
    try:
        text = read_text_file(path, max_bytes=MAX_DOCUMENT_BYTES)
    except TextFileError as exc:
        raise FaultSpecError(f"fault file {name}: {exc}") from None
    return parse_fault_document(text, name)


def parse_fault_document(text: str, name: str = "<toml>") -> FaultConfig:
    """Parse the TOML text of a fault file; ``name`` prefixes every error message."""
    try:
        document = parse_toml(text)
    except DocumentError as error:
        raise FaultSpecError(f"fault file {name}: {error}") from None
    seed: int | None = None
    faults: list[FaultSpec] = []
    for key, value in document.items():
        if key == "seed":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
                raise FaultSpecError(
                    f"fault file {name}: seed must be a whole number 0..{MAX_SEED}"
                )
            seed = value
            continue
        if key not in FaultKind.__members__.values():
            raise FaultSpecError(
                f"fault file {name}: unknown key {key!r} "
                f"(allowed: seed, {', '.join(f'[[{k}]]' for k in FaultKind)})"
            )
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise FaultSpecError(
                f"fault file {name}: {key} must be an array of tables, written [[{key}]]"
            )
        for index, table in enumerate(value, start=1):
            faults.append(parse_fault_table(key, table, f"fault file {name}: [[{key}]] #{index}"))
    return FaultConfig(tuple(faults), seed)


def _build(kind: FaultKind, trigger: Trigger, values: Mapping[str, str]) -> FaultSpec:
    selector = DirectionSelector.BOTH
    params: list[tuple[str, int]] = []
    for key, value in values.items():
        if key == "dir":
            selector = _direction(value)
        elif key not in PARAMETERS[kind]:
            raise FaultSpecError(f"unknown key {key!r}{_allowed(('dir', *PARAMETERS[kind]))}")
        elif key in _DURATION_KEYS:
            params.append((key, _duration_ms(value)))
        else:
            if not re.fullmatch(r"\d+", value):
                raise FaultSpecError(f"{key} must be a whole number, got {value!r}")
            params.append((key, int(value)))
    return FaultSpec(kind, trigger, selector, tuple(sorted(params)))


def _kind(text: str) -> FaultKind:
    try:
        return FaultKind(text)
    except ValueError:
        raise FaultSpecError(
            f"unknown fault {text!r} (one of: {', '.join(k.value for k in FaultKind)})"
        ) from None


def _direction(text: str) -> DirectionSelector:
    selector = _DIRECTION_NAMES.get(text.strip().lower())
    if selector is None:
        raise FaultSpecError(f"dir must be a2b, b2a or both (or a->b, b->a), got {text!r}")
    return selector


def _allowed(keys: Sequence[str]) -> str:
    return f" (allowed: {', '.join(keys)})" if keys else " (this fault takes no parameters)"


def _describe_limit(key: str, low: int, high: int) -> str:
    if key in _DURATION_KEYS:
        return f"between {q.duration_ms(low)} and {q.duration_ms(high)}"
    return f"a whole number from {low} to {high}"


def _strip_kind(error: FaultSpecError, kind: FaultKind) -> str:
    """Drop FaultSpec's own "kind: " prefix when the caller's prefix already names it."""
    text = str(error)
    prefix = f"{kind}: "
    return text[len(prefix) :] if text.startswith(prefix) else text
