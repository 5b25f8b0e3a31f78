"""streams.kafka_edge.publish: records grouped into per-partition batches as aiokafka's send would key them."""

import asyncio

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from streams.kafka_edge.publish import send_records


class FakeCluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}

    available_partitions_for_topic = partitions_for_topic


class FakeClient:
    cluster = FakeCluster()

    async def _wait_on_metadata(self, topic: str) -> None:
        return None


class FakeProducer:
    """Real aiokafka batch builders (small, so they fill up); submitted batches are kept."""

    client = FakeClient()

    def __init__(self) -> None:
        self.sent: list[tuple[int, BatchBuilder]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(300, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int):
        self.sent.append((partition, batch))
        return asyncio.get_running_loop().create_future()


def test_every_record_lands_once_in_its_key_partition_in_order():
    records = [(f"user-{n % 7}".encode(), f"record-{n}".encode()) for n in range(60)]
    producer = FakeProducer()
    futures = asyncio.run(send_records(producer, "recs", records))

    assert len(futures) == len(producer.sent) > 3  # 300-byte batches: several per partition
    got: dict[int, list[tuple[bytes, bytes]]] = {}
    for partition, batch in producer.sent:
        assert batch.record_count() > 0
        for record in _records(batch):
            got.setdefault(partition, []).append(record)
    partitioner = DefaultPartitioner()
    want: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in records:
        want.setdefault(partitioner(key, [0, 1, 2], [0, 1, 2]), []).append((key, value))
    assert got == want


def _records(batch: BatchBuilder) -> list[tuple[bytes, bytes]]:
    return [(r.key, r.value) for r in DefaultRecordBatch(bytes(batch._build()))]
