"""Conformance verdicts on the programmer under test (docs/conformance.md).

``ConformanceMonitor`` watches both directions of one link, sans-IO, and records
violations of docs/protocol.md and docs/security.md; ``write_reports`` writes them as JSON,
markdown and JUnit XML.
"""

from hil.conformance.monitor import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor
from hil.conformance.report import (
    REPORT_FILES,
    report_json,
    report_junit,
    report_markdown,
    write_reports,
)
from hil.conformance.rules import RULES, FrameRef, RuleInfo, Severity, Violation

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
