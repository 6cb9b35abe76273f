"""The monitor itself: any bytes in either direction, in any chunking, never raise, and the
verdicts do not depend on how the link chunked the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.conformance import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor
from tests.hil.conformance.rig import KEYS, Rig
from tests.hil.conformance.test_rules import bad_lost_reply_no_status

Chunk = tuple[str, bytes, int]


def recorded_session() -> list[Chunk]:
    """The bytes of a session that breaks LOST-REPLY-NO-STATUS, as (direction, data, ms)."""
    rig = Rig()
    chunks: list[Chunk] = []
    feed = rig.monitor.feed

    def record(direction: str, data: bytes, link_ms: int) -> None:
        chunks.append((direction, data, link_ms))
        feed(direction, data, link_ms)

    rig.monitor.feed = record  # type: ignore[method-assign]
    bad_lost_reply_no_status(rig)
    assert [v.rule for v in rig.finish()] == ["LOST-REPLY-NO-STATUS"]
    return chunks


SESSION = recorded_session()


@given(st.lists(st.tuples(st.sampled_from([TO_PUMP, TO_PROGRAMMER]), st.binary(max_size=80))))
def test_any_bytes_never_raise(chunks: list[tuple[str, bytes]]) -> None:
    monitor = ConformanceMonitor(KEYS)
    for index, (direction, data) in enumerate(chunks):
        monitor.feed(direction, b"\xa5\x5a" + data if index % 3 == 0 else data, index)
    assert all(v.detail for v in monitor.finish(len(chunks)))


@given(st.data())
def test_the_verdict_does_not_depend_on_chunking(data: st.DataObject) -> None:
    monitor = ConformanceMonitor(KEYS)
    for direction, chunk, link_ms in SESSION:
        cuts = sorted(data.draw(st.sets(st.integers(1, max(len(chunk) - 1, 1)), max_size=4)))
        for start, end in zip([0, *cuts], [*cuts, len(chunk)], strict=True):
            monitor.feed(direction, chunk[start:end], link_ms)
    assert [v.rule for v in monitor.finish()] == ["LOST-REPLY-NO-STATUS"]


def test_without_keys_sealed_frames_are_counted_unopened() -> None:
    monitor = ConformanceMonitor(None)
    for direction, chunk, link_ms in SESSION:
        monitor.feed(direction, chunk, link_ms)
    assert monitor.finish() == ()  # nothing it cannot see is invented
    assert monitor.stats.sessions == 1
    assert monitor.stats.unopened > 0


def test_a_direction_must_be_named() -> None:
    with pytest.raises(ValueError, match="direction"):
        ConformanceMonitor(KEYS).feed("sideways", b"", 0)
