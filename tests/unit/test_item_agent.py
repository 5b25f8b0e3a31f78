"""The item agent's steps without a broker: records in, statistics out, bad records refused."""

from __future__ import annotations

import logging

from core.events import Event
from core.interest import InterestConfig
from core.item_stats import decode_item_stats
from streams.steps.items import apply_items, item_event_records, parse_item_records
from tests.unit.step_helpers import Message


def test_records_keyed_by_item_count_once_and_bad_ones_are_dead_letters(caplog):
    events = [(Event("u1", "a", "click", 10), (0, 4)), (Event("u2", "a", "impression", 20), (1, 2)),
              (Event("u1", "b", "rating", 30, 5.0), (0, 5))]  # fmt: skip
    records = item_event_records(events)
    assert [key for key, _ in records] == [b"a", b"a", b"b"]
    messages = [Message(k, v, 3, n) for n, (k, v) in enumerate(records)]
    messages.append(Message(b"a", b"{not json", 3, 9))
    by_item, last, dead, _, _ = parse_item_records(messages, InterestConfig())
    assert [m.offset for m, _ in dead] == [9] and dead[0][1].reason == "bad_item_event"
    assert last == {"a": 1, "b": 2}
    table = {b"b": b"\xff corrupt"}
    with caplog.at_level(logging.ERROR, logger="streams.steps.items"):
        done = apply_items(by_item, table, 86_400_000.0)
    assert "unreadable statistics" in caplog.text
    assert (done.applied, done.duplicates) == (3, 0)
    a, b = decode_item_stats(table[b"a"]), decode_item_stats(table[b"b"])
    assert (a.impressions, a.positives, a.applied) == (1, 1, {0: 4, 1: 2})
    assert (b.positives, b.popularity) == (1, 2.0)  # a 5-star rating: 1 x (5 - 3)
    again = apply_items(by_item, table, 86_400_000.0)
    assert (again.applied, again.duplicates) == (0, 3)


def test_a_producer_retry_replayed_after_a_crash_is_still_counted_once():
    from streams.steps.parse import parse_batch
    from tests.unit.step_helpers import ITEMS, apply, messages

    retry = [Event("u1", "a", "click", 10, None, "x"), Event("u1", "a", "click", 10, None, "x"),
             Event("u2", "a", "click", 12, None, "y"), Event("u1", "a", "click", 13, None, "z")]
    # u1's last event is after the retry, so after the crash u1's stored position is past it and
    # the replay cannot tell the retry (offset 11) from an applied event
    batch = messages(*retry, first_offset=10)
    users: dict = {}
    items: dict = {}

    def to_items(done, delivered: int | None = None) -> None:
        records = item_event_records(done.item_events)[:delivered]
        by_item = parse_item_records([Message(k, v) for k, v in records], InterestConfig()).by_item
        apply_items(by_item, items, 86_400_000.0)

    to_items(apply(parse_batch(batch, set(ITEMS)), users), delivered=1)  # then a crash
    replay = apply(parse_batch(batch, set(ITEMS)), users)  # the batch read again
    assert [at for _, at in replay.item_events] == [(0, 10), (0, 11), (0, 12), (0, 13)]
    to_items(replay)
    assert decode_item_stats(items[b"a"]).positives == 3  # x, y and z once each


def test_a_by_item_record_out_of_the_events_bounds_is_a_dead_letter():
    import orjson

    def written(**fields) -> Message:
        record = {"i": "a", "t": "rating", "ts": 10, "v": 5.0, "p": 0, "o": 1, "h": None, **fields}
        return Message(b"a", orjson.dumps(record))

    bad = [written(v=1e300), written(v=-1e7),
           written(ts=10**15), written(p=-1), written(t=7),
           # issue 32: no events partition 4 (of 4): 65,536 of them overflowed the item state
           written(p=4), written(p=70_000),
           # a type the user path never sends here, a rating without its value, another item
           written(t="nonsense"), written(t="delete"), written(v=None), written(i="b")]
    parsed = parse_item_records([written(), *bad], InterestConfig(), max_abs_value=1e6,
                                partitions=4)  # fmt: skip
    by_item, dead = parsed.by_item, parsed.dead
    assert len(dead) == len(bad) and all(exc.reason == "bad_item_event" for _, exc in dead)
    assert list(by_item) == ["a"] and len(by_item["a"]) == 1


def test_a_position_past_the_events_topics_end_is_a_dead_letter():
    """Issue 32 #4: four by-item records for an item at offset 2**62 made every later real event
    of it count as a duplicate. No user path applied an event past the topic's end."""
    import orjson

    def written(offset: int, partition: int = 0) -> Message:
        record = {"i": "a", "t": "click", "ts": 10, "v": None, "p": partition, "o": offset,
                  "h": None}  # fmt: skip
        return Message(b"a", orjson.dumps(record))

    messages = [written(3), written(2**62), written(9), written(0, partition=1)]
    parsed = parse_item_records(messages, InterestConfig())
    assert parsed.claimed() == {0: 2**62, 1: 0}
    kept = parsed.within({0: 10, 1: 1}, messages)
    assert [e[3] for e in kept.by_item["a"]] == [(0, 3), (0, 9), (1, 0)]
    [(message, exc)] = kept.dead
    assert message is messages[1] and exc.reason == "bad_item_event" and "past" in exc.detail
    assert parsed.within({0: 2**62 + 1, 1: 1}, messages) is parsed  # nothing past: unchanged
    assert parsed.within({}, messages).by_item == {}  # an end not known yet: nothing is there


def test_out_of_order_positions_all_count_when_the_position_does_not_decide():
    """A user path with slices sends a hot user's by-item records after later offsets of other
    users (issue 32 #6); under exactly-once each is read once, so none is skipped by position."""
    from core.item_stats import ItemStats, apply_item_events

    events = [("click", 10, 1.0, (0, 9), None), ("click", 11, 1.0, (0, 4), None)]
    ordered, counted = apply_item_events(ItemStats(), events, 1000.0)
    assert (ordered.positives, len(counted)) == (1, 1)  # the older position skipped
    sliced, counted = apply_item_events(ItemStats(), events, 1000.0, by_position=False)
    assert (sliced.positives, len(counted), sliced.applied) == (2, 2, {0: 9})
