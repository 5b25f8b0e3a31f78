"""The user table, one batch at a time: one multi-get per partition, one changelog record batch
per partition, then one RocksDB write batch per partition.

Faust's table does a RocksDB get, a put and a changelog ``send`` per write, and it puts the value
into RocksDB *before* the changelog has it: a kill in between leaves the local state ahead of
the changelog (tests/reliability/test_changelog_catch_up.py). Here the order is the other way:
the batch's values go to the changelog first; only once the broker has them do they go into
RocksDB, in one write batch with the partition's persisted changelog offset, which is what Faust's
recovery reads from. So the local state is never ahead of the changelog, a restore from the
changelog gives exactly this state, and a crash anywhere leaves at worst a local state behind
the changelog, which Faust's recovery brings up to date before the partition is served.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterable, Mapping

import rocksdict
from aiokafka import AIOKafkaProducer

from streams.kafka_edge.publish import Sent, send_to_partitions


class BatchedUsers:
    """The :class:`~streams.steps.users.StateTable` of one batch. ``bind(partition)`` before a user's
    access says which RocksDB partition (= events and changelog partition) holds them."""

    def __init__(
        self, db_for: Callable[[int], Any], keys: Mapping[int, Iterable[bytes]]
    ) -> None:
        """``db_for(partition)``: the table's rocksdict.Rdict (raw mode) of that partition;
        ``keys``: the batch's users by partition, read in one multi-get each."""
        self.db_for = db_for
        self.stored: dict[bytes, bytes | None] = {}
        for partition, wanted in keys.items():
            wanted = list(wanted)
            self.stored.update(zip(wanted, db_for(partition).get(wanted)))
        self.partition = -1
        self.writes: dict[int, dict[bytes, bytes | None]] = {}

    def bind(self, partition: int) -> None:
        self.partition = partition

    def get(self, key: bytes) -> bytes | None:
        if key in self.stored:
            return self.stored[key]
        return self.db_for(self.partition).get(key)  # a key the multi-get was not given

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes.setdefault(self.partition, {})[key] = value

    def __delitem__(self, key: bytes) -> None:
        """A tombstone, also for a key that is not there (a replayed delete's may be lost)."""
        self.writes.setdefault(self.partition, {})[key] = None

    def delete_in(self, partition: int, keys: Iterable[bytes]) -> None:
        """Tombstones for ``keys`` of ``partition`` (the TTL sweep, which reads RocksDB): a user
        this batch wrote is live, whatever the stored value says."""
        writes = self.writes.setdefault(partition, {})
        writes.update((key, None) for key in keys if key not in writes)

    async def send_changelog(self, producer: AIOKafkaProducer, topic: str) -> list[Sent]:
        """Queue the batch's writes on the changelog, one record batch per partition."""
        return await send_to_partitions(
            producer, topic, {p: list(writes.items()) for p, writes in self.writes.items()}
        )

    async def write_local(self, sent: list[Sent], offset_key: bytes) -> None:
        """Once the changelog has every write: write them to RocksDB with each partition's
        persisted changelog offset, in one write batch per partition."""
        last: dict[int, int] = {}
        for batch, offset in zip(sent, await asyncio.gather(*(s.last_offset() for s in sent))):
            last[batch.partition] = max(offset, last.get(batch.partition, -1))
        for partition, writes in self.writes.items():
            batch = rocksdict.WriteBatch(raw_mode=True)
            for key, value in writes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            batch.put(offset_key, str(last[partition]).encode())
            # looked up now: the compaction timer may have reopened it while we awaited
            self.db_for(partition).write(batch)

