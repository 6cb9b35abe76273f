"""The contract suite fails on a pump that breaks the contract (so none of it passes
vacuously): deliberately non-conforming devices, plugged in through the plugin's
``pump_device_factory`` fixture exactly as a device team plugs in their own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

CONTRACT = Path(__file__).resolve().parents[1] / "contract" / "test_contract.py"

FORGETFUL = '''
import secrets
import pytest
from emulator.device import CommandLedger, PumpDevice
from emulator.pump import Pump

class ForgetfulLedger(CommandLedger):
    """Never finds a command id: applies a repeated command again (breaks C1)."""
    def lookup(self, command_id, fingerprint):
        return None

@pytest.fixture
def pump_device_factory():
    return lambda profile, keys: PumpDevice(
        Pump(profile), keys, secrets.token_bytes, ledger=ForgetfulLedger()
    )
'''

BOASTFUL = '''
import dataclasses
import secrets
import pytest
from emulator.device import PumpDevice
from emulator.pump import Pump
from protocol.messages import DeviceInfo

class Boastful(PumpDevice):
    """Advertises a maximum rate above the one it enforces (a refusal's limit then
    disagrees with DEVICE_INFO)."""
    def _read_or_stage(self, request):
        reply = super()._read_or_stage(request)
        if isinstance(reply, DeviceInfo):
            limits = dataclasses.replace(
                reply.limits, rate_max_nl_per_day=reply.limits.rate_max_nl_per_day + 1_000
            )
            return dataclasses.replace(reply, limits=limits)
        return reply

@pytest.fixture
def pump_device_factory():
    return lambda profile, keys: Boastful(Pump(profile), keys, secrets.token_bytes)
'''


@dataclasses.dataclass(frozen=True)
class Double:
    conftest: str
    fails: frozenset[str]


DOUBLES = {
    "applies-a-repeated-command-id-twice": Double(
        FORGETFUL,
        frozenset(
            {
                "test_a_repeated_command_id_is_answered_again_and_applied_once",
                "test_a_command_id_reused_for_another_request_is_a_conflict",
            }
        ),
    ),
    "refuses-with-a-limit-it-did-not-advertise": Double(
        BOASTFUL,
        frozenset({"test_a_rate_above_the_pumps_maximum_is_refused_with_field_and_limit"}),
    ),
}


@pytest.mark.parametrize("double", list(DOUBLES.values()), ids=list(DOUBLES))
def test_the_contract_fails_exactly_where_the_pump_breaks_it(
    pytester: pytest.Pytester, double: Double
) -> None:
    pytester.makeconftest(double.conftest)
    pytester.makepyfile(test_contract=CONTRACT.read_text())
    recorder = pytester.inline_run()
    failed = {
        report.nodeid.split("::")[-1]
        for report in recorder.getreports("pytest_runtest_logreport")
        if report.failed
    }
    assert failed == double.fails
    passed, _skipped, _failed = recorder.listoutcomes()
    assert len(passed) >= 10  # the rest of the contract still holds for this double
