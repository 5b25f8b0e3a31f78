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

    async def handle(batch):
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

    async def handle(batch):
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

    async def handle(batch):
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

    async def handle(batch):
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
