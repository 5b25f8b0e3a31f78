"""The batch plane's hold on Faust (streams/kafka_edge/compat.py, fix 5), without a broker: each
private name it uses, the offsets it acks and what it routes where (the batch's transaction is
tests/unit/test_transaction.py's)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from types import SimpleNamespace

import faust
import faust.stores.rocksdb
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from streams.kafka_edge import batch_plane, compat
from streams.kafka_edge.held_back import HeldRecords

EVENTS = "events"


def record(offset: int, partition: int = 0, topic: str = EVENTS) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=b"u",
                           value=b"{}", timestamp=1_000)


def new_app(tmp_path: Path | None = None) -> faust.App:
    store = "rocksdb://" if tmp_path else "memory://"
    return faust.App("plane-test", broker="kafka://127.0.0.1:1", store=store,
                     datadir=str(tmp_path or "."))  # fmt: skip


def test_faust_still_has_every_private_name_the_plane_uses():
    assert list(inspect.signature(Consumer._wait_next_records).parameters) == ["self", "timeout"]
    assert "revoked" in inspect.signature(Consumer.on_partitions_revoked).parameters
    assert "topics" in inspect.signature(Consumer.force_commit).parameters
    assert list(inspect.signature(Consumer._add_gap).parameters) == [
        "self", "tp", "offset_from", "offset_to"]
    consumer = new_app().consumer
    for name in ("_read_offset", "_acked", "_acked_index", "_committed_offset", "_n_acked",
                 "_commit_every"):
        assert hasattr(consumer, name), name
    assert faust.stores.rocksdb.Store.offset_key == b"__faust\x00offset__"
    assert faust.stores.rocksdb.Store.offset_key.startswith(compat.FAUST_ROWS)  # the TTL skips
    assert callable(faust.stores.rocksdb.Store._db_for_partition)


def test_a_fetch_is_acked_in_fausts_books_with_its_gaps_so_faust_commits_past_it():
    consumer = new_app().consumer
    tp = TP(EVENTS, 0)
    consumer._read_offset[tp] = 5  # seeked to the last commit
    asyncio.run(batch_plane._ack_records(consumer, tp, [record(o) for o in (5, 6, 7, 10, 11)]))
    assert consumer._read_offset[tp] == 11 and consumer._n_acked == 5
    assert consumer._new_offset(tp) == 12  # 8 and 9 (compacted away) are a gap, not a stop


def test_offsets_below_the_last_commit_are_not_acked_again():
    consumer = new_app().consumer
    tp = TP(EVENTS, 0)
    consumer._committed_offset[tp] = 7
    asyncio.run(batch_plane._ack_records(consumer, tp, [record(o) for o in (6, 7, 8)]))
    assert sorted(consumer._acked[tp]) == [7, 8]


def run_fetch(monkeypatch, fetched: dict, flow_active: bool = True) -> tuple[list, object]:
    app = new_app()
    handled: list = []

    async def handle(batch, resume_at=None):
        handled.append({tp: [r.offset for r in rs] for tp, rs in batch.items()})

    batch_plane.install_batch_plane(app, {EVENTS: handle})
    consumer = app.consumer
    consumer.flow_active = flow_active
    base = type(consumer).__mro__[1]

    async def fetch(self, timeout):
        return dict(fetched), None

    monkeypatch.setattr(base, "_wait_next_records", fetch)
    rest, _ = asyncio.run(consumer._wait_next_records(1.0))
    return handled, (consumer, rest)


def test_the_events_topic_goes_whole_to_the_handler_and_the_rest_to_faust(monkeypatch):
    events, changelog = TP(EVENTS, 0), TP("users-changelog", 0)
    fetched = {events: [record(0), record(1)], changelog: [record(0, topic="users-changelog")]}
    handled, (consumer, rest) = run_fetch(monkeypatch, fetched)
    assert handled == [{events: [0, 1]}]
    assert list(rest) == [changelog]  # recovery and standbys keep Faust's own path
    assert consumer._new_offset(events) == 2


def test_nothing_is_handled_or_acked_while_a_rebalance_stops_the_flow(monkeypatch):
    events = TP(EVENTS, 0)
    handled, (consumer, rest) = run_fetch(monkeypatch, {events: [record(0)]}, flow_active=False)
    assert handled == [] and consumer._new_offset(events) is None and rest == {}


def test_a_handler_that_raises_acks_nothing(monkeypatch):
    app = new_app()

    async def handle(batch, resume_at=None):
        raise ConnectionError("the output cannot be written")

    batch_plane.install_batch_plane(app, {EVENTS: handle})
    consumer = app.consumer

    async def fetch(self, timeout):
        return {TP(EVENTS, 0): [record(0)]}, None

    monkeypatch.setattr(type(consumer).__mro__[1], "_wait_next_records", fetch)
    with pytest.raises(ConnectionError):
        asyncio.run(consumer._wait_next_records(1.0))
    assert consumer._new_offset(TP(EVENTS, 0)) is None


def test_a_fetch_read_again_after_a_seek_to_the_commit_is_not_handled_again(monkeypatch):
    """A fetch from before a rebalance is handled after it (its transaction commits offset 10);
    the seek to the committed offset, made before that commit, reads 7..9 again: none of them
    is handled twice (Faust's own read offset would let 9 through)."""
    app = new_app()
    handled: list = []

    async def handle(batch, resume_at=None):
        handled.append([r.offset for rs in batch.values() for r in rs])

    batch_plane.install_batch_plane(app, {EVENTS: handle})
    consumer, tp = app.consumer, TP(EVENTS, 0)
    consumer.flow_active = True
    fetches = iter([[record(o) for o in (7, 8, 9)], [record(o) for o in (7, 8, 9, 10, 11)]])

    async def fetch(self, timeout):
        return {tp: next(fetches)}, None

    monkeypatch.setattr(type(consumer).__mro__[1], "_wait_next_records", fetch)
    consumer._read_offset[tp] = 7  # the seek after the rebalance
    asyncio.run(consumer._wait_next_records(1.0))
    consumer._read_offset[tp] = 7  # sought again to a commit read before the batch committed
    asyncio.run(consumer._wait_next_records(1.0))
    assert handled == [[7, 8, 9], [10, 11]]


def test_transactional_batches_are_one_partition_each_and_faust_commits_none_of_their_offsets(
    monkeypatch,
):
    app = new_app()
    handled: list = []

    async def handle(batch, resume_at=None):
        handled.append(sorted(tp.partition for tp in batch))

    batch_plane.install_batch_plane(app, {EVENTS: handle}, transactional=True)
    consumer = app.consumer
    consumer.flow_active = True

    async def fetch(self, timeout):
        return {TP(EVENTS, 0): [record(0)], TP(EVENTS, 1): [record(0, partition=1)]}, None

    committed: list = []

    async def commit(self, offsets):
        committed.append(dict(offsets))
        return True

    base = type(consumer).__mro__[1]
    monkeypatch.setattr(base, "_wait_next_records", fetch)
    monkeypatch.setattr(base, "_commit", commit)
    asyncio.run(consumer._wait_next_records(1.0))
    assert handled == [[0], [1]]
    other = TP("elsewhere", 0)
    assert asyncio.run(consumer._commit({TP(EVENTS, 0): 1, other: 5})) is True
    assert committed == [{other: 5}]


def keyed(offset: int, key: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic=EVENTS, partition=0, offset=offset, key=key, value=b"{}",
                           timestamp=1_000)  # fmt: skip


def test_a_slice_takes_at_most_so_many_of_a_key_and_holds_back_the_rest_in_order():
    records = [keyed(o, b"hot") for o in range(5)] + [keyed(5, b"a"), keyed(6, b"hot")]
    held = HeldRecords()
    now = held.take(records, 2)
    later = held.records()
    assert [r.offset for r in now] == [0, 1, 5] and [r.offset for r in later] == [2, 3, 4, 6]


def test_a_hot_keys_backlog_goes_in_slices_behind_the_others_and_commits_stop_at_it(monkeypatch):
    """Issue 32 #6: one user's burst stalled every user behind it. With slices, the other keys'
    records go in the first batch; each transaction commits its partition's offset only up to
    the first record held back, and what is held back goes on even when nothing new comes."""
    app = new_app()
    handled: list = []

    async def handle(batch, resume_at):
        [(tp, records)] = batch.items()
        handled.append(([(r.key, r.offset) for r in records], resume_at[tp].offset))

    batch_plane.install_batch_plane(app, {EVENTS: handle}, transactional=True,
                                    slices={EVENTS: 2})  # fmt: skip
    consumer, tp = app.consumer, TP(EVENTS, 0)
    consumer.flow_active = True
    fetches = iter([[keyed(o, b"hot") for o in range(4)] + [keyed(4, b"a")], [], [], []])

    async def fetch(self, timeout):
        records = next(fetches)
        return ({tp: records} if records else {}), None

    monkeypatch.setattr(type(consumer).__mro__[1], "_wait_next_records", fetch)
    for _ in range(3):
        asyncio.run(consumer._wait_next_records(1.0))
    assert handled == [([(b"hot", 0), (b"hot", 1), (b"a", 4)], 2),
                       ([(b"hot", 2), (b"hot", 3)], 5)]  # fmt: skip
    assert consumer._held() == {}


def test_a_revoked_partition_drops_what_it_held_back(monkeypatch):
    app = new_app()
    batch_plane.install_batch_plane(app, {EVENTS: lambda batch, resume_at: asyncio.sleep(0)},
                                    transactional=True, slices={EVENTS: 1})  # fmt: skip
    consumer, tp = app.consumer, TP(EVENTS, 0)
    consumer._held()[tp] = HeldRecords()
    consumer._held()[tp].take([keyed(3, b"hot"), keyed(4, b"hot")], 1)
    base = type(consumer).__mro__[1]

    async def nothing(self, *args, **kwargs):
        return None

    monkeypatch.setattr(base, "on_partitions_revoked", nothing)
    monkeypatch.setattr(consumer, "force_commit", lambda tps: asyncio.sleep(0))
    asyncio.run(consumer.on_partitions_revoked({tp}))
    assert consumer._held() == {}  # the next owner reads them from the committed offset


def test_slices_need_transactions():
    with pytest.raises(ValueError, match="transactions"):
        batch_plane.install_batch_plane(new_app(), {EVENTS: None}, slices={EVENTS: 5})
