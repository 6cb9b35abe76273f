"""The opcode-to-permission bridge leaves no request unclassified."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from protocol.messages import MESSAGE_BY_OPCODE, Opcode
from protocol.request_kinds import COMMAND_OPCODES, HANDSHAKE_OPCODES, REQUEST_KIND

REQUESTS = [op for op in Opcode if not op.is_reply]


@pytest.mark.parametrize("opcode", REQUESTS, ids=[op.name for op in REQUESTS])
def test_every_request_is_a_handshake_or_has_a_kind(opcode: Opcode) -> None:
    assert (opcode in HANDSHAKE_OPCODES) != (opcode in REQUEST_KIND)


def test_no_reply_has_a_kind() -> None:
    assert not [op for op in REQUEST_KIND if op.is_reply]


@pytest.mark.parametrize("opcode", REQUESTS, ids=[op.name for op in REQUESTS])
def test_commands_and_only_commands_carry_a_command_id(opcode: Opcode) -> None:
    message_class: Any = MESSAGE_BY_OPCODE[opcode]
    names = {f.name for f in dataclasses.fields(message_class)}
    assert ("command_id" in names) == (opcode in COMMAND_OPCODES)
