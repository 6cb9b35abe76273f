"""pumpemu's programming protocol, sans-IO: bytes in, typed messages out.

This package never imports serial, socket, threading, asyncio, time or random and never reads
a clock (docs/architecture.md principle 1); tests/test_layering.py enforces that. docs/protocol.md
is the normative specification of everything here.
"""
