"""Conformance verdicts on the programmer under test (docs/conformance.md).

``ConformanceMonitor`` watches both directions of one link, sans-IO, and records
violations of docs/protocol.md and docs/security.md; ``write_reports`` writes them as JSON,
markdown and JUnit XML.

The names load on first use (PEP 562), so ``hil.conformance.options``, which ``pumpemu
serve`` and ``pumpemu proxy`` declare their options with, imports no monitor, codec or
emulator behind it (``pumpemu serve --help``, tests/hil/test_cli_lazy_imports.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from hil.conformance.monitor import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor
    from hil.conformance.report import (
        REPORT_FILES,
        report_json,
        report_junit,
        report_markdown,
        write_reports,
    )
    from hil.conformance.rules import RULES, FrameRef, RuleInfo, Severity, Violation

_HOMES = {
    "TO_PROGRAMMER": "hil.conformance.monitor",
    "TO_PUMP": "hil.conformance.monitor",
    "ConformanceMonitor": "hil.conformance.monitor",
    "REPORT_FILES": "hil.conformance.report",
    "report_json": "hil.conformance.report",
    "report_junit": "hil.conformance.report",
    "report_markdown": "hil.conformance.report",
    "write_reports": "hil.conformance.report",
    "RULES": "hil.conformance.rules",
    "FrameRef": "hil.conformance.rules",
    "RuleInfo": "hil.conformance.rules",
    "Severity": "hil.conformance.rules",
    "Violation": "hil.conformance.rules",
}

__all__ = [
    "REPORT_FILES",
    "RULES",
    "TO_PROGRAMMER",
    "TO_PUMP",
    "ConformanceMonitor",
    "FrameRef",
    "RuleInfo",
    "Severity",
    "Violation",
    "report_json",
    "report_junit",
    "report_markdown",
    "write_reports",
]


__getattr__ = lazy_getattr(__name__, _HOMES, globals())
