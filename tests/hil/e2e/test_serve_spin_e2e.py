"""``pumpemu serve --spin-us``: what serve runs with, as its start line says (hil/spin.py,
docs/serve.md "The serve loop's cost"); and a programmer answered under each setting."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.links import SerialLink
from hil.programmer.client import Programmer
from hil.programmer.core import Outcome
from protocol.device_state import Role
from protocol.keys import PumpKeys
from tests.hil.e2e.conftest import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        pytest.param((), "; spin 200 us", id="default"),
        pytest.param(("--spin-us", "50"), "; spin 50 us", id="given"),
        pytest.param(("--spin-us", "0"), None, id="off"),
        pytest.param(("--spin-us", "50", "--baud", "115200"), None, id="paced"),
    ],
)
def test_serve_says_how_it_spins_and_answers(
    serve: Callable[..., ServeProcess],
    pump_keys: tuple[PumpKeys, Path],
    options: tuple[str, ...],
    says: str | None,
) -> None:
    keys, key_file = pump_keys
    pump = serve("--pty", "--keys", str(key_file), *options)
    path = pump.first_line()
    line = pump.wait_stderr("serving on")
    if says is None:
        assert "spin" not in line
    else:
        assert line.endswith(says)
    link = SerialLink(path)
    try:
        programmer = Programmer(link, keys.serial, Role.CLINICIAN, keys.clinician)
        for _ in range(3):
            assert programmer.status().outcome is Outcome.ANSWERED
        programmer.close()
    finally:
        link.close()
    assert pump.stop(signal.SIGTERM) == 0
