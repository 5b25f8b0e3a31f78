"""A batch's transaction (streams/worker/transaction.py) without a broker: one multi-get, then
every send, every delivery awaited, and only then RocksDB, with each partition's changelog offset;
a failed delivery writes nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import rocksdict

from core.events import InvalidEvent
from streams.steps.parse import Fetched
from streams.kafka_edge.transactions import AtLeastOnce
from streams.worker.transaction import BatchTransaction, DeadLetterTopic, TableStore

OFFSET_KEY = b"__faust\x00offset__"
DLQ = DeadLetterTopic("events.dlq", 1024)


class Appending(list):
    """aiokafka's BatchBuilder as the transaction uses it."""

    closed = False

    def append(self, key=None, value=None, timestamp=None, headers=()):
        super().append((key, value))
        return True

    def close(self) -> None:
        self.closed = True


class HeldProducer:
    """An aiokafka producer whose deliveries complete only when the test says so; ``sent`` is
    what went out, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple] = []
        self.pending: list[tuple[asyncio.Future, int]] = []
        self.next_offset: dict[tuple[str, int], int] = {}
        cluster = SimpleNamespace(partitions_for_topic=lambda t: {0, 1},
                                  available_partitions_for_topic=lambda t: {0, 1})
        self.client = SimpleNamespace(cluster=cluster, _wait_on_metadata=self._metadata)

    async def _metadata(self, topic: str) -> None:
        return None

    def create_batch(self) -> Appending:
        return Appending()

    def _queued(self, topic: str, partition: int, count: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        base = self.next_offset.get((topic, partition), 0)
        self.next_offset[(topic, partition)] = base + count
        self.pending.append((future, base))
        return future

    async def send_batch(self, batch: Appending, topic: str, partition: int) -> asyncio.Future:
        assert batch.closed  # an open batch lingers linger_ms in aiokafka before it goes
        self.sent.append((topic, partition, list(batch)))
        return self._queued(topic, partition, len(batch))

    async def send(self, topic, value, key=None, headers=None) -> asyncio.Future:
        self.sent.append((topic, key, value, dict(headers)["streamrec.reason"]))
        return self._queued(topic, 0, 1)

    def deliver(self, failure: Exception | None = None) -> None:
        for future, base in self.pending:
            if failure is None:
                future.set_result(SimpleNamespace(offset=base))
            else:
                future.set_exception(failure)


async def queued(producer: HeldProducer, count: int, deadline_s: float = 5.0) -> None:
    """Wait until ``count`` sends are queued (the commit runs as a task beside the test)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while len(producer.sent) < count:
        assert loop.time() < end, f"only {len(producer.sent)} of {count} sends queued"
        await asyncio.sleep(0)


def databases(tmp_path) -> dict[int, rocksdict.Rdict]:
    return {p: rocksdict.Rdict(str(tmp_path / str(p)), options=rocksdict.Options(raw_mode=True))
            for p in (0, 1)}  # fmt: skip


def a_batch(dbs, producer) -> BatchTransaction:
    dbs[0].put(b"old", b"state-0")
    tx = BatchTransaction(TableStore(dbs.__getitem__, "users-changelog", OFFSET_KEY),
                          {0: [b"old", b"new"]}, AtLeastOnce(lambda: producer), DLQ, {})  # fmt: skip
    assert (tx.get(b"old"), tx.get(b"new")) == (b"state-0", None)  # the one multi-get
    tx.bind(0)
    tx[b"new"] = b"state-1"
    del tx[b"old"]
    tx.bind(1)
    tx[b"other"] = b"state-2"
    assert tx.delete_in(0, [b"new", b"stale"]) == 1  # the sweep leaves what this batch wrote
    tx.send("recs", [(b"u", b"record")])
    bad = Fetched(b"u", b"not json", 1, 7, 1.0, "events")
    tx.dead_letter(bad, InvalidEvent("bad_json", "not JSON"))
    return tx


def test_rocksdb_is_written_only_after_every_send_is_delivered_with_the_changelog_offset(
    tmp_path,
):
    dbs, producer = databases(tmp_path), HeldProducer()

    async def run() -> None:
        commit = asyncio.create_task(a_batch(dbs, producer).commit())
        await queued(producer, 4)
        assert not commit.done() and dbs[0].get(b"new") is None  # nothing before delivery
        producer.deliver()
        await commit

    asyncio.run(run())
    assert producer.sent[:2] == [
        ("users-changelog", 0, [(b"new", b"state-1"), (b"old", None), (b"stale", None)]),
        ("users-changelog", 1, [(b"other", b"state-2")]),
    ]
    assert producer.sent[2][0] == "recs" and producer.sent[3] == (
        "events.dlq", b"u", b"not json", b"bad_json")
    assert (dbs[0].get(b"new"), dbs[0].get(b"old"), dbs[1].get(b"other")) == (
        b"state-1", None, b"state-2")
    assert dbs[0].get(OFFSET_KEY) == b"2" and dbs[1].get(OFFSET_KEY) == b"0"


def test_a_failed_delivery_raises_and_writes_nothing(tmp_path):
    dbs, producer = databases(tmp_path), HeldProducer()

    async def run() -> None:
        commit = asyncio.create_task(a_batch(dbs, producer).commit())
        await queued(producer, 4)
        producer.deliver(ConnectionError("the broker refused the write"))
        await commit

    with pytest.raises(ConnectionError):
        asyncio.run(run())
    assert (dbs[0].get(b"old"), dbs[0].get(b"new"), dbs[1].get(b"other")) == (
        b"state-0", None, None)
    assert dbs[0].get(OFFSET_KEY) is None


def test_the_write_goes_to_the_database_open_now_not_the_one_a_compaction_closed():
    """The compaction timer (streams/worker/retention.py) may close and reopen a partition's
    database while a batch awaits its deliveries."""

    class Db(dict):
        closed = False

        def get(self, keys):
            return [dict.get(self, k) for k in keys] if isinstance(keys, list) else \
                dict.get(self, keys)  # fmt: skip

        def write(self, batch):
            assert not self.closed, "written to a closed database"
            self.written = batch

    old, reopened = Db(), Db()
    current = {0: old}
    producer = HeldProducer()
    tx = BatchTransaction(TableStore(lambda p: current[p], "users-changelog", OFFSET_KEY),
                          {0: [b"u"]}, AtLeastOnce(lambda: producer), DLQ, {})  # fmt: skip
    tx.bind(0)
    tx[b"u"] = b"state"

    async def run() -> None:
        commit = asyncio.create_task(tx.commit())
        await queued(producer, 1)
        old.closed, current[0] = True, reopened  # the timer ran while we awaited
        producer.deliver()
        await commit

    asyncio.run(run())
    assert hasattr(reopened, "written")


def test_a_batch_with_records_held_back_commits_its_offset_up_to_the_first_of_them():
    from aiokafka import TopicPartition

    from streams.kafka_edge.held_back import HeldBack, Resume
    from streams.kafka_edge.transactions import Consumed
    from streams.worker.transaction import consumed_offsets
    from tests.unit.step_helpers import Message

    batch = [Message(b"u", b"{}", 0, offset) for offset in (2, 3, 7)]
    held = HeldBack(8, {b"12345678": 5})
    assert consumed_offsets(batch) == {TopicPartition("events", 0): Consumed(2, 8)}
    assert consumed_offsets(batch, {TopicPartition("events", 0): Resume(5, held)}) == {
        TopicPartition("events", 0): Consumed(2, 5, held.encode())}  # fmt: skip
