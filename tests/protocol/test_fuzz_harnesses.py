"""The short hypothesis run of the framer and codec fuzz harnesses (issue 11 part 5).

The checks are ``fuzz.harnesses.check_framer`` and ``check_codec``, the same functions
atheris drives for millions of inputs (docs/fuzzing.md); here hypothesis feeds them
arbitrary bytes and mutated seeds, and every seed and kept corpus input is replayed.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from fuzz import harnesses
from fuzz.harnesses import check_codec, check_framer
from fuzz.seeds import SEEDS
from fuzz.strategies import corpus_inputs, fuzz_inputs
from protocol import codec
from protocol.codec import DecodeError
from protocol.framer import Framer
from protocol.messages import Opcode
from protocol.request_kinds import REQUEST_KIND


@given(fuzz_inputs("framer", max_size=2100))
def test_framer_harness(data: bytes) -> None:
    check_framer(data)


@given(fuzz_inputs("codec"))
def test_codec_harness(data: bytes) -> None:
    check_codec(data)


@pytest.mark.parametrize("name", ["framer", "codec"])
def test_seeds_and_kept_corpus_pass(name: str) -> None:
    inputs = SEEDS[name]() + corpus_inputs(name)
    assert inputs
    for data in inputs:
        harnesses.HARNESSES[name](data)


def test_codec_seeds_cover_every_opcode_both_ways() -> None:
    seeds = SEEDS["codec"]()
    assert {s[1] for s in seeds if s[0] == 1} == {int(op) for op in Opcode}
    assert {s[13] for s in seeds if s[0] == 0} == {int(op) for op in Opcode}
    assert set(harnesses.SESSION_REQUESTS) == set(REQUEST_KIND)


def test_codec_check_lets_a_foreign_exception_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(opcode: int, body: bytes) -> None:
        raise KeyError(opcode)

    monkeypatch.setattr(codec, "decode_payload", broken)
    with pytest.raises(KeyError):
        check_codec(b"\x01\x11")


def test_codec_check_refuses_a_non_canonical_acceptance(monkeypatch: pytest.MonkeyPatch) -> None:
    real = codec.decode_payload

    def lenient(opcode: int, body: bytes) -> object:
        try:
            return real(opcode, body)
        except DecodeError:
            return real(opcode, body[:-1])  # accepts a trailing byte: not canonical

    monkeypatch.setattr(codec, "decode_payload", lenient)
    with pytest.raises(AssertionError):
        check_codec(b"\x01\x11\x00")


def test_framer_check_sees_lost_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    class Forgetful(Framer):
        def finish(self) -> list:  # type: ignore[type-arg]
            super().finish()
            return []  # drops the trailing noise report

    monkeypatch.setattr(harnesses, "Framer", Forgetful)
    with pytest.raises(AssertionError):
        check_framer(b"\0\0\0\0" + b"noise")
