"""``pumpemu proxy``: a seeded, frame-aware link-fault injector (docs/proxy.md).

- ``faults``: fault specs and their parsing from the command line and TOML;
- ``engine``: the sans-IO core, ``ProxyEngine`` (bytes and ``now`` in, scheduled bytes out);
- ``runner``: ``FaultProxy``, the threaded I/O loop joining two links, and ``memory_proxy``;
- ``command``: the click command.

The ``command`` module is not imported here, so library users do not pull in click.
"""

from __future__ import annotations

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
from hil.proxy.runner import FaultProxy, memory_proxy

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
