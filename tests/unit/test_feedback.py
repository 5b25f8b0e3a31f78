"""Feedback in the schema (issue 17): a record's stable ``rec_id``, events that carry one, and
``impression`` events that are applied without touching the user's interest."""

import numpy as np
import orjson
import pytest

from core.codec import decode_state
from core.events import Event, InvalidEvent, encode_event, parse_event
from core.interest import UserState
from core.state_step import apply_user_events
from streams.steps import records
from streams.steps.parse import parse_batch
from tests.unit.step_helpers import CONFIG, ITEMS, apply, event, messages, recommender, plain_top_k


def shown(user: str, item: str, ts: int, rec: str | None = "r1", event_id: str | None = None):
    return Event(user, item, "impression", ts, None, event_id, rec)


def test_an_event_may_carry_the_rec_id_it_answers_and_round_trips():
    click = Event("u1", "a", "click", 5, None, "e1", "0123abcd")
    assert parse_event(encode_event(click)) == click
    assert parse_event(b'{"user_id":"u1","item_id":"a","type":"click","ts":5}').rec_id is None
    assert parse_event(encode_event(shown("u1", "a", 5))).type == "impression"


@pytest.mark.parametrize("rec_id", [True, 3.5, "", "x" * 256, {"a": 1}])
def test_a_bad_rec_id_is_refused_with_its_reason(rec_id):
    raw = orjson.dumps({"user_id": "u1", "item_id": "a", "type": "click", "ts": 5,
                        "rec_id": rec_id})  # fmt: skip
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == "bad_rec_id"


def test_an_impression_is_applied_but_leaves_the_interest_as_it_was():
    rec = recommender()
    before, *_ = apply_user_events(UserState.empty(4), [(event("u", "a", 0), (0, 0))],
                                   rec.item_vector, CONFIG.interest)  # fmt: skip
    update = apply_user_events(before, [(shown("u", "b", 900, event_id="s1"), (0, 1))],
                               rec.item_vector, CONFIG.interest)  # fmt: skip
    after = update.state
    assert update.applied == 1 and update.snapshots == []  # applied, and no record for it
    np.testing.assert_array_equal(after.vector, before.vector)
    assert (after.recent, after.recent_weights, after.count, after.last_ts) == (
        before.recent, before.recent_weights, before.count, before.last_ts)
    assert after.position == (0, 1) and len(after.seen) == 1
    again = apply_user_events(after, [(shown("u", "b", 900, event_id="s1"), (0, 1))],
                              rec.item_vector, CONFIG.interest)  # fmt: skip
    assert again.applied == 0 and again.snapshots == []  # a replayed impression: no record


def test_records_carry_a_rec_id_that_a_replay_keeps_and_impressions_get_none():
    table: dict = {}
    batch = messages(event("u1", "a", 0), shown("u1", "b", 1), event("u1", "c", 2))
    done = apply(parse_batch(batch, set(ITEMS)), table)
    assert [s.event.type for s in done.snapshots] == ["click", "click"]
    recs = plain_top_k(recommender(), [s.state for s in done.snapshots], 2)
    first = [orjson.loads(v)["rec_id"] for _, v in
             records.recommendation_records(done.snapshots, recs, "v1")]  # fmt: skip
    replay = apply(parse_batch(batch, set(ITEMS)), table)
    recs = plain_top_k(recommender(), [s.state for s in replay.snapshots], 2)
    again = [orjson.loads(v)["rec_id"] for _, v in
             records.recommendation_records(replay.snapshots, recs, "v1")]  # fmt: skip
    assert first == again == [records.rec_id("u1", 0, 0), records.rec_id("u1", 0, 2)]
    assert len(set(first)) == 2 and all(len(r) == 16 for r in first)
    assert decode_state(table[b"u1"]).position == (0, 2)


def test_an_impression_stores_its_position_alone_for_a_new_user_and_keeps_an_existing_one():
    table: dict = {}
    batch = messages(shown("new", "a", 1))
    done = apply(parse_batch(batch, set(ITEMS)), table)
    fresh = decode_state(table[b"new"])
    assert (done.applied, fresh.count, fresh.recent, fresh.position) == (1, 0, (), (0, 0))
    assert apply(parse_batch(batch, set(ITEMS)), table).applied == 0  # exactly once
    apply(parse_batch(messages(event("old", "a", 0)), set(ITEMS)), table)
    apply(parse_batch(messages(shown("old", "b", 1), first_offset=1), set(ITEMS)), table)
    stored = decode_state(table[b"old"])
    assert (stored.count, stored.recent, stored.position) == (1, ("a",), (0, 1))


def test_the_item_statistics_see_replays_but_not_repeated_ids_deletes_or_dead_letters():
    from core.events import Event

    table: dict = {}
    gone = Event("u2", "", "delete", 5)
    batch = messages(event("u1", "a", 0, "e1"), shown("u1", "b", 1), event("u1", "c", 2, "e1"),
                     event("u2", "d", 3), gone)  # fmt: skip
    done = apply(parse_batch(batch, set(ITEMS)), table)
    assert [(e.item_id, at) for e, at in done.item_events] == [
        ("a", (0, 0)), ("b", (0, 1)), ("d", (0, 3))]  # "c" repeats e1; the delete is no item's
    replay = apply(parse_batch(batch[:2], set(ITEMS)), table)
    assert replay.applied == 0
    assert [at for _, at in replay.item_events] == [(0, 0), (0, 1)]  # sent again: deduped there


def test_the_item_statistics_get_the_events_in_log_order_not_grouped_by_user():
    batch = messages(event("u1", "a", 0), event("u2", "a", 1), event("u1", "a", 2))
    done = apply(parse_batch(batch, set(ITEMS)), {})
    assert [at for _, at in done.item_events] == [(0, 0), (0, 1), (0, 2)]
