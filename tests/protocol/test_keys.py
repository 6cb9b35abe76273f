"""Key files: round trip, strict parsing with clear errors, keys independent of the serial."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.device_state import Role
from protocol.keys import (
    KEY_FILE_FORMAT,
    KeyFileError,
    PumpKeys,
    fingerprint,
    generate_keys,
    parse_key_file,
    serialize_key_file,
)

ROOT = Path(__file__).resolve().parents[2]
CLINICIAN = bytes(range(32))
PATIENT = bytes(range(32, 64))
KEYS = PumpKeys("PE-000042", CLINICIAN, PATIENT)


def document(**changes: Any) -> str:
    doc: dict[str, Any] = json.loads(serialize_key_file(KEYS))
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return json.dumps(doc)


DELETE = object()


def test_round_trip() -> None:
    text = serialize_key_file(KEYS)
    assert parse_key_file(text) == KEYS
    assert json.loads(text)["format"] == KEY_FILE_FORMAT == "pumpemu-keys/1"
    assert KEYS.key_for(Role.CLINICIAN) == CLINICIAN
    assert KEYS.key_for(Role.PATIENT) == PATIENT


@given(
    serial=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16),
    random=st.binary(min_size=64, max_size=64),
)
def test_any_generated_key_set_round_trips(serial: str, random: bytes) -> None:
    try:
        keys = generate_keys(serial, random)
    except KeyFileError:
        assert random[:32] == random[32:] or bytes(32) in (random[:32], random[32:])
        return
    assert parse_key_file(serialize_key_file(keys)) == keys


def test_the_documented_example_is_what_serialize_writes() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
    examples = [b for b in blocks if f'"format": "{KEY_FILE_FORMAT}"' in b]
    assert examples == [serialize_key_file(KEYS)]


def test_keys_come_only_from_the_random_bytes_never_from_the_serial() -> None:
    random = bytes(range(200, 232)) + bytes(range(100, 132))
    a = generate_keys("PE-000001", random)
    b = generate_keys("PE-999999", random)
    assert (a.clinician, a.patient) == (b.clinician, b.patient) == (random[:32], random[32:])
    c = generate_keys("PE-000001", bytes(reversed(random)))
    assert c.clinician != a.clinician
    for keys in (a, b):
        assert keys.serial.encode() not in keys.clinician + keys.patient


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("not json", "", "not JSON"),
        ("[]", "", "must be a JSON object"),
        (document(format=DELETE), "format", "missing field"),
        (document(format="pumpemu-keys/2"), "format", "unknown key file format 'pumpemu-keys/2'"),
        (document(extra=1), "extra", "unknown field 'extra'"),
        (document(serial=DELETE), "serial", "missing field"),
        (document(serial=42), "serial", "must be a string"),
        (document(serial="PE 42"), "serial", "printable ASCII without spaces"),
        (document(serial="P" * 17), "serial", "1-16 characters"),
        (document(keys=DELETE), "keys", "missing field"),
        (document(keys="00"), "keys", "must be an object"),
        (document(keys__patient=DELETE), "keys.patient", "missing field"),
        (document(keys__clinician=DELETE), "keys.clinician", "missing field"),
        (document(keys__admin="00" * 32), "keys", "unknown role 'admin'"),
        (document(keys__patient="00" * 31), "keys.patient", "(256 bits), got 62 characters"),
        (document(keys__patient="00" * 33), "keys.patient", "got 66 characters"),
        (document(keys__clinician="zz" * 32), "keys.clinician", "'z' is not a hex digit"),
        (document(keys__clinician=12), "keys.clinician", "must be a string of 64 hex digits"),
        (document(keys__clinician="00" * 32), "keys.clinician", "all zeros"),
        (document(keys__clinician=PATIENT.hex()), "keys", "must differ"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 and not v.startswith("{") else None,
)  # fmt: skip
def test_malformed_key_files_name_the_field(text: str, path: str, message: str) -> None:
    with pytest.raises(KeyFileError) as info:
        parse_key_file(text)
    assert info.value.path == path
    assert message in str(info.value)


def test_upper_case_hex_is_accepted_and_written_back_lower_case() -> None:
    text = document(keys__clinician=CLINICIAN.hex().upper())
    assert parse_key_file(text).clinician == CLINICIAN
    assert CLINICIAN.hex() in serialize_key_file(parse_key_file(text))


def test_generate_needs_exactly_64_random_bytes() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        generate_keys("PE-1", bytes(range(63)))


def test_repr_shows_fingerprints_never_keys() -> None:
    text = repr(KEYS)
    assert CLINICIAN.hex() not in text
    assert PATIENT.hex() not in text
    assert fingerprint(CLINICIAN) in text
    assert re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){3}", fingerprint(PATIENT))
    assert fingerprint(CLINICIAN) != fingerprint(PATIENT)
