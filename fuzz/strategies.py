"""Hypothesis strategies for the harness inputs: the short version of each fuzz run that the
default test suite does (tests/protocol/test_fuzz_harnesses.py,
tests/emulator/test_fuzz_harnesses.py)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from fuzz.seeds import SEEDS

__all__ = ["CORPUS", "corpus_inputs", "fuzz_inputs", "mutate"]

CORPUS = Path(__file__).resolve().parent / "corpus"
"""The small corpus kept in the repository: fuzz/corpus/NAME/*."""

_EDIT = st.tuples(st.integers(0, 1 << 16), st.integers(0, 255), st.integers(0, 3))


def mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``seed`` with each edit (position, byte, kind) applied: 0 sets a byte, 1 inserts one,
    2 deletes one, 3 cuts the input there."""
    out = bytearray(seed)
    for position, value, kind in edits:
        at = position % (len(out) + 1)
        if kind == 0 and at < len(out):
            out[at] = value
        elif kind == 1:
            out.insert(at, value)
        elif kind == 2:
            del out[at : at + 1]
        elif kind == 3:
            del out[at:]
    return bytes(out)


def fuzz_inputs(name: str, max_size: int = 1024) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or a seed of harness ``name`` with a few random edits."""
    seeds = SEEDS[name]()
    mutated = st.builds(mutate, st.sampled_from(seeds), st.lists(_EDIT, max_size=8))
    return st.one_of(mutated, st.binary(max_size=max_size))


def corpus_inputs(name: str) -> list[bytes]:
    """Every input of fuzz/corpus/NAME, in name order (empty if there is none)."""
    directory = CORPUS / name
    if not directory.is_dir():
        return []
    return [path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()]
