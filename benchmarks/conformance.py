"""What ``--conformance`` costs per frame, against what the pump itself spends on the frame.

Run: ``.venv/bin/python benchmarks/conformance.py`` (a table) or ``... --json``.

A session of READ_STATUS round trips is recorded once (sealed frames both ways). Then, on the
same bytes:

- ``device_us_per_round_trip``: ``PumpDevice.receive_data`` + ``data_to_send`` (the pump's
  own work: framing, opening, firmware, sealing the reply);
- ``monitor_us_per_round_trip``: ``ConformanceMonitor.feed`` of the request and the reply
  (framing, opening both, the rules);
- ``monitor_vs_device_ratio``: what turning ``--conformance`` on adds to the serve loop's
  work per frame. Off, the loop does one ``is None`` test per chunk.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.conformance import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor
from protocol import codec
from protocol.device_state import Role
from protocol.keys import generate_keys
from protocol.messages import Authenticate, OpenSession, ReadStatus
from protocol.session import ProgrammerSession
from protocol.wire import FLAG_SEALED, TAG_LEN

KEYS = generate_keys("PE-000999", bytes(range(64)))
ROUND_TRIPS = 2_000


def record() -> tuple[list[tuple[str, bytes]], float]:
    """The session's chunks in order, and the device's seconds per round trip."""
    device = PumpDevice(Pump("peristaltic-20"), KEYS, random.Random(1).randbytes)
    session = ProgrammerSession(KEYS.serial, Role.CLINICIAN, KEYS.clinician)
    chunks: list[tuple[str, bytes]] = []
    now = 0

    def exchange(data: bytes) -> bytes:
        nonlocal now
        now += 1
        device.receive_data(data, now)
        out = device.data_to_send()
        chunks.extend(((TO_PUMP, data), (TO_PROGRAMMER, out)))
        return out

    start = session.start(bytes(16))
    challenge = codec.decode(
        exchange(
            codec.encode(
                OpenSession(role=Role.CLINICIAN, programmer_nonce=start.programmer_nonce), seq=1
            )
        )
    ).message
    answer = session.answer_challenge(challenge.pump_nonce, challenge.serial)  # type: ignore[attr-defined]
    opened = codec.decode(exchange(codec.encode(Authenticate(proof=answer.proof), seq=2))).message
    session.confirm_opened(opened.proof, opened.idle_timeout_s, opened.max_session_s)  # type: ignore[attr-defined]
    frames = []
    for _ in range(ROUND_TRIPS):
        opcode, plaintext = codec.encode_payload(ReadStatus())
        seq = session.next_send_seq
        header = codec.header_bytes(FLAG_SEALED, seq, 0, opcode, len(plaintext) + TAG_LEN)
        frames.append(
            codec.build_frame(
                codec.Frame(FLAG_SEALED, seq, 0, opcode, session.seal(header, plaintext))
            )
        )
    began = time.perf_counter()
    for frame in frames:
        exchange(frame)
    return chunks, (time.perf_counter() - began) / ROUND_TRIPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    chunks, device_s = record()
    best = float("inf")
    for _ in range(3):
        monitor = ConformanceMonitor(KEYS)
        began = time.perf_counter()
        for index, (direction, data) in enumerate(chunks):
            monitor.feed(direction, data, index)
        best = min(best, (time.perf_counter() - began) / ROUND_TRIPS)
    assert monitor.stats.replies >= ROUND_TRIPS, monitor.stats
    figures = {
        "round_trips": ROUND_TRIPS,
        "device_us_per_round_trip": round(device_s * 1e6, 1),
        "monitor_us_per_round_trip": round(best * 1e6, 1),
        "monitor_vs_device_ratio": round(best / device_s, 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
