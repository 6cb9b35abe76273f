"""hil/wireshark/tshark_json.py on recorded tshark output.

tshark-sample.json is ``tshark -X lua_script:hil/wireshark/pumpemu.lua -T json
--no-duplicate-keys`` of a small capture (six unsealed replies and requests from
docs/protocol.md's vectors, one sealed frame, a note and noise), cut to the pumpemu layer;
decode-sample.json is ``pumpemu decode --json``'s items for the same capture. The live
comparison runs in tests/hil/e2e/test_wireshark_e2e.py; this one pins the conversions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hil.wireshark.tshark_json import packets_from_tshark

HERE = Path(__file__).parent


def load(name: str) -> Any:
    return json.loads((HERE / name).read_text("utf-8"))


@pytest.fixture(scope="module")
def pairs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    items = load("decode-sample.json")
    packets = packets_from_tshark(load("tshark-sample.json"))
    assert len(items) == len(packets)
    return list(zip(items, packets, strict=True))


def test_every_unsealed_message_converts_to_decodes_fields(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    compared = [
        (item["message"], packet.get("message"))
        for item, packet in pairs
        if item["kind"] == "frame" and "message" in item
    ]
    assert [m["type"] for m, _ in compared] == [
        "Status",
        "EventLogPage",
        "CurrentPrescription",
        "CurrentPrescription",
        "AlarmList",
        "StagePrescription",
    ]
    for expected, converted in compared:
        assert converted == expected


def test_lists_optional_records_and_enum_sets_keep_their_shape(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    messages = [p["message"] for _, p in pairs if "message" in p]
    status, page, present, absent = messages[:4]
    assert isinstance(status["active_alarms"], list)
    assert len(page["entries"]) >= 1
    assert page["entries"][0]["type"] == "LogEntry"
    assert present["prescription"]["type"] == "Prescription"
    assert absent["prescription"] is None


def test_a_sealed_frame_gives_its_header_and_lengths_only(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    (item, packet) = next((i, p) for i, p in pairs if i.get("sealed"))
    assert packet["header"] == item["header"]
    assert packet["sealed"] is True
    assert (packet["ciphertext_len"], packet["tag_len"]) == (0, 16)
    assert "message" not in packet
    assert packet["crc_status"] == "good"


def test_notes_and_noise_come_through(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    note = next(p for i, p in pairs if i["kind"] == "note")
    noise = next(p for i, p in pairs if i["kind"] == "noise")
    assert note["text"] == "session opened (clinician)"
    assert (noise["hex"], noise["direction"]) == ("1337", "rx")
