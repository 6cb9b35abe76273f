"""docs/protocol.md's byte-offset layout tables (the issue-12 messages carry an `offset`
column) agree with protocol/wire.py: every field in wire order, at the offset the sizes
before it add up to, and the payload size the section states."""

from __future__ import annotations

import re

import pytest

from protocol import wire
from protocol.messages import Opcode
from tests.protocol_doc import TEXT, table

SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}


def offset_tables() -> dict[Opcode, tuple[int, list[dict[str, str]]]]:
    """opcode -> (stated payload size, rows) for each section 7 message whose table has an
    offset column."""
    out: dict[Opcode, tuple[int, list[dict[str, str]]]] = {}
    for match in re.finditer(r"^### ([A-Z_]+) \(0x([0-9A-F]{2})\)\n(.*?)(?=^### |^## )",
                             TEXT, re.MULTILINE | re.DOTALL):  # fmt: skip
        name, value, body = match.groups()
        if "| offset | field |" not in body:
            continue
        size = re.search(r"^Payload: (\d+) bytes\.$", body, re.MULTILINE)
        assert size is not None, name
        start = body.index("| offset | field |")
        out[Opcode(int(value, 16))] = (int(size.group(1)), table(body[start:]))
        assert Opcode[name].value == int(value, 16)
    return out


TABLES = offset_tables()


def test_the_new_messages_have_offset_tables() -> None:
    assert {
        Opcode.STATUS_DETAIL, Opcode.CATHETER_INFO, Opcode.PATIENT_VIEW,
        Opcode.CLEAR_MEMORY_ERROR, Opcode.RESET_FLOW_VALVE, Opcode.SET_CATHETER,
    } <= set(TABLES)  # fmt: skip


@pytest.mark.parametrize("opcode", sorted(TABLES), ids=lambda op: op.name)
def test_offsets_sizes_and_order_match_the_wire(opcode: Opcode) -> None:
    size, rows = TABLES[opcode]
    layout = wire.PAYLOADS[opcode.value]
    names = [sub.name for sub in layout.subcons]  # type: ignore[attr-defined]
    assert [row["field"].strip("`") for row in rows] == names
    at = 0
    for row in rows:
        assert int(row["offset"]) == at, row
        at += SIZES[row["type"]]
    assert at == size == wire.fixed_size(opcode.value)
