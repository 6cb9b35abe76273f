"""A package's public names loaded on first use (PEP 562), so a command that only declares
its options imports nothing heavy behind them (docs/architecture.md, "Layers and imports";
tests/hil/test_cli_lazy_imports.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps each name to the module that
    defines it; a name once loaded is stored in ``namespace`` (the package's globals), so
    later lookups skip the function."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return getattr_
