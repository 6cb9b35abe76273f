"""The event hub behind the subscribe op: sequence numbers, bounded queues, drops, ends."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.events import (
    DEFAULT_QUEUE,
    EVENT_TYPES,
    MAX_QUEUE,
    MIN_QUEUE,
    EventHub,
    Subscription,
    parse_subscribe,
)


def drain(subscription: Subscription) -> list[dict[str, Any]]:
    out = []
    while (event := subscription.get(0)) is not None:
        out.append(event)
    return out


def test_events_carry_their_type_and_consecutive_seqs_from_one() -> None:
    hub = EventHub()
    sub = hub.subscribe(["fault", "time"], 16)
    hub.publish("fault", {"now_ms": 5, "fault": "MotorStall"})
    hub.publish("time", {"now_ms": 9})
    assert drain(sub) == [
        {"event": "fault", "seq": 1, "now_ms": 5, "fault": "MotorStall"},
        {"event": "time", "seq": 2, "now_ms": 9},
    ]


def test_a_body_cannot_overwrite_event_or_seq() -> None:
    hub = EventHub()
    sub = hub.subscribe(["log"], 16)
    hub.publish("log", {"seq": 77, "event": "forged"})
    assert drain(sub) == [{"event": "log", "seq": 1}]


def test_a_subscriber_gets_only_the_types_it_asked_for() -> None:
    hub = EventHub()
    alarms = hub.subscribe(["alarm"], 16)
    everything = hub.subscribe(EVENT_TYPES, 16)
    hub.publish("frame", {"n": 1})
    hub.publish("alarm", {"n": 2})
    assert [e["n"] for e in drain(alarms)] == [2]
    assert [e["n"] for e in drain(everything)] == [1, 2]
    assert hub.wants("alarm")
    assert not hub.wants("nothing-by-this-name")


def test_several_subscribers_each_have_their_own_sequence_and_queue() -> None:
    hub = EventHub()
    first = hub.subscribe(["time"], 16)
    hub.publish("time", {"n": 1})
    second = hub.subscribe(["time"], 16)
    hub.publish("time", {"n": 2})
    assert [(e["seq"], e["n"]) for e in drain(first)] == [(1, 1), (2, 2)]
    assert [(e["seq"], e["n"]) for e in drain(second)] == [(1, 2)]
    assert hub.subscribers == 2


def test_a_full_queue_drops_the_new_events_and_then_says_how_many() -> None:
    hub = EventHub()
    sub = hub.subscribe(["time"], MIN_QUEUE)
    for n in range(MIN_QUEUE + 5):
        hub.publish("time", {"n": n})  # never blocks, however full
    events = drain(sub)
    assert [e["seq"] for e in events[:MIN_QUEUE]] == list(range(1, MIN_QUEUE + 1))
    assert events[MIN_QUEUE] == {
        "event": "dropped",
        "count": 5,
        "first_seq": MIN_QUEUE + 1,
        "last_seq": MIN_QUEUE + 5,
    }
    assert sub.dropped_total == 5
    hub.publish("time", {"n": 99})
    assert drain(sub) == [{"event": "time", "seq": MIN_QUEUE + 6, "n": 99}]


def test_a_slow_subscriber_does_not_slow_or_starve_another() -> None:
    hub = EventHub()
    slow = hub.subscribe(["time"], MIN_QUEUE)
    fast = hub.subscribe(["time"], MIN_QUEUE)
    for n in range(3 * MIN_QUEUE):
        hub.publish("time", {"n": n})
        assert fast.get(0) is not None
    assert fast.dropped_total == 0
    assert slow.dropped_total == 2 * MIN_QUEUE


@given(st.lists(st.one_of(st.just("publish"), st.just("read")), max_size=200))
def test_every_seq_is_delivered_once_or_counted_as_dropped_in_order(steps: list[str]) -> None:
    hub = EventHub()
    sub = hub.subscribe(["time"], MIN_QUEUE)
    published = 0
    seen: list[int] = []
    for step in steps:
        if step == "publish":
            hub.publish("time", {})
            published += 1
        elif (event := sub.get(0)) is not None:
            seen.extend(_seqs(event))
    for event in drain(sub):
        seen.extend(_seqs(event))
    assert seen == list(range(1, published + 1))


def _seqs(event: dict[str, Any]) -> list[int]:
    if event["event"] == "dropped":
        assert event["count"] == event["last_seq"] - event["first_seq"] + 1
        return list(range(event["first_seq"], event["last_seq"] + 1))
    return [event["seq"]]


def test_end_delivers_what_was_queued_then_one_end_event() -> None:
    hub = EventHub()
    sub = hub.subscribe(["time"], 16)
    hub.publish("time", {"n": 1})
    hub.close("serve is stopping")
    hub.publish("time", {"n": 2})  # after the end: nobody gets it
    assert drain(sub) == [
        {"event": "time", "seq": 1, "n": 1},
        {"event": "end", "reason": "serve is stopping"},
    ]
    assert sub.ended
    assert hub.subscribers == 0


def test_a_subscriber_after_close_ends_at_once() -> None:
    hub = EventHub()
    hub.close("serve is stopping")
    sub = hub.subscribe(["time"], 16)
    assert drain(sub) == [{"event": "end", "reason": "serve is stopping"}]


def test_cancel_forgets_the_subscriber_and_its_queue() -> None:
    hub = EventHub()
    sub = hub.subscribe(["time"], 16)
    hub.publish("time", {})
    sub.cancel()
    assert hub.subscribers == 0
    assert not hub.wants("time")
    assert sub.get(0) is None


def test_parse_subscribe_defaults_to_every_type_and_the_default_queue() -> None:
    parsed = parse_subscribe({"op": "subscribe"})
    assert parsed.events == frozenset(EVENT_TYPES)
    assert parsed.queue == DEFAULT_QUEUE


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        pytest.param({"events": "status"}, "'events' must be a non-empty list", id="not-a-list"),
        pytest.param({"events": []}, "'events' must be a non-empty list", id="empty"),
        pytest.param({"events": [1]}, "'events' must be a non-empty list", id="not-strings"),
        pytest.param({"events": ["status", "bogus"]}, "unknown event type 'bogus'", id="unknown"),
        pytest.param({"queue": MIN_QUEUE - 1}, "'queue' must be an integer", id="queue-small"),
        pytest.param({"queue": MAX_QUEUE + 1}, "'queue' must be an integer", id="queue-big"),
        pytest.param({"queue": True}, "'queue' must be an integer", id="queue-bool"),
        pytest.param({"queue": "64"}, "'queue' must be an integer", id="queue-text"),
        pytest.param({"since": 3}, "subscribe takes no field 'since'", id="unknown-field"),
    ],
)
def test_parse_subscribe_refuses_malformed_requests(
    request_fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_subscribe({"op": "subscribe", **request_fields})
