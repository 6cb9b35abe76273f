"""How late the kernel may wake this thread from a timed wait: Linux's per-thread timer slack.

Linux lets a timed wait (``select`` with a timeout, ``sleep``) end up to the thread's timer
slack after its deadline, 50 us by default, so that wake-ups can be batched. The paced serve
loop (``--baud``, docs/serve.md "Pacing") sleeps until the instant a modelled UART would
have sent a reply's last byte; every microsecond of slack is a microsecond the programmer
waits beyond the wire. ``prctl(PR_SET_TIMERSLACK)`` narrows it for the calling thread only.

Elsewhere (not Linux, no C library found) nothing is changed and the functions say so.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import cast

__all__ = ["PACED_SLACK_NS", "get_timer_slack_ns", "set_timer_slack_ns"]

PR_SET_TIMERSLACK = 29
PR_GET_TIMERSLACK = 30
"""From <linux/prctl.h>."""

PACED_SLACK_NS = 1_000
"""The slack the paced serve thread asks for: 1 us, well under a byte's 87 us at 115200."""


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    return cast(Callable[..., int], prctl)


def get_timer_slack_ns() -> int | None:
    """The calling thread's timer slack in nanoseconds, or None where it cannot be read."""
    prctl = _prctl()
    if prctl is None:
        return None
    value = int(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0))
    return value if value >= 0 else None


def set_timer_slack_ns(ns: int) -> bool:
    """Set the calling thread's timer slack (``ns`` >= 1; 0 would mean "the default");
    True if the kernel took it."""
    if isinstance(ns, bool) or not isinstance(ns, int) or ns < 1:
        raise ValueError(f"timer slack must be an int >= 1 ns, got {ns!r}")
    prctl = _prctl()
    if prctl is None:
        return False
    return int(prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0)) == 0
