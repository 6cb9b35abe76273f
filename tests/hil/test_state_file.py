"""hil/state_file.py: the --state file is signed, locked, atomic, and checked field by field.

The fuzz test here is the evidence for "a checksum is not validation": a record altered at
any path and re-signed with the right key either loads into a pump that runs, or is refused
with StateFileError; nothing else escapes and nothing hangs."""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.device import DEVICE_STATE_MAGIC, PumpDevice
from emulator.faults import MotorStall
from emulator.firmware.nvram import canonical_json, decode_record, encode_record
from emulator.pump import Pump
from hil.state_file import (
    FORMAT_VERSION,
    MAGIC,
    StateFile,
    StateFileBusyError,
    StateFileError,
    seal_state,
    state_key,
    unseal_state,
)
from protocol.keys import generate_keys
from protocol.messages import ClinicianBolus, ReadStatus, StagePrescription, StopTherapy
from tests.emulator.test_device import KEYS, RX, acked, ok, pair

OTHER_KEYS = generate_keys("PE-000123", bytes(range(70, 134)))
"""The same serial, other keys: a foreign pump that claims to be this one."""


def entropy(n: int) -> bytes:
    return random.Random(5).randbytes(n)


def busy_device_record() -> bytes:
    """A device mid-therapy: a ledger, a bolus running, a stalled motor, alarms, a staged
    prescription, some failed openings (most fields carry something)."""
    tp = pair(program=True)
    acked(tp, ClinicianBolus(command_id=5, dose_nl=2_000, duration_s=600))
    tp.run_until(30_000)
    acked(tp, StopTherapy(command_id=6))
    ok(tp, StagePrescription(prescription=RX))
    tp.device.pump.inject(MotorStall(recover_after_s=7_200))
    tp.run_until(3_600_000)
    ok(tp, ReadStatus())
    return tp.device.snapshot()


BASES = (
    PumpDevice(Pump(), KEYS, entropy).snapshot(),
    pair(program=True).device.snapshot(),
    busy_device_record(),
)


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "pump.state"


def write_sealed(path: Path, record: bytes, keys: Any = KEYS) -> bytes:
    data = seal_state(keys, record)
    path.write_bytes(data)
    return data


# -- the envelope ------------------------------------------------------------------------------


def test_a_saved_pump_loads_back_exactly(state_path: Path) -> None:
    with StateFile(state_path, KEYS) as state:
        state.write(BASES[2])
        device = state.load(entropy)
    assert device is not None
    assert (
        device.snapshot_record()["ledger"] == decode_record(DEVICE_STATE_MAGIC, BASES[2])["ledger"]
    )
    data = state_path.read_bytes()
    assert data[:8] == MAGIC
    assert int.from_bytes(data[8:10], "little") == FORMAT_VERSION
    assert state_path.stat().st_mode & 0o777 == 0o600


def test_no_file_is_a_new_pump(state_path: Path) -> None:
    with StateFile(state_path, KEYS) as state:
        assert state.load(entropy) is None


def test_the_mac_key_is_the_key_files_and_not_a_session_key() -> None:
    assert state_key(KEYS) != state_key(OTHER_KEYS)
    assert state_key(KEYS) not in (KEYS.clinician, KEYS.patient)
    assert len(state_key(KEYS)) == 32


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda data: data[:-1], "length does not match"),
        (lambda data: data + b"\0", "length does not match"),
        (lambda data: data[:40] + bytes([data[40] ^ 0x80]) + data[41:], "MAC does not verify"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "MAC does not verify"),
        (lambda data: data[:8] + b"\x02\x00" + data[10:], "format version 2 is newer"),
        (lambda data: data[:10] + b"\x01\x00" + data[12:], "length does not match"),
        (lambda data: b"PEMU-DV2" + data[8:], "older pumpemu, without a MAC"),
        (lambda data: b"", "not a pumpemu state file"),
    ],
)
def test_a_damaged_newer_or_legacy_file_is_refused_and_left_untouched(
    state_path: Path, make: Any, message: str
) -> None:
    bad = make(write_sealed(state_path, BASES[1]))
    state_path.write_bytes(bad)
    with StateFile(state_path, KEYS) as state, pytest.raises(StateFileError, match=message):
        state.load(entropy)
    assert state_path.read_bytes() == bad


def test_a_file_edited_and_rechecksummed_is_refused(state_path: Path) -> None:
    """The reported attack: clear the lockout and empty the ledger, recompute SHA-256."""
    record = decode_record(DEVICE_STATE_MAGIC, BASES[2])
    record["ledger"]["entries"] = []
    record["session"] = {"failed_openings": 0, "lockout_left_ms": None}
    edited = encode_record(DEVICE_STATE_MAGIC, record)
    data = write_sealed(state_path, BASES[2])
    forged = data[:12] + len(edited).to_bytes(4, "little") + edited + data[-32:]
    state_path.write_bytes(forged)
    with StateFile(state_path, KEYS) as state, pytest.raises(StateFileError, match="MAC"):
        state.load(entropy)
    assert state_path.read_bytes() == forged


def test_another_pumps_file_is_refused(state_path: Path) -> None:
    data = write_sealed(state_path, BASES[1], OTHER_KEYS)
    with StateFile(state_path, KEYS) as state, pytest.raises(StateFileError, match="another key"):
        state.load(entropy)
    assert state_path.read_bytes() == data
    with pytest.raises(StateFileError):
        unseal_state(KEYS, data)


def test_a_huge_file_is_refused_unread(state_path: Path) -> None:
    with state_path.open("wb") as stream:
        stream.truncate(65 << 20)
    with StateFile(state_path, KEYS) as state, pytest.raises(StateFileError, match="larger"):
        state.load(entropy)


# -- the lock ----------------------------------------------------------------------------------


def test_a_second_holder_is_refused_naming_the_file_and_the_first(state_path: Path) -> None:
    with StateFile(state_path, KEYS) as first:
        first.write(BASES[0])
        second = StateFile(state_path, KEYS)
        with pytest.raises(StateFileBusyError) as refused:
            second.acquire()
        message = str(refused.value)
        assert str(state_path) in message
        assert "in use by another pumpemu serve" in message
        assert f"(pid {os.getpid()})" in message
    with StateFile(state_path, KEYS) as third:  # free again once the first let go
        assert third.load(entropy) is not None


def test_only_the_lock_holder_writes(state_path: Path) -> None:
    with pytest.raises(StateFileError, match="not locked"):
        StateFile(state_path, KEYS).write(BASES[0])
    assert not state_path.exists()


def test_leftover_temporary_files_are_removed_when_the_lock_is_taken(state_path: Path) -> None:
    directory = state_path.parent
    leftovers = [f".{state_path.name}.4242.1.tmp", f".{state_path.name}.77.9.tmp"]
    for name in leftovers:
        (directory / name).write_bytes(b"half a save")
    unrelated = directory / ".other.state.1.1.tmp"
    unrelated.write_bytes(b"not ours")
    with StateFile(state_path, KEYS) as state:
        assert state.removed == sorted(leftovers)
    assert not any((directory / name).exists() for name in leftovers)
    assert unrelated.exists()


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="no such directory"):
        StateFile(tmp_path / "nope" / "pump.state", KEYS).acquire()


# -- the fuzz: altered, re-signed records ------------------------------------------------------


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**53, 2**63, 2**64, 2**64 - 1, 10**30, -(10**30)]),
    st.text(max_size=8),
    st.sampled_from(["00", "ff" * 16, "zz", "a55a"]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
MUTATIONS = st.lists(
    st.tuples(
        st.integers(0, 10**6),
        st.sampled_from(["replace", "delete", "add", "nudge"]),
        JSON_VALUES,
    ),
    min_size=1,
    max_size=3,
)


def mutate(record: Any, choice: int, how: str, value: Any) -> Any:
    """Apply one mutation at the path numbered ``choice`` (modulo the number of paths)."""
    all_paths = list(paths(record))
    path = all_paths[choice % len(all_paths)]
    if not path:
        return value if how == "replace" else record
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    old = parent[last]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add":
        if isinstance(old, dict):
            old[f"extra{choice % 7}"] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            parent[last] = [old, value]
    elif isinstance(old, int) and not isinstance(old, bool):  # nudge a number a little
        parent[last] = old + (choice % 5) - 2
    return record


@pytest.mark.timeout(600)
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(base=st.sampled_from(BASES), mutations=MUTATIONS)
def test_any_altered_and_resigned_record_loads_and_runs_or_is_refused(
    tmp_path: Path, base: bytes, mutations: list[tuple[int, str, Any]]
) -> None:
    record: Any = decode_record(DEVICE_STATE_MAGIC, base)
    for choice, how, value in mutations:
        record = mutate(record, choice, how, value)
    try:
        payload = canonical_json(record)
    except (TypeError, ValueError):
        return  # not JSON (cannot be written), so not a file anyone can make
    blob = (
        DEVICE_STATE_MAGIC
        + len(payload).to_bytes(4, "little")
        + payload
        + hashlib.sha256(DEVICE_STATE_MAGIC + len(payload).to_bytes(4, "little") + payload).digest()
    )
    path = tmp_path / "fuzz.state"
    write_sealed(path, blob)
    with StateFile(path, KEYS) as state:
        try:
            device = state.load(entropy, persist=False)
        except StateFileError as exc:
            refusal = str(exc)
            device = None
    if device is None:
        assert "\n" not in refusal  # one line, as every user error
        return
    assert device is not None
    # A loaded pump must run: a day of pump time, a status, a save, a restart.
    now = device.now_ms
    device.handle_timer(now + 86_400_000)
    device.pump.status()
    again = PumpDevice.restore(device.snapshot(), KEYS, entropy)
    assert again.now_ms == now + 86_400_000


def test_the_fuzz_mutations_do_reach_the_pump_record() -> None:
    """The fuzz is only evidence if its paths reach deep fields."""
    record = decode_record(DEVICE_STATE_MAGIC, BASES[2])
    found = {path[-1] for path in paths(record) if path}
    for field in ("next_battery_check_ms", "_motor_change_ms", "bolus_strokes", "entries"):
        assert field in found
    assert json.dumps(record)  # plain JSON all the way down
