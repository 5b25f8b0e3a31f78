"""The agent's steps without a broker: dead letters, grouping, exactly-once state, records."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import orjson
import pytest

from core.codebook import ItemCodebook
from core.codec import decode_state, encode_state
from core.events import Event, InvalidEvent, encode_event
from core.interest import InterestConfig, UserState
from core.state_step import apply_user_events
from streams.steps import dead_letters, records
from streams.steps.parse import StepConfig, parse_batch
from streams.steps.users import load_user_state
from streams.settings import Settings
from tests.unit.grid import assert_close_on_grid
from tests.unit.step_helpers import (
    plain_top_k,
    CONFIG, ITEMS, Message, Table, apply, event, messages, recommender,
)



def test_bad_input_goes_to_dead_letters_with_its_reason_and_still_advances_offsets():
    good = event("u1", "a", 10)
    batch = [
        Message(b"u1", b"{not json", 0, 0),
        Message(b"someone-else", encode_event(event("u2", "a", 10)), 0, 1),
        Message(b"u1", encode_event(good), 1, 7, timestamp=5.0),
        Message(b"u1", b"", 1, 8),
        # no key: the producer's partitioner, not the user, chose the partition
        Message(None, encode_event(event("u3", "a", 10)), 1, 9),
    ]
    parsed = parse_batch(batch, set(ITEMS))

    assert [(m.offset, exc.reason) for m, exc in parsed.dead] == [
        (0, "bad_json"),
        (1, "key_mismatch"),
        (8, "empty"),
        (9, "missing_key"),
    ]
    assert parsed.dead[1][0] is batch[1]  # the message itself, for its original bytes
    assert parsed.by_user == {"u1": [(good, (1, 7))]}
    assert parsed.produced == [5.0]  # only valid events have a latency
    assert parsed.next_offsets == {0: 2, 1: 10}  # bad ones are processed too


def test_an_event_far_ahead_of_its_broker_time_is_refused():
    sent_s = 1_700_000_000.0  # the broker's timestamp of the message
    skew_ms = 300_000
    near = Message(b"u1", encode_event(event("u1", "a", int(sent_s * 1000) + skew_ms)), 0, 0,
                   timestamp=sent_s)
    far = Message(b"u1", encode_event(event("u1", "a", int(sent_s * 1000) + skew_ms + 1)), 0, 1,
                  timestamp=sent_s)
    parsed = parse_batch([near, far], set(ITEMS), max_future_ms=skew_ms)
    assert [m.offset for m, _ in parsed.dead] == [1]
    assert parsed.dead[0][1].reason == "future_ts"
    assert [position for _, position in parsed.by_user["u1"]] == [(0, 0)]


def test_events_are_grouped_per_user_in_arrival_order_with_their_positions():
    es = [event("u1", "a", 30), event("u2", "b", 10), event("u1", "zz", 20), event("u1", "c", 5)]
    batch = messages(*es, partition=3, first_offset=40)
    parsed = parse_batch(batch, set(ITEMS))

    assert list(parsed.by_user) == ["u1", "u2"]  # users in order of first appearance
    assert parsed.by_user["u1"] == [(es[0], (3, 40)), (es[2], (3, 42)), (es[3], (3, 43))]
    assert parsed.by_user["u2"] == [(es[1], (3, 41))]
    assert parsed.last_index == {"u1": 3, "u2": 1}  # each user's own last message
    assert parsed.unknown_items == 1  # "zz": counted, not dead-lettered
    assert parsed.produced == [100.0, 101.0, 102.0, 103.0]


def test_each_user_is_bound_to_their_own_event_before_their_table_access():
    log: list = []
    batch = messages(event("u1", "a", 1), event("u2", "b", 2), event("u1", "c", 3))
    done = apply(
        parse_batch(batch, set(ITEMS)), Table(log), bind=lambda i: log.append(("bind", i))
    )

    # every read and every write right after a bind to that user's own last message
    assert log == [
        ("bind", 2), ("get", b"u1"), ("bind", 1), ("get", b"u2"),
        ("bind", 2), ("set", b"u1"), ("bind", 1), ("set", b"u2"),
    ]  # fmt: skip
    assert (done.applied, done.duplicates, len(done.snapshots)) == (3, 0, 3)


def test_applied_state_is_stored_as_the_core_function_computes_it():
    rec = recommender()
    es = [event("u1", "a", 0), event("u1", "b", 1000), event("u1", "zz", 1500)]
    table: dict = {}
    done = apply(parse_batch(messages(*es), set(ITEMS)), table)

    positioned = [(e, (0, n)) for n, e in enumerate(es)]
    expected, snapshots, *_ = apply_user_events(
        UserState.empty(4), positioned, rec.item_vector, CONFIG.interest
    )
    stored = decode_state(table[b"u1"])
    np.testing.assert_array_equal(stored.vector, expected.vector)
    assert_close_on_grid(stored.vector[:1], [2.0 * 2**-1.5], 3)  # a click (2), 1.5 half-lives old
    assert (stored.count, stored.last_ts, stored.position) == (3, 1500, (0, 2))
    assert [s.position for s in done.snapshots] == [s.position for s in snapshots]


def test_coalesce_keeps_one_snapshot_per_user_the_last():
    es = [event("u1", "a", 1), event("u2", "b", 2), event("u1", "c", 3), event("u2", "d", 4)]
    config = replace(CONFIG, emit="coalesce")
    done = apply(parse_batch(messages(*es), set(ITEMS)), {}, config)
    emitted = [(s.event.user_id, s.position) for s in done.snapshots]
    assert emitted == [("u1", (0, 2)), ("u2", (0, 3))]
    assert done.applied == 4  # every event is applied; only the records are coalesced
    assert done.snapshots[0].state.count == 2


def test_a_corrupt_stored_state_starts_afresh(caplog: pytest.LogCaptureFixture):
    table = {b"u1": b"\xff not a state"}
    with caplog.at_level(logging.ERROR, logger="streams.steps.users"):
        done = apply(parse_batch(messages(event("u1", "a", 1)), set(ITEMS)), table)
    assert "unreadable state" in caplog.text
    assert done.applied == 1 and decode_state(table[b"u1"]).count == 1


def test_records_carry_the_trigger_and_schema_version_keyed_by_user():
    rec = recommender()
    es = [event("u1", "a", 1000, "e-1"), event("u2", "b", 2000)]
    batch = messages(*es, partition=1, first_offset=10)
    done = apply(parse_batch(batch, set(ITEMS)), {})
    recs = plain_top_k(rec, [s.state for s in done.snapshots], CONFIG.top_k)
    out = records.recommendation_records(done.snapshots, recs, "v7", clock=lambda: 12.3456)

    assert [key for key, _ in out] == [b"u1", b"u2"]
    first, second = (orjson.loads(value) for _, value in out)
    assert first["trigger"] == {"event_id": "e-1", "partition": 1, "offset": 10}
    assert second["trigger"] == {"event_id": None, "partition": 1, "offset": 11}
    assert first["schema_version"] == second["schema_version"] == 1
    assert (first["user_id"], first["event_ts"], first["model_version"]) == ("u1", 1000, "v7")
    assert first["emitted_at"] == 12345
    assert list(first) == [
        "rec_id", "user_id", "items", "model_version", "event_ts", "emitted_at", "trigger",
        "exploration", "schema_version",
    ]  # fmt: skip
    assert first["exploration"] == {"policy": "greedy", "budget": 0}
    assert [item["item_id"] for item in first["items"]] == recs[0].item_ids
    assert len(first["items"]) == 2 and "a" not in recs[0].item_ids  # seen items never return
    assert first["items"][0].keys() == {"item_id", "score", "propensity", "explored", "source",
                                        "because"}  # fmt: skip
    assert {(i["propensity"], i["explored"], i["source"]) for i in first["items"]} == {
        (1.0, False, "model")}


def test_score_is_one_recommendation_per_state_excluding_recent_items():
    rec = recommender()
    states = [
        UserState(np.array([1.0, 0.5, 0.1, 0.0], np.float32), recent=("a",)),
        UserState(np.array([0.0, 0.0, 1.0, 0.2], np.float32)),
    ]
    out = plain_top_k(rec, states, 2)
    assert out[0].item_ids[0] == "b" and "a" not in out[0].item_ids
    assert out[1].item_ids[0] == "c" and len(out[1].item_ids) == 2


def test_dead_letter_headers_say_why_and_where_from():
    message = Message(b"u1", b"{", partition=2, offset=17, topic="events-x")
    headers = dead_letters.dead_letter_headers(message, InvalidEvent("bad_json", "unexpected end"))
    assert headers == [
        ("streamrec.reason", b"bad_json"),
        ("streamrec.detail", b"unexpected end"),
        ("streamrec.source", b"events-x/2/17"),
    ]


def test_step_config_takes_what_the_steps_read_from_settings():
    settings = Settings(top_k=7, emit="coalesce", half_life_s=2.0, history_len=4)
    config = settings.steps
    assert (config.top_k, config.emit) == (7, "coalesce")
    assert config.interest == settings.interest
    assert (config.interest.half_life_ms, config.interest.history_len) == (2000.0, 4)


def test_no_stored_state_is_a_fresh_one_and_a_stored_one_is_decoded():
    config = CONFIG.interest
    state, *_ = apply_user_events(
        UserState.empty(4), [(event("u", "a", 5), (0, 0))], recommender().item_vector, config
    )
    loaded = load_user_state(encode_state(state), "u", 4)
    np.testing.assert_array_equal(loaded.vector, state.vector)
    assert (loaded.count, loaded.position, loaded.recent) == (1, (0, 0), ("a",))
    fresh = load_user_state(None, "u", 4)
    assert fresh.count == 0 and fresh.vector.shape == (4,)


def test_a_state_coded_against_another_catalog_keeps_its_position_so_a_replay_is_skipped():
    old, new = ItemCodebook(["a", "b"]), ItemCodebook(["b", "c"])  # a model with another catalog
    state, *_ = apply_user_events(
        UserState.empty(4), [(event("u", "a", 5), (0, 7))], recommender().item_vector, CONFIG.interest
    )
    loaded = load_user_state(encode_state(state, old), "u", 4, new)
    assert (loaded.count, loaded.position, loaded.recent, loaded.recent_weights) == (1, (0, 7), (), ())
    np.testing.assert_array_equal(loaded.vector, state.vector)
    assert loaded.has_applied(0, 7)  # the replayed event is not applied again


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_failure_in_one_user_dead_letters_that_users_events_and_the_rest_proceed():
    # a weight that overflows float32: the user's vector would become inf
    huge = StepConfig(InterestConfig(event_weights={"click": 3e38}, history_len=5), 3,
                            "every")
    poisoned = [Message(b"u1", encode_event(event("u1", "a", 10)), 0, n) for n in (0, 1)]
    fine = Message(b"u2", encode_event(event("u2", "b", 10)._replace(type="view")), 0, 2)
    parsed = parse_batch([*poisoned, fine], set(ITEMS))
    table: dict = {}

    done = apply(parsed, table, huge)

    assert [(m.offset, exc.reason) for m, exc in done.dead] == [(0, "internal_error"),
                                                                 (1, "internal_error")]
    assert "NonFiniteState" in done.dead[0][1].detail
    assert b"u1" not in table  # nothing non-finite is ever stored
    assert list(table) == [b"u2"] and [s.event.user_id for s in done.snapshots] == ["u2"]


def test_a_delete_removes_the_users_table_entry_and_gets_no_record():
    table = {b"u2": b"kept"}
    apply(parse_batch(messages(event("u1", "a", 1)), set(ITEMS)), table)
    forget = Event("u1", "", "delete", 2)
    done = apply(parse_batch(messages(forget, first_offset=1), set(ITEMS)), table)
    assert b"u1" not in table and table[b"u2"] == b"kept"
    assert (done.deleted, done.snapshots, done.applied) == ([b"u1"], [], 1)


def test_a_delete_then_new_events_in_one_batch_stores_only_the_new_ones():
    table: dict = {}
    es = [event("u1", "a", 1), Event("u1", "", "delete", 2), event("u1", "b", 3)]
    done = apply(parse_batch(messages(*es), set(ITEMS)), table)
    stored = decode_state(table[b"u1"])
    assert (stored.count, stored.recent, done.deleted) == (1, ("b",), [])


def test_a_repeated_event_id_counts_apart_from_replays():
    es = [event("u1", "a", 1, "e1"), event("u1", "a", 1, "e1")]
    done = apply(parse_batch(messages(*es), set(ITEMS)), {})
    assert (done.applied, done.repeated_ids, done.duplicates, len(done.snapshots)) == (1, 1, 0, 1)


def test_a_dead_letter_too_large_is_truncated_with_its_size_and_hash():
    import hashlib

    value = b'{"item_id": "' + b"x" * 300_000 + b'"}'
    message = Message(b"u1", value, partition=1, offset=9)
    key, stored, headers = dead_letters.dead_letter_record(
        message, InvalidEvent("bad_json", "too long"), max_bytes=64 * 1024
    )
    found = dict(headers)
    assert key == b"u1" and len(stored) + sum(len(v) for _, v in headers) <= 64 * 1024
    assert value.startswith(stored)
    assert found["streamrec.truncated"] == b"1"
    assert found["streamrec.size"] == str(len(value)).encode()
    assert found["streamrec.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert found["streamrec.source"] == b"events/1/9"
    small = dead_letters.dead_letter_record(replace(message, value=b"{"), InvalidEvent("bad_json", "x"))
    assert small[1] == b"{" and "streamrec.truncated" not in dict(small[2])


def test_the_dedupe_window_and_ttl_come_from_settings():
    interest = Settings(dedupe_window=5, user_ttl="2h").interest
    assert (interest.dedupe_window, interest.ttl_ms) == (5, 7_200_000.0)
    assert Settings().interest.ttl_ms is None


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_failed_user_dead_letters_only_the_events_not_already_in_their_state():
    """Redelivered after a crash, events the state holds are not dead-lettered as well: every
    message is applied or dead-lettered, never both."""
    huge = StepConfig(InterestConfig(event_weights={"click": 1.0, "cart": 3e38}), 3, "every")
    table: dict = {}
    first = [event("u1", "a", 10), event("u1", "b", 11)]
    apply(parse_batch(messages(*first), set(ITEMS)), table, huge)  # then a "crash"
    poison = event("u1", "a", 12)._replace(type="cart")  # twice 3e38 overflows float32
    done = apply(parse_batch(messages(*first, poison, poison), set(ITEMS)), table, huge)
    assert [(m.offset, exc.reason) for m, exc in done.dead] == [(2, "internal_error"),
                                                                 (3, "internal_error")]
    assert (done.duplicates, done.applied) == (2, 0)
    assert decode_state(table[b"u1"]).position == (0, 1)
