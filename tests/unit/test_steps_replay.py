"""A batch read again after a crash: state is not applied twice and records go out again. The
stored state is not written again: the worker writes RocksDB only once the changelog has the
batch, so the local state is never ahead of the changelog. A replayed delete's tombstone is sent
again (the entry is gone either way)."""

from __future__ import annotations

from dataclasses import replace

from core.codec import decode_state
from core.events import Event
from streams.steps.users import Applied, apply_users
from streams.steps.parse import parse_batch
from tests.unit.step_helpers import CONFIG, ITEMS, Table, apply, event, messages, recommender


def test_a_replayed_position_is_not_applied_again_but_still_gets_a_snapshot():
    es = [event("u1", "a", 0), event("u1", "b", 10), event("u1", "c", 20)]
    table: dict = {}
    apply(parse_batch(messages(*es[:2]), set(ITEMS)), table)  # applied, then a "crash"
    before = decode_state(table[b"u1"])

    done = apply(parse_batch(messages(*es), set(ITEMS)), table)  # redelivered from 0
    after = decode_state(table[b"u1"])
    assert (done.applied, done.duplicates) == (1, 2)
    assert [s.position for s in done.snapshots] == [(0, 0), (0, 1), (0, 2)]
    assert done.snapshots[0].state.count == done.snapshots[1].state.count == before.count == 2
    assert after.count == 3 and after.position == (0, 2)


def test_a_fully_replayed_user_is_not_written_again():
    log: list = []
    es = [event("u1", "a", 0), event("u1", "b", 10)]
    table = Table(log)
    apply(parse_batch(messages(*es), set(ITEMS)), table)
    stored = table[b"u1"]
    log.clear()
    done = apply(parse_batch(messages(*es), set(ITEMS)), table)
    assert log == [("get", b"u1")]
    assert table[b"u1"] == stored
    assert (done.applied, done.duplicates, len(done.snapshots)) == (0, 2, 2)


def test_a_user_with_only_new_events_or_only_repeated_ids_is_written_as_before():
    log: list = []
    table = Table(log)
    apply(parse_batch(messages(event("u1", "a", 0, "e1")), set(ITEMS)), table)
    log.clear()
    retry = messages(event("u1", "a", 0, "e1"), first_offset=1)  # a producer retry, new offset
    done = apply(parse_batch(retry, set(ITEMS)), table)
    assert log == [("get", b"u1")] and done.repeated_ids == 1  # nothing the changelog lacks


def test_a_replayed_delete_sends_its_tombstone_again_though_the_entry_is_gone():
    deleted: list = []

    class Tombstones(dict):
        def __delitem__(self, key: bytes) -> None:  # Faust's table: a tombstone, no KeyError
            deleted.append(key)
            self.pop(key, None)

    def run(batch: list) -> Applied:
        rec = recommender()
        parsed = parse_batch(batch, set(ITEMS))
        return apply_users(parsed, table, rec.item_vector, rec.dim, CONFIG)

    table = Tombstones()
    run(messages(event("u1", "a", 1)))
    forget = messages(Event("u1", "", "delete", 2), first_offset=1)
    first = run(forget)
    again = run(forget)  # the local delete survived the crash, its tombstone may not have
    assert deleted == [b"u1", b"u1"] and b"u1" not in table
    assert (first.deleted, again.deleted) == ([b"u1"], [])  # the user was forgotten once


def test_a_user_created_and_deleted_in_one_batch_counts_as_deleted():
    """Issue 32 #7: such a delete was not counted in ``users_deleted`` (nothing was stored
    before the batch), though the user's events were applied and then forgotten."""
    class Tombstones(dict):
        def __delitem__(self, key: bytes) -> None:  # Faust's table: a tombstone, no KeyError
            self.pop(key, None)

    rec = recommender()
    table = Tombstones()
    batch = messages(event("u1", "a", 1), Event("u1", "", "delete", 2),
                     Event("u2", "", "delete", 3))  # fmt: skip
    done = apply_users(parse_batch(batch, set(ITEMS)), table, rec.item_vector, rec.dim, CONFIG)
    assert done.deleted == [b"u1"] and table == {}  # u2 was never there: nothing forgotten


def test_a_replayed_event_gets_a_record_again_only_when_records_are_at_least_once():
    """At-least-once: the first record of an event read again after a crash may have died with
    the worker, so it gets another. Exactly-once: the state holds the event only if the
    transaction that applied it committed, its record with it, so a replay sends none."""
    table: dict = {}
    first = [event("u1", "a", 10), event("u1", "b", 11)]
    apply(parse_batch(messages(*first), set(ITEMS)), table)
    again = messages(*first, event("u1", "c", 12))  # read again from the start, and one more
    at_least_once = apply(parse_batch(again, set(ITEMS)), dict(table))
    exactly_once = apply(parse_batch(again, set(ITEMS)), dict(table),
                         replace(CONFIG, replay_records=False))  # fmt: skip
    assert [s.position for s in at_least_once.snapshots] == [(0, 0), (0, 1), (0, 2)]
    assert [s.position for s in exactly_once.snapshots] == [(0, 2)]
    assert (exactly_once.duplicates, exactly_once.applied) == (2, 1)
    # nor a by-item record: it went with the state (the item side may not skip it by position)
    assert [at for _, at in exactly_once.item_events] == [(0, 2)]
    assert len(at_least_once.item_events) == 3
