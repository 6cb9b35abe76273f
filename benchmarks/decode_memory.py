"""``pumpemu decode`` in bounded memory (issue 11): time, frames/s and peak RSS by input size.

Run: ``.venv/bin/python benchmarks/decode_memory.py [--mb N] [--json]`` (default 50 MB).
Target: the peak RSS of ``pumpemu decode`` on a 50 MB capture under 200 MB, and about the
same as on a 5 MB one (measured in the same run), since memory must not grow with the input.

Inputs, built in a temporary directory: a JSONL capture written by the real
``CaptureWriter`` (docs/capture.md) holding a realistic mix (clear handshakes, sealed
requests and replies, noise runs, notes, writer restarts), and a raw binary file of about
the same size holding the same kind of traffic and noise. Each is decoded as text and as
``--json`` by ``pumpemu decode`` in a subprocess; the peak RSS is that child's
``ru_maxrss`` from ``os.wait4`` (each run in its own process, so the figures do not mix).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hil.capture import CaptureWriter
from protocol.codec import Frame, build_frame, encode
from protocol.device_state import Role
from protocol.messages import Challenge, Opcode, OpenSession, ReadStatus, StartTherapy
from protocol.wire import FLAG_REPLY, FLAG_SEALED

T0 = 1_700_000_000_000_000_000
MB = 1_000_000


def traffic(visit: int) -> list[tuple[str, bytes]]:
    """One visit's (direction, bytes): a clear handshake start, sealed frames (their
    bodies random-looking bytes: the decoder shows them sealed), noise, a clear request."""
    nonce = visit.to_bytes(16, "big")
    out = [
        ("tx", encode(OpenSession(Role.CLINICIAN, nonce), seq=1)),
        ("rx", encode(Challenge(nonce[::-1], "PE-000042"), seq=1, ref=1)),
    ]
    for n in range(6):
        body = os.urandom(16 + 8 * n)
        out.append(("tx", build_frame(Frame(FLAG_SEALED, 3 + n, 0, Opcode.READ_STATUS, body))))
        out.append(
            ("rx", build_frame(Frame(FLAG_SEALED | FLAG_REPLY, 3 + n, 3 + n, Opcode.STATUS, body)))
        )
    out.append(("rx", b"\x00\xff" * (1 + visit % 40)))  # a noise run
    out.append(("tx", encode(ReadStatus(), seq=20)))
    out.append(("tx", encode(StartTherapy(command_id=visit % 1000 + 1), seq=21)))
    return out


def build_capture(path: Path, size: int) -> int:
    """A capture of about ``size`` bytes; returns the frames in it."""
    frames = visit = 0
    while not path.exists() or path.stat().st_size < size:
        with CaptureWriter(path, "serve", wall_ns=T0 + visit) as writer:  # a run per 200 visits
            for _ in range(200):
                visit += 1
                writer.note(f"visit {visit}", sim_ms=visit, wall_ns=T0 + visit)
                for direction, data in traffic(visit):
                    writer.record(direction, data, sim_ms=visit, wall_ns=T0 + visit)
                    frames += data[:2] == b"\xa5\x5a"
    return frames


def build_binary(path: Path, size: int) -> int:
    frames = visit = 0
    with path.open("wb") as file:
        while file.tell() < size:
            visit += 1
            for _, data in traffic(visit):
                file.write(data)
                frames += data[:2] == b"\xa5\x5a"
    return frames


def measure(path: Path, frames: int, *flags: str) -> dict[str, float]:
    """Elapsed time, frames/s and peak RSS of ``pumpemu decode PATH FLAGS`` (output
    discarded), in a fresh child process: ``os.wait4`` gives that child's own rusage."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", "from hil.cli import main; main()", "decode", str(path), *flags],
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"pumpemu decode {path} {flags} exited {child.returncode}")
    return {
        "seconds": round(elapsed, 2),
        "frames_per_s": round(frames / elapsed),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the large inputs, MB")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, megabytes in (("small", 5.0), ("large", args.mb)):
            size = int(megabytes * MB)
            capture, binary = Path(tmp, f"{label}.jsonl"), Path(tmp, f"{label}.bin")
            capture_frames = build_capture(capture, size)
            binary_frames = build_binary(binary, size)
            for kind, path, frames in (
                ("capture", capture, capture_frames),
                ("binary", binary, binary_frames),
            ):
                for mode, flags in (("text", ()), ("json", ("--json",))):
                    figures = measure(path, frames, *flags)
                    results[f"{label}_{kind}_{mode}"] = {
                        "mb": round(path.stat().st_size / MB, 1),
                        "frames": frames,
                        **figures,
                    }
                    if not args.json:
                        print(f"{label}_{kind}_{mode}: {results[f'{label}_{kind}_{mode}']}")
    peak = max(float(str(r["peak_rss_mb"])) for r in results.values())
    results["summary"] = {"peak_rss_mb": peak, "target_mb": 200, "met": peak < 200}
    print(json.dumps(results) if args.json else f"summary: {results['summary']}")


if __name__ == "__main__":
    main()
