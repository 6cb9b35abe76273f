"""``pumpemu proxy``: a seeded, frame-aware link-fault injector (docs/proxy.md).

- ``faults``: fault specs and their parsing from the command line and TOML;
- ``engine``: the sans-IO core, ``ProxyEngine`` (bytes and ``now`` in, scheduled bytes out);
- ``runner``: ``FaultProxy``, the threaded I/O loop joining two links, and ``memory_proxy``;
- ``command``: the click command.

The ``command`` module is not imported here, so library users do not pull in click.


The names load on first use (PEP 562), so ``hil.proxy.command`` declares ``pumpemu proxy``'s
options without the engine and the codec behind it (tests/hil/test_cli_lazy_imports.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hil.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from hil.proxy.engine import (
        DEFAULT_IDLE_MS,
        FaultApplied,
        FrameLost,
        Listener,
        Output,
        ProxyEngine,
        ProxyEvent,
        ProxyStats,
        Received,
        Sent,
    )
    from hil.proxy.faults import (
        Direction,
        DirectionSelector,
        FaultConfig,
        FaultKind,
        FaultSpec,
        FaultSpecError,
        Nth,
        Rate,
        Window,
        load_fault_file,
        parse_fault,
        parse_fault_document,
    )
    from hil.proxy.runner import (
        FaultProxy,
        memory_proxy,
    )

_HOMES = {
    "DEFAULT_IDLE_MS": "hil.proxy.engine",
    "FaultApplied": "hil.proxy.engine",
    "FrameLost": "hil.proxy.engine",
    "Listener": "hil.proxy.engine",
    "Output": "hil.proxy.engine",
    "ProxyEngine": "hil.proxy.engine",
    "ProxyEvent": "hil.proxy.engine",
    "ProxyStats": "hil.proxy.engine",
    "Received": "hil.proxy.engine",
    "Sent": "hil.proxy.engine",
    "Direction": "hil.proxy.faults",
    "DirectionSelector": "hil.proxy.faults",
    "FaultConfig": "hil.proxy.faults",
    "FaultKind": "hil.proxy.faults",
    "FaultSpec": "hil.proxy.faults",
    "FaultSpecError": "hil.proxy.faults",
    "Nth": "hil.proxy.faults",
    "Rate": "hil.proxy.faults",
    "Window": "hil.proxy.faults",
    "load_fault_file": "hil.proxy.faults",
    "parse_fault": "hil.proxy.faults",
    "parse_fault_document": "hil.proxy.faults",
    "FaultProxy": "hil.proxy.runner",
    "memory_proxy": "hil.proxy.runner",
}

__all__ = [
    "DEFAULT_IDLE_MS",
    "Direction",
    "DirectionSelector",
    "FaultApplied",
    "FaultConfig",
    "FaultKind",
    "FaultProxy",
    "FaultSpec",
    "FaultSpecError",
    "FrameLost",
    "Listener",
    "Nth",
    "Output",
    "ProxyEngine",
    "ProxyEvent",
    "ProxyStats",
    "Rate",
    "Received",
    "Sent",
    "Window",
    "load_fault_file",
    "memory_proxy",
    "parse_fault",
    "parse_fault_document",
]


__getattr__ = lazy_getattr(__name__, _HOMES, globals())
