"""hil/spin.py: the spin before a blocking read, on a manual clock (no real time passes).

Each poll of the fake peer moves the clock by ``POLL_NS``; the peer answers at its N-th poll
or never. A model of the adaptive rule (a miss skips the next 1, 2, 4 ... 64 spins, a hit
resets it) is checked against the spinner over any sequence of peers.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.spin import MAX_SKIP, Spinner

POLL_NS = 10_000
SPIN_US = 200
LONG_NS = 10**12
"""A caller's wait far longer than any window."""


class Peer:
    """Answers at its ``answer_at``-th poll (1-based; None: never); moves the clock."""

    def __init__(self, clock: list[int], answer_at: int | None) -> None:
        self.clock = clock
        self.answer_at = answer_at
        self.polls = 0

    def read_now(self) -> bytes:
        self.polls += 1
        self.clock[0] += POLL_NS
        return b"reply" if self.polls == self.answer_at else b""


def spinner_on(clock: list[int], spin_us: int = SPIN_US) -> Spinner:
    return Spinner(spin_us, monotonic_ns=lambda: clock[0])


def test_bytes_that_come_within_the_window_are_returned_at_once() -> None:
    clock = [0]
    peer = Peer(clock, answer_at=3)
    assert spinner_on(clock).spin(peer.read_now, LONG_NS) == (b"reply", 0)
    assert peer.polls == 3


def test_a_window_with_no_bytes_reports_the_time_it_spent() -> None:
    clock = [0]
    peer = Peer(clock, answer_at=None)
    data, spent_ns = spinner_on(clock).spin(peer.read_now, LONG_NS)
    assert data == b""
    assert spent_ns == SPIN_US * 1_000  # 20 polls of 10 us: the window, not a poll more
    assert peer.polls == SPIN_US * 1_000 // POLL_NS


def test_a_spinner_of_zero_never_polls() -> None:
    clock = [0]
    peer = Peer(clock, answer_at=1)
    assert spinner_on(clock, 0).spin(peer.read_now, LONG_NS) == (b"", 0)
    assert peer.polls == 0


def test_a_negative_spin_is_refused() -> None:
    with pytest.raises(ValueError, match="spin_us must be >= 0"):
        Spinner(-1)


def test_misses_in_a_row_skip_1_2_4_up_to_64_spins_and_a_hit_resets() -> None:
    clock = [0]
    spinner = spinner_on(clock)
    runs: list[int] = []  # the reads skipped between two spins, with a peer that never answers
    skipped = -1
    for _ in range(400):
        peer = Peer(clock, None)
        spinner.spin(peer.read_now, LONG_NS)
        if peer.polls:
            if skipped >= 0:
                runs.append(skipped)
            skipped = 0
        else:
            skipped += 1
    assert runs[:8] == [1, 2, 4, 8, 16, 32, 64, 64]
    assert set(runs[6:]) == {MAX_SKIP}
    while spinner._skip:  # let the skips run out, then a peer that answers resets the rule
        spinner.spin(Peer(clock, 1).read_now, LONG_NS)
    assert spinner.spin(Peer(clock, 1).read_now, LONG_NS) == (b"reply", 0)
    assert spinner.spin(Peer(clock, None).read_now, LONG_NS)[0] == b""
    peer = Peer(clock, 1)
    assert spinner.spin(peer.read_now, LONG_NS) == (b"", 0)  # one skipped read after a first miss
    assert peer.polls == 0
    assert spinner.spin(Peer(clock, 1).read_now, LONG_NS) == (b"reply", 0)


def model_skips(misses: int) -> int:
    """How many spins a miss skips, after ``misses`` earlier misses in a row."""
    return min(1 << misses, MAX_SKIP)


@given(st.lists(st.one_of(st.none(), st.integers(1, 40)), max_size=200))
def test_the_spinner_follows_the_adaptive_rule_for_any_peers(
    answers: list[int | None],
) -> None:
    """Model check: a read polls only when not skipping; it returns the peer's bytes iff the
    peer answers within the window; a miss spends the whole window and skips the next
    1, 2, 4 ... 64 reads; a hit resets the run of misses."""
    clock = [0]
    spinner = spinner_on(clock)
    window_polls = SPIN_US * 1_000 // POLL_NS
    misses = skip = 0
    for answer_at in answers:
        peer = Peer(clock, answer_at)
        data, spent_ns = spinner.spin(peer.read_now, LONG_NS)
        if skip:
            skip -= 1
            assert (data, spent_ns, peer.polls) == (b"", 0, 0)
        elif answer_at is not None and answer_at <= window_polls:
            assert (data, spent_ns, peer.polls) == (b"reply", 0, answer_at)
            misses = 0
        else:
            assert (data, spent_ns, peer.polls) == (b"", SPIN_US * 1_000, window_polls)
            skip = model_skips(misses)
            misses += 1


@pytest.mark.parametrize(
    ("limit_ns", "polls"),
    [
        pytest.param(50_000, 5, id="shorter-wait"),
        pytest.param(0, 0, id="no-wait"),
        pytest.param(-5, 0, id="overdue"),
    ],
)
def test_a_spin_never_outlasts_the_callers_wait(limit_ns: int, polls: int) -> None:
    """A timer due sooner than the window ends the spin (docs/serve.md, "--spin-us")."""
    clock = [0]
    peer = Peer(clock, None)
    data, spent_ns = spinner_on(clock).spin(peer.read_now, limit_ns)
    assert data == b""
    assert peer.polls == polls
    assert spent_ns == max(limit_ns, 0)


def test_a_clock_that_does_not_move_cannot_keep_it_spinning() -> None:
    """At most one poll a microsecond of the window: a test's frozen clock, or a coarse one
    (Windows before Python 3.13), still ends the spin."""
    polls = [0]

    def read_now() -> bytes:
        polls[0] += 1
        return b""

    spinner = Spinner(SPIN_US, monotonic_ns=lambda: 0)
    assert spinner.spin(read_now, LONG_NS) == (b"", 0)
    assert polls[0] == SPIN_US + 1


def test_reset_forgets_the_misses() -> None:
    clock = [0]
    spinner = spinner_on(clock)
    for _ in range(3):
        spinner.spin(Peer(clock, None).read_now, LONG_NS)  # a miss, a skip, a miss
    spinner.reset()
    peer = Peer(clock, 1)
    assert spinner.spin(peer.read_now, LONG_NS) == (b"reply", 0)  # not skipped
