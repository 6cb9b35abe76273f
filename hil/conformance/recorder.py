"""A conformance monitor shared by the threads of a running serve or proxy.

``ConformanceRecorder`` wraps one ``ConformanceMonitor`` in a lock: the serve loop (or the
proxy's listener) feeds it, the control API reads the verdicts so far (``verdicts``), and the
command writes the reports when it stops (``finish``). docs/conformance.md describes the
options that make one: ``--conformance report|strict`` and ``--conformance-report DIR``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil.conformance.monitor import ConformanceMonitor
from hil.conformance.report import report_json, violation_json, write_reports
from hil.conformance.rules import Violation
from protocol.keys import PumpKeys

__all__ = ["DEFAULT_REPORT_DIR", "MODES", "ConformanceRecorder"]

MODES = ("report", "strict")
"""``report`` writes the reports; ``strict`` also makes the command exit non-zero (1) when
any rule was broken."""

DEFAULT_REPORT_DIR = Path("pumpemu-conformance")
"""Where the reports go without ``--conformance-report DIR``: this directory, under the
current one."""


class ConformanceRecorder:
    """Thread-safe: ``feed`` from the I/O thread, ``verdicts`` from any, ``finish`` once."""

    def __init__(
        self,
        keys: PumpKeys | None,
        *,
        mode: str = "report",
        report_dir: Path = DEFAULT_REPORT_DIR,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """``log``, if given, gets one line per violation as soon as it is found."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._monitor = ConformanceMonitor(keys)
        self._lock = threading.Lock()
        self.mode = mode
        self.report_dir = report_dir
        self._log = log
        self._logged = 0

    @property
    def strict(self) -> bool:
        return self.mode == "strict"

    def feed(self, direction: str, data: bytes, link_ms: int) -> None:
        with self._lock:
            self._monitor.feed(direction, data, link_ms)
            if self._log is not None and self._monitor.violation_count > self._logged:
                self._log_new()

    def _log_new(self) -> None:
        """Log the violations found since the last call (caller holds the lock)."""
        assert self._log is not None
        for violation in self._monitor.violations[self._logged :]:
            self._log(
                f"conformance: {violation.rule} ({violation.severity.value}): {violation.detail}"
            )
        self._logged = self._monitor.violation_count

    def verdicts(self) -> dict[str, Any]:
        """The report so far (docs/conformance.md, "Reports"), as the end would write it now."""
        with self._lock:
            return {**report_json(self._monitor.snapshot()), **self._seen()}

    def violations_since(self, index: int) -> list[dict[str, Any]]:
        """The violations found after the first ``index`` (as the JSON report shows them),
        for the control API's ``conformance`` events (docs/serve.md, "subscribe")."""
        with self._lock:
            if self._monitor.violation_count <= index:
                return []  # the common case, without copying the list
            return [violation_json(v) for v in self._monitor.violations[index:]]

    def _seen(self) -> dict[str, Any]:
        """What the monitor saw (caller holds the lock)."""
        stats = self._monitor.stats
        return {
            "frames": {"requests": stats.requests, "replies": stats.replies},
            "sessions": stats.sessions,
            "unopened": stats.unopened,
        }

    def finish(self, link_ms: int | None = None) -> tuple[Violation, ...]:
        """End the run and write the reports; the violations. Idempotent."""
        with self._lock:
            violations = self._monitor.finish(link_ms)
            if self._log is not None:
                self._log_new()
            seen = self._seen()
        write_reports(self.report_dir, violations, extra=seen)
        return violations
