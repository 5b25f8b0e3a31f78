"""A batch's one transaction: what it reads and writes of a table, what it sends, and the one
place it commits (Quix Streams calls the same object ``Checkpoint``).

A fetch of the events topic (streams/worker/user_path.py) or of the by-item topic
(streams/worker/item_path.py) is one :class:`BatchTransaction`. It reads the batch's keys in one
multi-get per partition, takes the steps' puts and deletes (it is their
:class:`~streams.steps.users.StateTable`), and collects the records and dead letters the batch
makes. :meth:`BatchTransaction.commit` then sends and writes them in the order that keeps state
exactly-once:

1. the table's new values to its changelog, the records to their topics and the dead letters to
   the dead-letter topic, each as whole record batches;
2. every delivery awaited (a failed one raises: nothing is written, nothing acked); with
   exactly-once, the batch (of one input partition) is one Kafka transaction that also commits
   that partition's next offset, and it is committed here (streams/kafka_edge/transactions.py);
3. only then the values into RocksDB, one write batch per partition with that partition's last
   changelog offset, which is where Faust's recovery resumes.

The path acks the fetch (Faust commits its offsets) only after ``commit`` returns. So the local
state is never ahead of the changelog: a restore from the changelog gives exactly this state, a
crash anywhere leaves at worst a local state behind the changelog, which Faust's recovery brings
up to date before the partition is served, and a replayed batch finds its events applied.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import rocksdict
from aiokafka import AIOKafkaProducer, TopicPartition

from core.events import InvalidEvent
from core.seal import Seal
from streams.kafka_edge.publish import send_records, send_to_partitions
from streams.kafka_edge.held_back import Resume
from streams.kafka_edge.transactions import Consumed, Outlet
from streams.steps.dead_letters import dead_letter_record
from streams.steps.parse import Message


@dataclass(frozen=True)
class TableStore:
    """Where a table's values live: its RocksDB database of each partition (looked up at each
    use: the compaction timer may reopen one), its changelog topic, and the key under which each
    partition's database keeps its changelog offset."""

    db_for: Callable[[int], Any]
    changelog_topic: str
    offset_key: bytes


def consumed_offsets(batch: Sequence[Message], resume_at: Mapping[Any, Resume] | None = None
                     ) -> dict[TopicPartition, Consumed]:  # fmt: skip
    """The offsets ``batch`` read of each input partition, from its first record's to the next
    offset once it is done (what a transaction commits for the consumer group): the one after
    its last record, or ``resume_at``'s for the partition (the batch plane held records back,
    and the input resumes at the first of them, with a note of what went ahead)."""
    read: dict[TopicPartition, Consumed] = {}
    for message in batch:
        tp = TopicPartition(message.topic, message.partition)
        was = read.get(tp, Consumed(message.offset, message.offset + 1))
        read[tp] = Consumed(min(was.start, message.offset), max(was.stop, message.offset + 1))
    for tp, offsets in read.items():
        resume = (resume_at or {}).get(tp)
        if resume is not None:
            read[tp] = Consumed(offsets.start, resume.offset, resume.note)
    return read


def keys_by_partition(
    last_index: Mapping[str, int], batch: Sequence[Message]
) -> dict[int, list[bytes]]:
    """The batch's keys by the partition of the message that carried each key last (what each
    multi-get reads): ``last_index`` maps a key to the batch index of that message."""
    keys: dict[int, list[bytes]] = {}
    for key, index in last_index.items():
        keys.setdefault(batch[index].partition, []).append(key.encode())
    return keys


@dataclass(frozen=True)
class DeadLetterTopic:
    """Where refused messages go, and the largest dead letter stored whole."""

    topic: str
    max_bytes: int


class BatchTransaction:
    """One batch's reads, writes and sends; ``bind(partition)`` before a key's access says which
    partition (= input and changelog partition) holds it."""

    def __init__(
        self,
        store: TableStore,
        keys: Mapping[int, Iterable[bytes]],
        outlet: Outlet,
        dead_letters: DeadLetterTopic,
        consumed: Mapping[TopicPartition, range],
    ) -> None:
        """Reads ``keys`` (the batch's keys by partition) in one multi-get each; ``consumed``
        is the offsets the batch read of each input partition (:func:`consumed_offsets`)."""
        self.store = store
        self.outlet, self.consumed = outlet, consumed
        self.dead_letters = dead_letters
        self.stored: dict[bytes, bytes | None] = {}
        for partition, wanted in keys.items():
            wanted = list(wanted)
            self.stored.update(zip(wanted, store.db_for(partition).get(wanted)))
        self.partition = -1
        self.writes: dict[int, dict[bytes, bytes | None]] = {}
        self.records: list[tuple[str, Sequence[tuple[bytes, bytes]], Seal | None]] = []
        self.refused: list[tuple[Message, InvalidEvent]] = []

    def bind(self, partition: int) -> None:
        self.partition = partition

    def get(self, key: bytes) -> bytes | None:
        if key in self.stored:
            return self.stored[key]
        return self.store.db_for(self.partition).get(key)  # a key the multi-get was not given

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes.setdefault(self.partition, {})[key] = value

    def __delitem__(self, key: bytes) -> None:
        """A tombstone, also for a key that is not there (a replayed delete's may be lost)."""
        self.writes.setdefault(self.partition, {})[key] = None

    def delete_in(self, partition: int, keys: Iterable[bytes]) -> int:
        """Tombstones for ``keys`` of ``partition`` (the TTL sweep, which reads RocksDB): a key
        this batch wrote is live, whatever the stored value says. Returns how many were added."""
        writes = self.writes.setdefault(partition, {})
        dead = [key for key in keys if key not in writes]
        writes.update((key, None) for key in dead)
        return len(dead)

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes]],
             seal: Seal | None = None) -> None:  # fmt: skip
        """``(key, value)`` records for ``topic``, partitioned by key as Kafka's clients do;
        with a ``seal``, each carries its MAC (an internal topic's record)."""
        if records:
            self.records.append((topic, records, seal))

    def dead_letter(self, message: Message, exc: InvalidEvent) -> None:
        """The message's bytes (cut to fit if too large), with why and where from."""
        self.refused.append((message, exc))

    async def commit(self) -> None:
        """Send everything, await every delivery (and, exactly-once, commit the transaction),
        then write RocksDB (the module's order)."""
        self.write_local(await self.outlet.commit(self.deliver, self.consumed))

    async def deliver(self, producer: AIOKafkaProducer) -> dict[int, int]:
        """Send the changelog, the records and the dead letters; return once the broker has them
        all, with each changelog partition's last offset (a failed delivery raises)."""
        changelog = await send_to_partitions(
            producer, self.store.changelog_topic,
            {p: list(writes.items()) for p, writes in self.writes.items()})  # fmt: skip
        deliveries = [sent.delivery for sent in changelog]
        for topic, records, seal in self.records:
            deliveries += await send_records(producer, topic, records, seal)
        for message, exc in self.refused:
            key, value, headers = dead_letter_record(message, exc, self.dead_letters.max_bytes)
            deliveries.append(await producer.send(
                self.dead_letters.topic, value, key=key, headers=headers))  # fmt: skip
        await asyncio.gather(*deliveries)
        last: dict[int, int] = {}
        for sent in changelog:
            last[sent.partition] = max(await sent.last_offset(), last.get(sent.partition, -1))
        return last

    def write_local(self, last_offsets: Mapping[int, int]) -> None:
        """The batch's values into RocksDB, one write batch per partition with its changelog
        offset (looked up now: the compaction timer may have reopened a database meanwhile)."""
        for partition, writes in self.writes.items():
            if not writes:
                continue
            batch = rocksdict.WriteBatch(raw_mode=True)
            for key, value in writes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            batch.put(self.store.offset_key, str(last_offsets[partition]).encode())
            self.store.db_for(partition).write(batch)
