"""One process-wide switch for the engine's check modes (docs/pump-model.md, "Time").

The delivery engine keeps answers it would otherwise recompute: the firmware's next
deadline (firmware/deadline_cache.py), the rate plan's step holding now (rate_plan.py), the
last stroke-jitter level (stroke_accuracy.py), the fluid path's slicing verdict
(fluid/path.py), a parsed profile text (profile.py). Each is
a pure shortcut: it changes the cost, never a result. In check mode each one also
recomputes what it kept and raises ``CacheCheckError`` if the two differ, so a shortcut that
went wrong fails a test rather than shifting a stroke.

``CHECK_ALL.on = True`` turns check mode on for everything built (or, for the module-level
memos, every call made) afterwards; tests/conftest.py does so for the whole suite. The
emulator reads no environment (it is a library: tests/test_layering.py), so a debugging
caller sets the switch itself.
"""

from __future__ import annotations

__all__ = ["CHECK_ALL", "CacheCheckError", "CheckSwitch"]


class CheckSwitch:
    """Whether the engine's kept answers are checked against a fresh computation."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


CHECK_ALL = CheckSwitch()


class CacheCheckError(AssertionError):
    """Check mode found a kept answer that a fresh computation contradicts."""
