"""The shipped Lua dissector under tshark agrees with ``pumpemu decode --json``.

Two captures: the demo's (a real clinic visit: handshakes in clear, the rest sealed) and one
holding every message of docs/protocol.md's vectors unsealed (so every payload field of
every message goes through the dissector). Each is exported to pcapng with
``pumpemu capture export``, read by ``tshark -X lua_script:<shipped lua> -T json``, and
compared item for item with ``pumpemu decode --json`` of the same capture: every unsealed
frame's header and message field for field, every sealed frame's header, every note.

tshark is a Debian package (.ci/run installs it). Locally without it these tests skip; with
CI=true they fail, so CI cannot pass without running them.
"""

from __future__ import annotations

import binascii
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hil.capture import CaptureWriter
from hil.wireshark.generate import shipped_path
from hil.wireshark.tshark_json import packets_from_tshark
from protocol import wire
from tests import protocol_doc
from tests.hil.e2e.conftest import pumpemu_command

pytestmark = pytest.mark.e2e

TIMEOUT_S = 180


def tshark() -> str:
    found = shutil.which("tshark")
    if found is None:
        message = "tshark is not installed (apt-get install tshark; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"{args[:3]}... exited {done.returncode}: {done.stderr}"
    return done


def tshark_packets(pcapng: Path, cwd: Path) -> list[dict[str, Any]]:
    done = run(
        [
            tshark(),
            "-X",
            f"lua_script:{shipped_path()}",
            "-r",
            str(pcapng),
            "-T",
            "json",
            "--no-duplicate-keys",
        ],
        cwd,
    )
    assert "Lua Error" not in done.stdout, done.stdout[:2000]
    return packets_from_tshark(json.loads(done.stdout))


def decode_items(capture: Path, cwd: Path) -> list[dict[str, Any]]:
    done = run([*pumpemu_command(), "decode", str(capture), "--json"], cwd)
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


def export(capture: Path, cwd: Path) -> Path:
    out = cwd / (capture.stem + ".pcapng")
    run([*pumpemu_command(), "capture", "export", "--pcapng", str(capture), "-o", str(out)], cwd)
    return out


def compare(capture: Path, cwd: Path) -> tuple[int, int]:
    """Asserts agreement; returns (unsealed frames compared, sealed frames compared)."""
    items = decode_items(capture, cwd)
    packets = tshark_packets(export(capture, cwd), cwd)
    assert len(packets) == len(items)
    unsealed = sealed = 0
    for item, packet in zip(items, packets, strict=True):
        where = f"capture line {item['line']}"
        assert packet["kind"] == item["kind"], where
        assert packet["source"] == item["source"], where
        assert packet["sim_ms"] == item["sim_ms"], where
        if item["kind"] == "note":
            assert packet["text"] == item["text"], where
        elif item["kind"] == "capture":
            assert packet["format"] == item["format"], where
        elif item["kind"] == "noise":
            assert packet["hex"] == item["hex"], where
        if item["kind"] not in ("frame", "noise"):
            continue
        assert packet["direction"] == item["direction"], where
        if item["kind"] == "noise":
            continue
        assert packet["header"] == item["header"], where
        assert packet["sealed"] == item["sealed"], where
        assert packet["crc_status"] == "good", where
        if item["sealed"]:
            sealed += 1
            assert packet["ciphertext_len"] == item["header"]["length"] - wire.TAG_LEN, where
            assert packet["tag_len"] == wire.TAG_LEN, where
            assert "message" not in packet, where
        elif "message" in item:
            unsealed += 1
            assert packet.get("message") == item["message"], where
        else:
            assert "error" in packet, where
    return unsealed, sealed


def frame(opcode: int, payload: bytes, *, flags: int = 0, seq: int = 9) -> bytes:
    """A frame with a good CRC around any payload (the codec would refuse to build these)."""
    body = wire.build_header(flags, seq, 0, opcode, len(payload)) + payload
    return body + struct.pack("<H", binascii.crc_hqx(body[2:], 0xFFFF))


STATUS_FIELDS = struct.pack("<BIIBIIQ", 99, 0, 0, 50, 0, 0, 0)
BAD_FRAMES = (
    frame(0x11, b"\x00"),  # READ_STATUS with a payload byte: trailing bytes
    frame(0x91, STATUS_FIELDS, flags=wire.FLAG_REPLY),  # STATUS with state 99: no such state
    frame(0x7E, b""),  # an opcode that does not exist
)
"""Unsealed frames with good CRCs whose payload does not decode."""


def test_the_demo_capture_matches_decode(tmp_path: Path) -> None:
    run([*pumpemu_command(), "demo", "--out", str(tmp_path)], tmp_path)
    unsealed, sealed = compare(tmp_path / "pumpemu-demo-capture.jsonl", tmp_path)
    assert unsealed >= 4  # the handshake: OPEN_SESSION, CHALLENGE, AUTHENTICATE, SESSION_OPENED
    assert sealed > 100


def test_every_message_of_the_protocol_vectors_matches_decode(tmp_path: Path) -> None:
    capture = tmp_path / "vectors.jsonl"
    vectors = protocol_doc.blocks("vector")
    with CaptureWriter(capture, source="vectors", wall_ns=1_700_000_000_000_000_000) as writer:
        for n, vector in enumerate(vectors):
            data = bytes.fromhex(vector["hex"])
            direction = "tx" if data[3] & wire.FLAG_REPLY else "rx"
            writer.record(direction, data, sim_ms=n, wall_ns=1_700_000_000_000_000_000 + n)
            writer.note(f"vector {vector['name']}", sim_ms=n, wall_ns=1_700_000_000_000_000_000 + n)
        for n, bad in enumerate(BAD_FRAMES):
            writer.record("a->b", bad, sim_ms=None, wall_ns=1_800_000_000_000_000_000 + n)
        writer.record("b->a", b"\x13\x37 noise", sim_ms=None, wall_ns=1_800_000_000_000_000_010)
    unsealed, sealed = compare(capture, tmp_path)
    messages = {json.loads(line).get("message", {}).get("type") for line in capture.open()}
    errors = [json.loads(line).get("error") for line in capture.open()]
    assert unsealed == len(vectors)
    assert sealed == 0
    assert len([e for e in errors if e]) == len(BAD_FRAMES)  # each shown as an error by both
    assert len(messages - {None}) >= 34  # every message type of protocol/messages.py
