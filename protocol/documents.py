"""Bounded parsing of the text documents pumpemu reads: TOML and JSON.

Every file and line a user or a peer hands pumpemu (profiles, prescriptions, fault files,
key files, state records, captures, control requests) is parsed here, so one rule holds at
every door: a document is at most ``max_bytes`` long, and nesting is bounded. Python's
``tomllib`` and ``json`` recurse once per level of nesting, and 5,000 nested ``[`` end in a
RecursionError (a traceback for a user, a dropped connection for the control API). Here it
is a ``DocumentError`` with one clear line, which each caller turns into its own error.

Pure functions of text: no I/O, so protocol/ may hold them (tests/test_layering.py).
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_NESTING", "DocumentError", "parse_json", "parse_toml"]

MAX_DOCUMENT_BYTES = 1 << 20
"""1 MiB: far above any profile, prescription, fault or key file, or control request."""

MAX_NESTING = 64
"""Arrays and tables nested deeper than this are refused. pumpemu's own formats nest at most
4 deep; the bound stays far below the interpreter's recursion limit."""


class DocumentError(ValueError):
    """The text is too long, nested too deeply, or not valid TOML/JSON; one line."""


def _check(text: str, max_bytes: int) -> None:
    if len(text) > max_bytes:  # characters >= bytes/4; checked again on the encoded size
        raise DocumentError(f"too long: {len(text)} characters, at most {max_bytes} bytes")
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise DocumentError(f"too long: more than {max_bytes} bytes")
    if _nesting(text) > MAX_NESTING:
        raise DocumentError(f"nested too deeply: more than {MAX_NESTING} levels of [ and {{")


_TOKENS = re.compile(
    r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*(?:"""|\Z)'  # a multi-line basic string (TOML)
    r"|'''[\s\S]*?(?:'''|\Z)"  # a multi-line literal string (TOML)
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*(?:"|$)'  # a basic string (TOML and JSON)
    r"|'[^'\n]*(?:'|$)"  # a literal string (TOML)
    r"|#[^\n]*"  # a comment (TOML)
    r"|[\[\]{}]",  # what nests
    re.MULTILINE,
)


def _nesting(text: str) -> int:
    """How deep ``[`` and ``{`` nest outside strings and comments (TOML and JSON lexing:
    basic and literal strings, their multi-line forms, ``#`` comments). The regular
    expression skips strings in C: a 100 kB state record scans in about a millisecond."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        lexeme = match.group()
        if lexeme in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif lexeme in "]}":
            depth = max(depth - 1, 0)
    return deepest


def parse_toml(text: str, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """The TOML document in ``text``; DocumentError if it is too big, too deep or invalid."""
    _check(text, max_bytes)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DocumentError(f"not valid TOML: {exc}") from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise DocumentError(f"not valid TOML: {exc}") from None
    except RecursionError:  # a lexing corner the scan above missed: still one clear line
        raise DocumentError("nested too deeply") from None


def parse_json(text: str, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """The JSON value in ``text``; DocumentError if it is too big, too deep or invalid."""
    _check(text, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise DocumentError(f"not JSON: {exc}") from None
    except RecursionError:  # a lexing corner the scan above missed: still one clear line
        raise DocumentError("nested too deeply") from None
