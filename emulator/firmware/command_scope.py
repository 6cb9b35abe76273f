"""The per-command wrapper: a firmware command runs with its command id in effect
(docs/protocol.md section 11, "the command rule").

Every log entry of a BY_COMMAND kind written while a command runs (the command's own, an
alarm it raised or cleared, a bolus it cancelled) carries that id in ``value_b``; the
firmware's ``_log`` reads it from ``_command_in_effect``. Where ``command_id`` sits among a
method's parameters is found once, when the method is decorated; a call does no reflection
(binding the signature per call cost a sixth of a simulated year, benchmarks/delivery.py).
After the command, the firmware's kept next deadline is dropped: a command may move any
deadline (deadline_cache.py).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from protocol.units import U64_MAX

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = ["command"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def command(
    method: Callable[Concatenate[Firmware, _P], _R],
) -> Callable[Concatenate[Firmware, _P], _R]:
    """Run a command method with its command id in effect: every entry of a BY_COMMAND
    kind written meanwhile (the command's own, an alarm it raised or cleared, a bolus it
    cancelled) carries that id in ``value_b``."""
    # Where command_id sits, found once: binding the signature on every call cost a sixth
    # of a simulated year (benchmarks/delivery.py).
    parameters = list(inspect.signature(method).parameters.values())[1:]  # without self
    names = [p.name for p in parameters]
    position = names.index("command_id") if "command_id" in names else None
    default = parameters[position].default if position is not None else None
    if default is inspect.Parameter.empty:
        default = None

    @functools.wraps(method)
    def run(self: Firmware, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if "command_id" in kwargs:
            command_id = kwargs["command_id"]
        elif position is not None and position < len(args):
            command_id = args[position]
        else:
            command_id = default
        outer = self._command_in_effect
        cid = 0
        # type() first: the common case needs no isinstance call.
        if type(command_id) is int or (
            isinstance(command_id, int) and not isinstance(command_id, bool)
        ):
            cid = command_id
        self._command_in_effect = cid if 1 <= cid <= U64_MAX else 0
        try:
            return method(self, *args, **kwargs)
        finally:
            self._command_in_effect = outer
            self._deadline.valid = False  # a command may move any deadline (invalidate)

    return run
