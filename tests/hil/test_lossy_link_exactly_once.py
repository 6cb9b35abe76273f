"""Thousands of therapy commands through a lossy link: none lost, none applied twice.

The reference programmer, with the default retry policy that ``pumpemu ctl`` uses, against
the emulated pump in the two-peer simulation on a manual clock (``hil.lossy_campaign``):
deterministic per seed, no threads, no wall clock, so it cannot flake under load. Every
command must end applied, refused or honestly not applied, and the pump's own event log
must agree command by command (C1, C2). Link damage alone never fails a proof or locks the
clinician out (docs/security.md section 5). ``benchmarks/lossy_link.py`` runs the same
campaign at 100,000 commands.
"""

from __future__ import annotations

import pytest

from hil.lossy_campaign import run_lossy_campaign
from hil.programmer.core import RetryPolicy

pytestmark = pytest.mark.hazard("C1", "C2")


@pytest.mark.parametrize(
    ("faults", "commands", "seed"),
    [(0.10, 2_000, 1), (0.10, 2_000, 2), (0.20, 1_000, 3)],
    ids=["10pct-seed1", "10pct-seed2", "20pct-seed3"],
)
def test_commands_through_a_lossy_link_apply_exactly_once(
    faults: float, commands: int, seed: int
) -> None:
    result = run_lossy_campaign(commands, drop=faults, corrupt=faults, duplicate=faults, seed=seed)
    assert result.double_applied == 0
    assert result.silently_lost == 0
    assert result.locked_out == 0
    assert result.failed_openings == 0
    # At 10% the default policy resolves everything (benchmarks/lossy_link.py: 0 of
    # 100,000); at 20% a handshake can run out of frames now and then, and says so.
    assert result.uncertain * (10_000 if faults <= 0.10 else 100) <= commands
    assert result.applied + result.refused + result.not_applied + result.uncertain == commands
    assert result.applied >= commands // 2  # alarm tests, most starts, stops and boluses
    # The link really was that bad: about the asked share of chunks met each fate.
    for fate in ("dropped", "corrupted", "duplicated"):
        assert result.link[fate] > 0


def test_a_perfect_link_applies_every_command_first_time() -> None:
    result = run_lossy_campaign(400, drop=0, corrupt=0, duplicate=0)
    assert (result.not_applied, result.uncertain, result.double_applied) == (0, 0, 0)
    assert result.link == {}


def test_an_impatient_policy_may_end_uncertain_but_never_lies() -> None:
    """With one frame per step and no reopening, link damage does leave commands
    unresolved: they are reported UNCERTAIN, never applied twice or silently lost."""
    policy = RetryPolicy(reply_timeout_ms=1_000, attempts=1, reopen_attempts=1)
    result = run_lossy_campaign(1_000, drop=0.2, corrupt=0.2, duplicate=0.2, seed=5, policy=policy)
    assert result.uncertain > 0
    assert (result.double_applied, result.silently_lost) == (0, 0)
