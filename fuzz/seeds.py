"""Seed inputs for each harness, in that harness's input layout (``fuzz.harnesses``).

Built at run time from docs/protocol.md's vectors and hil/examples/session.hex
(``fuzz.vectors``), so the seeds follow the spec; ``SEEDS[name]()`` gives a list of inputs.
"""

from __future__ import annotations

from collections.abc import Callable

from fuzz.harnesses import SESSION_OPS, SESSION_REQUESTS, saved_device_blob, split_device_blob
from fuzz.vectors import example_stream, vector_frames, vector_messages
from protocol import codec

__all__ = ["SEEDS"]


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def framer_seeds() -> list[bytes]:
    frames = list(vector_frames().values())
    seeds = [_u32(0) + example_stream(), _u32(7) + b"\x00\xa5\x5a".join(frames[:12])]
    seeds += [_u32(i) + frame for i, frame in enumerate(frames[::4])]
    return seeds


def codec_seeds() -> list[bytes]:
    seeds = [b"\x00" + frame for frame in vector_frames().values()]
    for message in vector_messages().values():
        opcode, payload = codec.encode_payload(message)
        seeds.append(b"\x01" + bytes([opcode]) + payload)
    return seeds


def device_seeds() -> list[bytes]:
    frames = vector_frames()
    requests = [f for name, f in frames.items() if not f[3] & 1]
    return [_u32(0) + example_stream(), _u32(1) + b"".join(requests)] + [
        _u32(i + 2) + frame for i, frame in enumerate(requests)
    ]


def session_seeds() -> list[bytes]:
    """Each request opcode sent authentic, then forged, in a clinician session; a few
    patient sessions. Layout: see ``fuzz.harnesses.check_session``."""
    authentic, forged = SESSION_OPS.index("authentic"), SESSION_OPS.index("forged")
    seeds = []
    for index in range(len(SESSION_REQUESTS)):
        # role, (op, dt, opcode index, mutation count) x2
        seeds.append(bytes([0, authentic, 1, index, 0, forged, 1, index, index % 8, 5, 0]))
    seeds.append(bytes([3, authentic, 1, 0, 0, authentic, 1, 5, 0]))
    return seeds


def state_seeds() -> list[bytes]:
    blob = saved_device_blob()
    device_payload, pump_payload = split_device_blob(blob)
    return [b"\x00" + blob, b"\x01" + device_payload, b"\x02" + pump_payload]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "framer": framer_seeds,
    "codec": codec_seeds,
    "device": device_seeds,
    "session": session_seeds,
    "state": state_seeds,
}
