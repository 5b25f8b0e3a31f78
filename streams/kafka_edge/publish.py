"""Send a micro-batch of records as whole Kafka record batches, not one ``send`` per record.

Faust's ``producer.send`` is aiokafka's per-message ``send`` behind a Faust wrapper: a coroutine,
a partitioner call, a future and an accumulator lookup per record. Building one aiokafka
``BatchBuilder`` per partition and submitting it with ``send_batch`` does that once per batch.
The caller awaits the delivery futures before its offsets are acked, so a record not delivered
is produced again after a crash (at-least-once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Mapping, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.partitioner import DefaultPartitioner

from core.seal import Seal

_partitioner = DefaultPartitioner()  # murmur2, as the Java client and aiokafka's send pick
_NO_HEADERS: list = []  # shared, never changed (aiokafka's own default is one list too)


@dataclass(frozen=True)
class Sent:
    """One record batch on its way: its partition, how many records, and the delivery future
    (its RecordMetadata's ``offset`` is the batch's first)."""

    partition: int
    count: int
    delivery: asyncio.Future

    async def last_offset(self) -> int:
        return (await self.delivery).offset + self.count - 1


async def send_to_partitions(
    producer: AIOKafkaProducer,
    topic: str,
    by_partition: Mapping[int, Sequence[tuple[bytes, bytes | None]]],
    seal: Seal | None = None,
) -> list[Sent]:
    """Queue each partition's ``(key, value)`` records (a None value is a tombstone) in as few
    record batches as fit, each with its MAC when there is a ``seal``."""
    sent = []
    for partition, records in by_partition.items():
        batch, count = producer.create_batch(), 0
        for key, value in records:
            headers = seal.headers(topic, key, value) if seal else _NO_HEADERS
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                sent.append(Sent(partition, count, await _send_now(producer, batch, topic,
                                                                   partition)))  # fmt: skip
                batch, count = producer.create_batch(), 0  # the full one went: a new one
                batch.append(key=key, value=value, timestamp=None, headers=headers)
            count += 1
        if count:
            sent.append(Sent(partition, count, await _send_now(producer, batch, topic, partition)))
    return sent


async def _send_now(
    producer: AIOKafkaProducer, batch: BatchBuilder, topic: str, partition: int
) -> asyncio.Future:
    """Submit a whole batch to go out at once: the sender lingers ``linger_ms`` on a batch
    that is still open (waiting for more ``send`` calls, which ours never gets), and none on a
    closed one (aiokafka 0.14's ``MessageBatch.remaining_linger``). That was the whole
    linger (``producer_linger_ms`` in streams/worker/app.py) of each record's latency and of each
    micro-batch's wait for its changelog."""
    batch.close()
    return await producer.send_batch(batch, topic, partition=partition)


async def send_records(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes, bytes]],
    seal: Seal | None = None,
) -> list[asyncio.Future]:
    """Queue ``(key, value)`` records on ``topic``, keyed to partitions as ``send`` would (with
    their MACs when there is a ``seal``); return the batches' delivery futures."""
    await producer.client._wait_on_metadata(topic)
    partitions = sorted(producer.client.cluster.partitions_for_topic(topic))
    available = sorted(producer.client.cluster.available_partitions_for_topic(topic))
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in records:
        by_partition.setdefault(_partitioner(key, partitions, available), []).append((key, value))
    return [sent.delivery for sent in await send_to_partitions(producer, topic, by_partition, seal)]
