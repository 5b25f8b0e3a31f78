"""How a batch's sends are committed: at-least-once with the app's producer, or exactly-once as
one Kafka transaction per batch of one input partition.

Exactly-once fences a worker that lost its partitions the way Kafka Streams' first exactly-once
did (KIP-129): a transactional id per input partition, ``<app id>-<topic>-<partition>``. The
worker that takes a partition over starts a producer with that id; the broker then aborts the
old owner's open transaction and refuses any later commit of it (``ProducerFenced``), so a
zombie cannot commit records, changelog values or offsets after the new owner has begun.
aiokafka's ``send_offsets_to_transaction`` sends only the group id, not the consumer's
generation (KIP-447), so one producer per worker could not be fenced this way.

Each batch of a partition then commits, in one transaction: its changelog values, records, dead
letters and by-item events, and that partition's next offset for the consumer group. A reader
with ``isolation_level="read_committed"`` (Faust's recovery and standbys, the followers, the item
path, the tools' consumers) never sees what an aborted or a fenced transaction sent.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Mapping, Protocol, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalOperation, InvalidProducerEpoch, KafkaError, ProducerFenced

T = TypeVar("T")
Deliver = Callable[[AIOKafkaProducer], Awaitable[T]]

EXACTLY_ONCE, AT_LEAST_ONCE = "exactly_once", "at_least_once"


class TransactionsRefused(RuntimeError):
    """The broker would not start a transactional producer (Tansu has no transactions)."""


class Fenced(RuntimeError):
    """Another worker has started this input partition's producer since: this one lost the
    partition (a zombie). Nothing of its transaction is committed."""


class Outlet(Protocol):
    """Commits a batch's sends (``deliver`` sends them with the producer it is given and awaits
    every delivery) together with ``consumed``, the next offset of each input partition."""

    async def commit(self, deliver: Deliver[T], consumed: Mapping[TopicPartition, int]) -> T: ...

    async def acquire(self, partitions: set[TopicPartition]) -> None: ...

    async def release(self, partitions: set[TopicPartition]) -> None: ...


class AtLeastOnce:
    """The app's idempotent producer; Faust commits the offsets after the batch is acked, so a
    crash in between sends the batch's records again."""

    def __init__(self, producer: Callable[[], AIOKafkaProducer]) -> None:
        self.producer = producer

    async def commit(self, deliver: Deliver[T], consumed: Mapping[TopicPartition, int]) -> T:
        return await deliver(self.producer())

    async def acquire(self, partitions: set[TopicPartition]) -> None:
        """Nothing is held per partition."""

    async def release(self, partitions: set[TopicPartition]) -> None:
        """Nothing is held per partition."""


class ExactlyOnce:
    """A transactional producer per input partition this worker owns, started when the
    partition is assigned (which fences the previous owner) and stopped when it is revoked."""

    def __init__(
        self, new_producer: Callable[[str], AIOKafkaProducer], app_id: str, group_id: str
    ) -> None:
        self.new_producer, self.app_id, self.group_id = new_producer, app_id, group_id
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}

    def transactional_id(self, tp: TopicPartition) -> str:
        return f"{self.app_id}-{tp.topic}-{tp.partition}"

    async def producer_for(self, tp: TopicPartition) -> AIOKafkaProducer:
        producer = self.producers.get(tp)
        if producer is None:
            producer = self.new_producer(self.transactional_id(tp))
            try:
                await producer.start()  # InitProducerId: fences and aborts the old owner's
            except KafkaError as exc:
                await producer.stop()
                raise TransactionsRefused(
                    f"the broker refused a transactional producer ({type(exc).__name__}: {exc});"
                    " a broker without transactions (Tansu) needs "
                    "STREAMREC_PROCESSING_GUARANTEE=at_least_once") from exc  # fmt: skip
            self.producers[tp] = producer
        return producer

    async def commit(self, deliver: Deliver[T], consumed: Mapping[TopicPartition, int]) -> T:
        """One transaction; ``consumed`` names the one input partition it is for. Anything
        raised leaves the transaction uncommitted (the caller stops the worker)."""
        if len(consumed) != 1:
            raise ValueError(f"a transaction is one input partition's, not {sorted(consumed)}")
        ((tp, next_offset),) = consumed.items()
        tp = TopicPartition(tp.topic, tp.partition)
        producer = await self.producer_for(tp)
        offsets: asyncio.Future | None = None
        try:
            await producer.begin_transaction()
            # the offsets' two round trips to the coordinators go beside the records' sends
            # (order within a transaction does not matter: it commits or aborts whole)
            offsets = asyncio.ensure_future(
                producer.send_offsets_to_transaction({tp: next_offset}, self.group_id))
            delivered = await deliver(producer)
            await offsets
            await producer.commit_transaction()
        except (ProducerFenced, InvalidProducerEpoch, IllegalOperation) as exc:
            _drop(offsets)
            self.producers.pop(tp, None)
            if isinstance(exc, IllegalOperation) and not _failed_fatally(producer):
                raise  # not what a fenced producer says: a bug of ours
            raise Fenced(f"{self.transactional_id(tp)} was started by another worker: {tp} "
                         "is no longer this worker's") from exc  # fmt: skip
        except BaseException:
            _drop(offsets)
            self.producers.pop(tp, None)  # never reused: its transaction's state is unknown
            raise
        return delivered

    async def acquire(self, partitions: set[TopicPartition]) -> None:
        """Start the producers of newly assigned partitions before anything of them is read:
        starting one settles the transaction the previous owner left (a commit it had begun
        completes, an open one is aborted), so the offsets and changelogs read next are
        final."""
        await asyncio.gather(*(self.producer_for(TopicPartition(tp.topic, tp.partition))
                               for tp in partitions))  # fmt: skip

    async def release(self, partitions: set[TopicPartition]) -> None:
        """Stop the producers of revoked partitions: their next owner fences these ids."""
        for tp in partitions:
            producer = self.producers.pop(TopicPartition(tp.topic, tp.partition), None)
            if producer is not None:
                await producer.stop()


def _drop(pending: asyncio.Future | None) -> None:
    """Cancel ``pending`` if it is still waiting, and mark its exception seen if it has one."""
    if pending is None:
        return
    if not pending.done():
        pending.cancel()
    elif not pending.cancelled():
        pending.exception()


def _failed_fatally(producer: AIOKafkaProducer) -> bool:
    """Whether ``producer``'s transactions ended in a fatal error: a producer fenced while a send
    waited hears it in its sender, and the next send is refused as "not in transaction"."""
    return bool(producer._txn_manager and producer._txn_manager.is_fatal_error())


def isolation_level(guarantee: str) -> str:
    """How to read what a worker under ``guarantee`` wrote: committed records only when they
    are transactional (a broker without transactions, Tansu, is read as it always was)."""
    return "read_committed" if guarantee == EXACTLY_ONCE else "read_uncommitted"


def read_isolation(guarantee: str) -> dict[str, str]:
    """:func:`isolation_level` as a consumer's keyword (aiokafka's and kafka-python's alike)."""
    return {"isolation_level": isolation_level(guarantee)}
