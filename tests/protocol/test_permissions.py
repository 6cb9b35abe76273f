"""The one permission table: every (role, kind) pair, deny by default, and the document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol.device_state import Role
from protocol.permissions import PERMISSIONS, RequestKind, permitted

ROOT = Path(__file__).resolve().parents[2]

# Written out independently of the table under test: what a patient may do, and nothing else.
PATIENT_MAY = {"READ_STATUS", "READ_PATIENT_VIEW", "PATIENT_BOLUS", "KEEP_ALIVE", "CLOSE"}
PAIRS = [(role, kind) for role in Role for kind in RequestKind]


@pytest.mark.hazard("C4")
@pytest.mark.parametrize(("role", "kind"), PAIRS, ids=[f"{r.name}-{k.name}" for r, k in PAIRS])
def test_every_role_and_kind(role: Role, kind: RequestKind) -> None:
    expected = role is Role.CLINICIAN or kind.name in PATIENT_MAY
    assert permitted(role, kind) is expected


def test_the_catalogue_is_the_one_the_integration_maps_opcodes_to() -> None:
    assert {k.name for k in RequestKind} == {
        "READ_STATUS", "READ_INFO", "READ_PRESCRIPTION", "READ_LOG", "READ_ALARMS",
        "READ_CLOCK", "STAGE", "COMMIT", "SET_CLOCK", "START", "STOP", "CLINICIAN_BOLUS",
        "CANCEL_BOLUS", "PATIENT_BOLUS", "PRIMING", "REFILL_BEGIN", "REFILL_COMPLETE",
        "ACK_ALARM", "ALARM_TEST", "KEEP_ALIVE", "CLOSE",
        # issue 12: the wire catches up
        "READ_STATUS_DETAIL", "READ_CATHETER", "READ_PATIENT_VIEW", "CLEAR_MEMORY_ERROR",
        "RESET_FLOW_VALVE", "SET_CATHETER",
    }  # fmt: skip


@pytest.mark.hazard("C4")
def test_deny_by_default_for_a_role_missing_from_the_table() -> None:
    class Stranger(int):
        pass

    for kind in RequestKind:
        assert not permitted(Stranger(99), kind)  # type: ignore[arg-type]


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        PERMISSIONS[Role.PATIENT] = frozenset(RequestKind)  # type: ignore[index]
    assert isinstance(PERMISSIONS[Role.PATIENT], frozenset)


def test_the_document_carries_this_table() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([A-Z_]+) \| (yes|no) \| (yes|no) \|$", text, re.MULTILINE)
    documented = {(name, Role.CLINICIAN): c == "yes" for name, c, _ in rows} | {
        (name, Role.PATIENT): p == "yes" for name, _, p in rows
    }
    assert documented == {(k.name, r): permitted(r, k) for r, k in PAIRS}
