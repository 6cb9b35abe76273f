"""A pump reached from outside: its link URL, its keys, and optionally its control API.

One connection recipe for everything that drives a pump it did not start: ``pumpemu
scenario run --backend url`` (docs/scenarios.md, "Backends") and the pytest plugin's
``--pump-backend url`` (docs/pytest-plugin.md). The link is whatever ``pumpemu ctl
--port`` opens (hil/links.py ``open_link``: a device path, a pty, ``socket://``,
``rfc2217://``); the control address and its token follow ``pumpemu fault/time/truth``
(hil/control.py ``connect_control``). A real rig has no control API: then ``control`` is
None, and what needs it (plant faults, moving time, plant truth) is the caller's to skip.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from hil.clock import SystemClock
from hil.control import ControlClient, connect_control
from hil.links import SerialLink, open_link
from hil.programmer.client import Programmer
from hil.programmer.core import Entropy, RetryPolicy
from protocol.device_state import Role
from protocol.keys import PumpKeys


@dataclass
class PumpAtUrl:
    """The pump at ``url`` with its role ``keys``; ``control``: its control API, if any."""

    url: str
    keys: PumpKeys
    control: ControlClient | None = None

    def open_link(self) -> SerialLink:
        """A new connection to the pump (a one-line ``LinkOpenError`` if it cannot open)."""
        return open_link(self.url)

    def programmer(
        self,
        link: SerialLink,
        role: Role,
        *,
        policy: RetryPolicy | None = None,
        entropy: Entropy = secrets.token_bytes,
    ) -> Programmer:
        """The reference programmer for ``role`` on ``link``, on real time (a rig's clock)."""
        return Programmer(
            link,
            self.keys.serial,
            role,
            self.keys.key_for(role),
            policy=policy,
            clock=SystemClock(),
            entropy=entropy,
        )

    def close(self) -> None:
        if self.control is not None:
            with contextlib.suppress(Exception):
                self.control.close()


def connect_pump(
    url: str, keys: PumpKeys, control: str | None = None, token_file: Path | None = None
) -> PumpAtUrl:
    """The pump at ``url``; with ``control``, its control API connected now, so an address
    that cannot be reached is one line before any run starts."""
    client = connect_control(control, token_file) if control else None
    return PumpAtUrl(url, keys, client)
