"""Checksummed non-volatile records (H4 reset, H8 memory error) and Pump snapshots.

A record is canonical JSON (sorted keys, no spaces, integers only) framed as::

    MAGIC (8 bytes) | payload length (u32 LE) | payload | SHA-256(MAGIC | length | payload)

so any corruption, truncation or extension is detected on read, and a record never decodes
to something other than what was written. JSON keeps the format readable in a hex dump and
free of pickle's code execution; integers stay exact at any size.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

from emulator.errors import EmulatorError
from protocol.documents import DocumentError, parse_json
from protocol.errors import ProtocolError
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)

__all__ = [
    "SnapshotError",
    "canonical_json",
    "decode_record",
    "encode_record",
    "prescription_from_json",
    "prescription_to_json",
]

_DIGEST_LEN = 32
_HEADER = struct.Struct("<8sI")


class SnapshotError(EmulatorError):
    """A non-volatile record or snapshot failed its checksum or does not parse."""


def canonical_json(record: object) -> bytes:
    """The one encoding of a record: sorted keys, no spaces, ASCII."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("ascii")


def encode_record(magic: bytes, record: dict[str, Any]) -> bytes:
    if len(magic) != 8:
        raise ValueError("magic must be 8 bytes")
    payload = canonical_json(record)
    head = _HEADER.pack(magic, len(payload))
    return head + payload + hashlib.sha256(head + payload).digest()


def decode_record(magic: bytes, blob: bytes) -> dict[str, Any]:
    """The record in ``blob``; SnapshotError if the blob is not exactly one good record."""
    if len(blob) < _HEADER.size + _DIGEST_LEN:
        raise SnapshotError("record too short")
    got_magic, length = _HEADER.unpack_from(blob)
    if got_magic != magic:
        raise SnapshotError(f"bad magic {got_magic!r}, expected {magic!r}")
    end = _HEADER.size + length
    if len(blob) != end + _DIGEST_LEN:
        raise SnapshotError("record length does not match its header")
    if hashlib.sha256(blob[:end]).digest() != blob[end:]:
        raise SnapshotError("checksum mismatch: the record is corrupt")
    try:
        record = parse_json(blob[_HEADER.size : end].decode("ascii"), max_bytes=len(blob))
    except (UnicodeDecodeError, DocumentError) as exc:  # a record re-hashed after an edit
        raise SnapshotError(f"record does not parse: {exc}") from None
    if not isinstance(record, dict):
        raise SnapshotError("record is not an object")
    return record


def prescription_to_json(rx: Prescription | None) -> dict[str, Any] | None:
    if rx is None:
        return None
    pb = rx.patient_bolus
    return {
        "drug": rx.drug_name,
        "conc": rx.concentration_ug_per_ml,
        "mode": int(rx.mode),
        "repeat": int(rx.repeat),
        "steps": [[s.start_s, s.rate_nl_per_day] for s in rx.steps],
        "pb": None if pb is None else [pb.dose_nl, pb.duration_s, pb.lockout_s, pb.max_per_24h],
        "low": rx.low_reservoir_threshold_nl,
    }


def prescription_from_json(data: Any) -> Prescription | None:
    if data is None:
        return None
    try:
        pb = data["pb"]
        return Prescription(
            drug_name=data["drug"],
            concentration_ug_per_ml=data["conc"],
            mode=InfusionMode(data["mode"]),
            repeat=Repeat(data["repeat"]),
            steps=tuple(FlexStep(start, rate) for start, rate in data["steps"]),
            patient_bolus=None if pb is None else PatientBolusLimits(*pb),
            low_reservoir_threshold_nl=data["low"],
        )
    except (KeyError, TypeError, ValueError, ProtocolError) as exc:
        raise SnapshotError(f"bad prescription in record: {exc}") from exc
