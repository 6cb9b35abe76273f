"""Codec and framer throughput, with the ratio to a hand-written ``struct`` codec.

Run: ``.venv/bin/python benchmarks/codec.py`` (a table) or ``... --json`` (one object).
Targets: issue 2, decode_status_fps >= 50 000 on one core and decode_vs_struct_ratio <= 6;
issue 15, decode_status_fps >= 250 000, at least 1.8x ``pymodbus_decode_fps``,
decode_stage_fps >= 60 000 and decode_vs_struct_ratio <= 1.0.

A peer in the same run: with the ``bench`` extra installed (pymodbus), the full decode of a
25-byte Modbus RTU frame by pymodbus's RTU framer and PDU decoder (a Read Holding Registers
response with 10 registers, the framer's CRC check included) is timed beside ours, as
``pymodbus_decode_fps`` and ``decode_status_vs_pymodbus``.

The struct baseline does the same job as ``protocol.codec.decode`` for the status frame:
check sync, length and CRC, unpack header and payload, and build the same validated
``Status`` message, so the ratio measures the cost of the construct layer and the generic
field conversion, not of skipping work. ``decode_vs_struct_tuple_ratio`` compares against
unpacking to a bare tuple (no message object), for reference.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import time
from collections.abc import Callable

from protocol.checksum import crc16
from protocol.codec import decode, encode
from protocol.device_state import AlarmKind, TherapyState
from protocol.framer import Framer
from protocol.messages import StagePrescription, Status
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat

STATUS = Status(
    state=TherapyState.FLEX,
    rate_nl_per_day=400_000,
    reservoir_nl=18_500_000,
    battery_percent=87,
    active_alarms=frozenset({AlarmKind.LOW_RESERVOIR}),
    last_command_id=41,
    pump_time_ms=1_767_225_600_000,
)
STAGE = StagePrescription(
    Prescription(
        drug_name="Morphine",
        concentration_ug_per_ml=25_000,
        mode=InfusionMode.FLEX,
        repeat=Repeat.DAILY,
        steps=tuple(FlexStep(h * 3_600 * 2, 400_000 + h * 10_000) for h in range(10)),
        patient_bolus=PatientBolusLimits(20_000, 600, 3_600, 4),
        low_reservoir_threshold_nl=2_000_000,
    )
)

HEADER = struct.Struct("<2sBBIIBH")
STATUS_BODY = struct.Struct("<BIIBIIQ")
ALARMS = {kind.value: kind for kind in AlarmKind}
STATES = {state.value: state for state in TherapyState}


def struct_decode_status(data: bytes) -> Status:
    """Hand-written decoder of a status frame: the same checks and the same result."""
    if len(data) != 17 + STATUS_BODY.size or data[:2] != b"\xa5\x5a":
        raise ValueError("bad frame")
    if crc16(data[2:-2]) != int.from_bytes(data[-2:], "little"):
        raise ValueError("bad crc")
    _, version, flags, seq, ref, opcode, length = HEADER.unpack_from(data)
    if (
        version != 1
        or opcode != 0x91
        or length != STATUS_BODY.size
        or flags != 1
        or not seq
        or not ref
    ):
        raise ValueError("bad header")
    state, rate, reservoir, battery, bitmap, last, now = STATUS_BODY.unpack_from(data, 15)
    alarms = frozenset(ALARMS[bit] for bit in range(1, 32) if bitmap >> bit & 1)
    return Status(STATES[state], rate, reservoir, battery, alarms, last, now)


def struct_decode_status_tuple(data: bytes) -> tuple[int, ...]:
    if crc16(data[2:-2]) != int.from_bytes(data[-2:], "little"):
        raise ValueError("bad crc")
    return HEADER.unpack_from(data)[1:] + STATUS_BODY.unpack_from(data, 15)


def per_second(function: Callable[[], object], seconds: float = 0.5) -> float:
    """Calls per second: the best of five timed runs, each at least ``seconds`` / 5 long."""
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            function()
        if time.perf_counter() - start > seconds / 5:
            break
        count *= 2
    best = min(_timed(function, count) for _ in range(5))
    return count / best


def _timed(function: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        function()
    return time.perf_counter() - start


def noisy_stream(size: int = 1_000_000) -> bytes:
    """Frames with random garbage between them (seeded, so runs compare)."""
    rng = random.Random(2)
    frames = [encode(STATUS, seq=1, ref=1), encode(STAGE, seq=2)]
    parts: list[bytes] = []
    total = 0
    while total < size:
        part = rng.randbytes(rng.randrange(0, 64)) + rng.choice(frames)
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def framer_mb_s(stream: bytes, chunk: int = 4_096) -> float:
    def run() -> None:
        framer = Framer()
        for at in range(0, len(stream), chunk):
            framer.feed(stream[at : at + chunk])
        framer.finish()

    best = min(_timed(run, 1) for _ in range(3))
    return len(stream) / best / 1e6


def pymodbus_decoder() -> tuple[Callable[[], object], int] | None:
    """(a full pymodbus RTU decode of one 25-byte frame, the frame's size), or None
    without pymodbus (the ``bench`` extra)."""
    try:
        from pymodbus.framer import FramerRTU  # noqa: PLC0415 - an optional peer
        from pymodbus.pdu import DecodePDU  # noqa: PLC0415
        from pymodbus.pdu.register_message import (  # noqa: PLC0415
            ReadHoldingRegistersResponse,
        )
    except ImportError:
        return None
    decoder = DecodePDU(is_server=False)
    framer = FramerRTU(decoder)
    frame = framer.buildFrame(ReadHoldingRegistersResponse(registers=list(range(10)), dev_id=1))

    def full() -> object:
        _used, _dev, _tid, pdu = framer.decode(frame)
        message = decoder.decode(pdu)
        assert message is not None
        return message

    full()
    return full, len(frame)


def measure() -> dict[str, float]:
    status_frame = encode(STATUS, seq=1, ref=1)
    stage_frame = encode(STAGE, seq=2)
    assert decode(status_frame).message == struct_decode_status(status_frame) == STATUS
    results = {
        "decode_status_fps": per_second(lambda: decode(status_frame)),
        "encode_status_fps": per_second(lambda: encode(STATUS, seq=1, ref=1)),
        "decode_stage_fps": per_second(lambda: decode(stage_frame)),
        "encode_stage_fps": per_second(lambda: encode(STAGE, seq=2)),
        "struct_decode_status_fps": per_second(lambda: struct_decode_status(status_frame)),
        "struct_tuple_decode_status_fps": per_second(
            lambda: struct_decode_status_tuple(status_frame)
        ),
        "framer_mb_s": framer_mb_s(noisy_stream()),
    }
    results["decode_vs_struct_ratio"] = (
        results["struct_decode_status_fps"] / results["decode_status_fps"]
    )
    results["decode_vs_struct_tuple_ratio"] = (
        results["struct_tuple_decode_status_fps"] / results["decode_status_fps"]
    )
    peer = pymodbus_decoder()
    if peer is not None:
        results["pymodbus_decode_fps"] = per_second(peer[0])
        results["pymodbus_frame_bytes"] = peer[1]
        results["decode_status_vs_pymodbus"] = (
            results["decode_status_fps"] / results["pymodbus_decode_fps"]
        )
    return {key: round(value, 2) for key, value in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = measure()
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key:32} {value:>14,.2f}")
    print(
        "targets: decode_status_fps >= 250,000 and >= 1.8x pymodbus_decode_fps; "
        "decode_stage_fps >= 60,000; decode_vs_struct_ratio <= 1.0"
    )
    if "pymodbus_decode_fps" not in results:
        print("(pymodbus not installed: pip install -e '.[bench]' to time the peer)")


if __name__ == "__main__":
    main()
