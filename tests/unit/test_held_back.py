"""Slices that hold a hot key back (issue 32 #6), read again from their commit: the note
committed with the offset (streams/kafka_edge/held_back.py) lets a worker that reads a partition
again skip every record that went ahead of the held-back key, so nothing is applied twice even
for a user deleted or evicted since (no stored position left to skip by)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streams.kafka_edge import batch_plane
from streams.kafka_edge.held_back import MOST_KEYS, HeldBack, HeldRecords, after_batch, key_hash
from tests.unit.test_batch_plane import EVENTS, new_app

TPART = TP(EVENTS, 0)


def keyed(offset: int, key: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic=EVENTS, partition=0, offset=offset, key=key, value=b"{}",
                           timestamp=1_000)  # fmt: skip


def plane(monkeypatch, fetches: list[list], most: int, notes: dict | None = None):
    """A transactional consumer with slices of ``most``, assigned its partition with the
    committed ``notes``; returns what each batch handled and the resume it committed."""
    app = new_app()
    handled: list = []

    async def handle(batch, resume_at):
        [(tp, records)] = batch.items()
        handled.append(([r.offset for r in records], resume_at[tp]))

    async def assigned(tps):
        return notes or {}

    batch_plane.install_batch_plane(app, {EVENTS: handle}, transactional=True,
                                    slices={EVENTS: most}, on_assigned=assigned)  # fmt: skip
    consumer = app.consumer
    consumer.flow_active = True
    base = type(consumer).__mro__[1]
    queue = iter(fetches)
    timeouts: list = []

    async def fetch(self, timeout):
        timeouts.append(timeout)
        records = next(queue, [])
        return ({TPART: records} if records else {}), None

    async def nothing(self, *args, **kwargs):
        return None

    monkeypatch.setattr(base, "_wait_next_records", fetch)
    monkeypatch.setattr(base, "on_partitions_assigned", nothing)
    asyncio.run(consumer.on_partitions_assigned({TPART}))
    return consumer, handled, timeouts


def run(consumer, times: int) -> None:
    for _ in range(times):
        asyncio.run(consumer._wait_next_records(1.0))


LOG = [keyed(0, b"hot"), keyed(1, b"a"), keyed(2, b"hot"), keyed(3, b"b"), keyed(4, b"hot"),
       keyed(5, b"c"), keyed(6, b"hot"), keyed(7, b"gone"), keyed(8, b"hot"), keyed(9, b"gone"),
       keyed(10, b"f"), keyed(11, b"g")]  # fmt: skip


def test_a_worker_reading_again_from_a_held_back_commit_applies_nothing_twice(monkeypatch):
    """The first worker holds ``hot`` back at 4; every other key goes ahead and ``gone`` is
    deleted (its state and position with it). The worker reading again from 4 with the commit's
    note applies only hot's held records, then the new ones."""
    first, handled, _ = plane(monkeypatch, [LOG[:10]], most=2)
    run(first, 1)
    [(offsets, resume)] = handled
    assert offsets == [0, 1, 2, 3, 5, 7, 9] and resume.offset == 4 and resume.note
    again, handled, _ = plane(monkeypatch, [LOG[4:]], most=10, notes={TPART: resume.note})
    run(again, 1)
    assert handled == [([4, 6, 8, 10, 11], (12, None))]


def test_a_partial_read_again_carries_the_note_on_for_what_it_did_not_reach(monkeypatch):
    note = HeldBack(10, {key_hash(b"hot"): 2}).encode()
    again, handled, _ = plane(monkeypatch, [LOG[2:6], LOG[6:]], most=10, notes={TPART: note})
    run(again, 2)
    (first_offsets, first_resume), (second_offsets, second_resume) = handled
    assert first_offsets == [2, 4]
    assert first_resume.offset == 6  # hot's records from 6 on are still to apply
    assert HeldBack.decode(first_resume.note) == HeldBack(10, {key_hash(b"hot"): 6})
    assert (second_offsets, second_resume) == ([6, 8, 10, 11], (12, None))


def test_a_fetch_of_records_applied_before_only_commits_nothing(monkeypatch):
    note = HeldBack(10, {key_hash(b"hot"): 8}).encode()
    again, handled, _ = plane(monkeypatch, [LOG[2:8]], most=10, notes={TPART: note})
    run(again, 1)
    assert handled == [] and again._notes()[TPART].since == {key_hash(b"hot"): 8}


def test_held_records_go_on_without_waiting_for_a_fetch(monkeypatch):
    """An idle partition worked its held records off at one slice per fetch timeout."""
    consumer, handled, timeouts = plane(monkeypatch, [[keyed(o, b"hot") for o in range(4)]],
                                        most=2)  # fmt: skip
    run(consumer, 3)
    assert [offsets for offsets, _ in handled] == [[0, 1], [2, 3]]
    assert timeouts == [1.0, 0.0, 1.0]


def test_a_slice_holds_back_at_most_so_many_keys_so_its_note_fits_the_broker():
    records = [keyed(o, key) for key in (b"k0", b"k1", b"k2") for o in range(3)]
    held = HeldRecords()
    now = held.take(records, 1, keys_most=2)
    later = held.records()
    assert {r.key for r in later} == {b"k0", b"k1"} and [r.key for r in now].count(b"k2") == 3
    many = HeldBack(10**12, {key_hash(str(n).encode()): 10**11 + n for n in range(MOST_KEYS)})
    assert len(many.encode()) < 4096 - 100  # the broker's offset.metadata.max.bytes default
    assert HeldBack.decode(many.encode()) == many


def test_a_note_not_ours_is_ignored():
    assert HeldBack.decode("") is None and HeldBack.decode("some tool's metadata") is None
    assert HeldBack.decode("held1:5:!!!") is None and HeldBack.decode("held1:x:") is None


def test_a_note_carries_on_a_key_held_again_from_its_first_held_record():
    before = HeldBack(10, {key_hash(b"hot"): 2, key_hash(b"warm"): 3})
    after = after_batch(before, 6, [keyed(4, b"hot")])
    assert after == HeldBack(10, {key_hash(b"hot"): 4, key_hash(b"warm"): 6})
    assert after_batch(before, 10, []) is None and after_batch(None, 6, []) is None


def test_a_first_read_that_starts_past_the_commit_says_what_it_cannot_apply(monkeypatch, caplog):
    """The held-back records past the commit are gone (the topic's retention deleted them, or a
    fetch did not start at the commit): the loss is logged, not silent."""
    note = HeldBack(10, {key_hash(b"hot"): 2}).encode()
    again, handled, _ = plane(monkeypatch, [LOG[6:]], most=10, notes={TPART: note})
    with caplog.at_level("WARNING", logger="streams.kafka_edge.batch_plane"):
        run(again, 1)
    assert "offset 6, past the committed 2" in caplog.text


def test_held_records_take_batch_after_batch_what_one_slice_over_everything_held_took():
    """:class:`HeldRecords` keeps each key's backlog as a queue, so a batch no longer walks the
    whole backlog; batch after batch it takes what slicing the held list and the new records
    together took (the reference below; each key's in order, the keys side by side), and keeps
    the rest in order. Where the keys it may hold bind, it holds no more than that."""
    import random

    def reference(records, most, keys_most):
        taken, held, now, later = {}, set(), [], []
        for record in records:
            count = taken.get(record.key, 0)
            if record.key in held or (count >= most and len(held) < keys_most):
                held.add(record.key)
                later.append(record)
            else:
                taken[record.key] = count + 1
                now.append(record)
        return now, later

    rng = random.Random(7)
    held, backlog, offset = HeldRecords(), [], 0
    for _ in range(60):
        fresh = []
        for _ in range(rng.randrange(0, 30)):
            fresh.append(keyed(offset, rng.choice([b"hot", b"hot", b"hot", b"a", b"b", b"c"])))
            offset += 1
        most = rng.choice([1, 2, 5])
        expected, backlog = reference(backlog + fresh, most, 100)
        got = held.take(fresh, most, 100)
        for key in (b"hot", b"a", b"b", b"c"):
            assert [r.offset for r in got if r.key == key] == [
                r.offset for r in expected if r.key == key]
        assert [r.offset for r in held.records()] == sorted(r.offset for r in backlog)
        assert len(held) == len(backlog)
        assert {r.key: r.offset for r in held.heads()} == {
            key: min(r.offset for r in backlog if r.key == key) for key in {r.key for r in backlog}}

    few, applied = HeldRecords(), []
    for start in range(0, 72, 12):  # then nothing new: the backlog drains
        fresh = [keyed(o, (b"x", b"y", b"z")[o % 3]) for o in range(start, min(start + 12, 60))]
        applied += few.take(fresh, 1, keys_most=2)
        assert len(few.keys) <= 2
    while few:
        applied += few.take([], 1, keys_most=2)
    assert sorted(r.offset for r in applied) == list(range(60))  # each once
    for key in (b"x", b"y", b"z"):
        mine = [r.offset for r in applied if r.key == key]
        assert mine == sorted(mine)  # each key's in order


def test_keys_that_share_a_hash_are_noted_from_the_earlier_of_their_held_records():
    # None and b"" hash alike; held in the order None (from 12), b"" (from 10)
    note = after_batch(None, 20, [keyed(12, None), keyed(10, b"")])
    assert note.since == {key_hash(b""): 10}
