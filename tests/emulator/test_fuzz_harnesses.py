"""The short hypothesis run of the device, session and state-file fuzz harnesses (issue 11
part 5), with the checks of ``fuzz.harnesses`` that atheris drives (docs/fuzzing.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from emulator.device import DEVICE_STATE_MAGIC, PumpDevice
from emulator.firmware.nvram import SnapshotError
from fuzz import harnesses
from fuzz.harnesses import (
    SessionBench,
    check_device,
    check_session,
    check_state_file,
    frame_record,
)
from fuzz.seeds import SEEDS
from fuzz.strategies import corpus_inputs, fuzz_inputs
from fuzz.vectors import request_payloads
from protocol.codec import DecodeError
from protocol.device_state import Role
from protocol.messages import Opcode
from protocol.refusal import RefusalCode

SHORT = settings(max_examples=40)


@SHORT
@given(fuzz_inputs("device"))
def test_device_harness(data: bytes) -> None:
    check_device(data)


@SHORT
@given(fuzz_inputs("session", max_size=96))
def test_session_harness(data: bytes) -> None:
    check_session(data)


@SHORT
@given(fuzz_inputs("state", max_size=256))
def test_state_file_harness(data: bytes) -> None:
    check_state_file(data)


@pytest.mark.parametrize("name", ["device", "session", "state"])
def test_seeds_and_kept_corpus_pass(name: str) -> None:
    inputs = SEEDS[name]() + corpus_inputs(name)
    assert inputs
    for data in inputs:
        harnesses.HARNESSES[name](data)


def test_state_seeds_restore() -> None:
    # The unmutated seeds must reach a restored device, or the harness fuzzes only refusals.
    for data in SEEDS["state"]():
        assert data[0] in (0, 1, 2)
    device = PumpDevice.restore(harnesses.saved_device_blob(), harnesses.KEYS, bytes)
    assert len(device.ledger) >= 1


def test_state_check_plugs_in_an_envelope() -> None:
    class Counting(harnesses.PlainEnvelope):
        calls = 0

        def unseal(self, data: bytes) -> bytes:
            Counting.calls += 1
            return data

    check_state_file(SEEDS["state"]()[0], Counting())
    assert Counting.calls == 1


def test_device_check_fails_if_receive_data_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def raising(self: PumpDevice, data: bytes, now_ms: int, link_ms: int | None = None) -> None:
        raise DecodeError(RefusalCode.FRAME_CORRUPT, "even a project error")

    monkeypatch.setattr(PumpDevice, "receive_data", raising)
    with pytest.raises(AssertionError, match="receive_data raised"):
        check_device(b"\0\0\0\0\xa5")


def test_session_check_fails_if_an_authentic_frame_counts_as_forged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The forged-frame check must see a change: an authentic bolus passed off as forged fails.
    bench = SessionBench(Role.CLINICIAN)
    assert bench.open()
    bolus = bench.sealed(Opcode.CLINICIAN_BOLUS, request_payloads()[Opcode.CLINICIAN_BOLUS])
    assert harnesses._holds_authentic_request(bench, b"noise" + bolus)
    monkeypatch.setattr(harnesses, "_holds_authentic_request", lambda bench, data: False)
    with pytest.raises(AssertionError, match="changed the pump"):
        harnesses._refused_everything(bench, bolus, "a forged frame")


def test_a_forged_frame_is_not_taken_for_authentic() -> None:
    bench = SessionBench(Role.CLINICIAN)
    assert bench.open()
    bolus = bytearray(
        bench.sealed(Opcode.CLINICIAN_BOLUS, request_payloads()[Opcode.CLINICIAN_BOLUS])
    )
    bolus[20] ^= 1  # a ciphertext bit; the CRC now fails too
    assert not harnesses._holds_authentic_request(bench, bytes(bolus))
    harnesses._refused_everything(bench, bytes(bolus), "a forged frame")


def test_state_check_lets_a_foreign_exception_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> PumpDevice:
        raise IndexError("not a project error")

    monkeypatch.setattr(PumpDevice, "restore", broken)
    with pytest.raises(IndexError):
        check_state_file(b"\0")


def test_a_record_with_a_huge_integer_is_a_snapshot_error() -> None:
    # Regression, found with the state harness: a re-checksummed device record holding a
    # 5,000-digit integer made PumpDevice.restore raise ValueError instead of SnapshotError.
    payload = b'{"version":' + b"9" * 5000 + b"}"
    with pytest.raises(SnapshotError, match="4300 digits"):
        PumpDevice.restore(frame_record(DEVICE_STATE_MAGIC, payload), harnesses.KEYS, bytes)
    check_state_file(b"\x01" + payload)
    check_state_file(b"\x02" + payload)
