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
import logging
from typing import Any, Awaitable, Callable, Mapping, NamedTuple, Protocol, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import IllegalOperation, InvalidProducerEpoch, KafkaError, ProducerFenced

T = TypeVar("T")
Deliver = Callable[[AIOKafkaProducer], Awaitable[T]]

EXACTLY_ONCE, AT_LEAST_ONCE = "exactly_once", "at_least_once"
OUTAGE_S = 300.0  # how long a transaction that lost the broker waits for it to answer again
OUTAGE_BACKOFF_S = 1.0
_NOT_YET = object()  # what a transaction delivered before its sends were all delivered

log = logging.getLogger(__name__)


class TransactionsRefused(RuntimeError):
    """The broker would not start a transactional producer (Tansu has no transactions)."""


class Fenced(RuntimeError):
    """Another worker has started this input partition's producer since: this one lost the
    partition (a zombie). Nothing of its transaction is committed."""


class Consumed(NamedTuple):
    """The offsets a batch read of an input partition, from its first record's to ``stop``,
    the offset its input resumes at (one past its last record, or the first record held back),
    which a transaction commits with ``note`` (streams/kafka_edge/held_back.py)."""

    start: int
    stop: int
    note: str = ""


class Outlet(Protocol):
    """Commits a batch's sends (``deliver`` sends them with the producer it is given and awaits
    every delivery, and may be called again if a transaction must be sent again) together with
    ``consumed``: the offsets the batch read of each input partition (its first record's to one
    past its last, which is what the group commits)."""

    async def commit(self, deliver: Deliver[T], consumed: Mapping[TopicPartition, Consumed]) -> T: ...

    async def acquire(self, partitions: set[TopicPartition]) -> None: ...

    async def notes(self, partitions: set[TopicPartition]) -> dict[TopicPartition, str]: ...

    async def release(self, partitions: set[TopicPartition]) -> None: ...


class AtLeastOnce:
    """The app's idempotent producer; Faust commits the offsets after the batch is acked, so a
    crash in between sends the batch's records again."""

    def __init__(self, producer: Callable[[], AIOKafkaProducer]) -> None:
        self.producer = producer

    async def commit(self, deliver: Deliver[T], consumed: Mapping[TopicPartition, Consumed]) -> T:
        return await deliver(self.producer())

    async def acquire(self, partitions: set[TopicPartition]) -> None:
        """Nothing is held per partition."""

    async def notes(self, partitions: set[TopicPartition]) -> dict[TopicPartition, str]:
        """No transaction commits a note."""
        return {}

    async def release(self, partitions: set[TopicPartition]) -> None:
        """Nothing is held per partition."""


class ExactlyOnce:
    """A transactional producer per input partition this worker owns, started when the
    partition is assigned (which fences the previous owner) and stopped when it is revoked.

    A transaction that loses the broker (a connection refused or reset, a request timed out:
    aiokafka's producer may not survive one) is settled once the broker answers again, as
    Kafka Streams does with a task whose commit timed out: a new producer with the same id is
    started, which makes the broker finish the transaction it kept (a commit it had begun
    completes, anything else is aborted), and the group's committed offset then says what
    happened. The batch's own next offset: it committed. Not past the batch's first record: it
    did not, and the batch is sent again, whole, in a new transaction. Anything else: another
    worker has committed the partition since, so this one is a zombie (:class:`Fenced`)."""

    def __init__(
        self,
        new_producer: Callable[[str], AIOKafkaProducer],
        app_id: str,
        group_id: str,
        new_admin: Callable[[], AIOKafkaAdminClient],
        outage_s: float = OUTAGE_S,
    ) -> None:
        self.new_producer, self.app_id, self.group_id = new_producer, app_id, group_id
        self.new_admin, self.outage_s = new_admin, outage_s
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

    async def commit(self, deliver: Deliver[T], consumed: Mapping[TopicPartition, Consumed]) -> T:
        """One transaction; ``consumed`` names the one input partition it is for and the
        offsets its batch read. Anything raised leaves the transaction uncommitted (the caller
        stops the worker); a lost broker is waited for (the class says how)."""
        if len(consumed) != 1:
            raise ValueError(f"a transaction is one input partition's, not {sorted(consumed)}")
        ((tp, offsets),) = consumed.items()
        tp = TopicPartition(tp.topic, tp.partition)
        deadline = asyncio.get_running_loop().time() + self.outage_s
        while True:
            producer = await self.producer_for(tp)
            delivered: Any = _NOT_YET
            pending: asyncio.Future | None = None
            try:
                await producer.begin_transaction()
                # the offsets' two round trips to the coordinators go beside the records' sends
                # (order within a transaction does not matter: it commits or aborts whole)
                pending = asyncio.ensure_future(
                    producer.send_offsets_to_transaction({tp: (offsets.stop, offsets.note)},
                                                      self.group_id))  # fmt: skip
                delivered = await deliver(producer)
                await pending
                await producer.commit_transaction()
                return delivered
            except BaseException as exc:
                _drop(pending)
                self.producers.pop(tp, None)  # never reused: its transaction's state is unknown
                if not isinstance(exc, (KafkaError, IllegalOperation)):
                    raise
                fatal = _failed_fatally(producer)
                await _stop_quietly(producer)
                if isinstance(exc, (ProducerFenced, InvalidProducerEpoch)) or (
                        isinstance(exc, IllegalOperation) and fatal):  # fmt: skip
                    raise self.fenced(tp) from exc
                if isinstance(exc, IllegalOperation):
                    raise  # not what a fenced producer says: a bug of ours
                # the broker lost: what became of the transaction?
                log.warning("%s lost the broker inside a transaction (%s: %s); settling it",
                            self.transactional_id(tp), type(exc).__name__, exc)  # fmt: skip
                if await self.settle(tp, offsets, deadline, exc):
                    if delivered is _NOT_YET:
                        raise RuntimeError("a transaction committed before its sends") from exc
                    return delivered
                log.warning("%s: its transaction was aborted; sending the batch again",
                            self.transactional_id(tp))  # fmt: skip

    async def settle(self, tp: TopicPartition, offsets: Consumed, deadline: float,
                     lost: KafkaError) -> bool:  # fmt: skip
        """Once the broker answers: True if the transaction committed, False if it was aborted
        (a new producer is then ready); :class:`Fenced` if another worker committed since.
        Re-raises ``lost`` if the broker does not answer by ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise lost
            producer = self.new_producer(self.transactional_id(tp))
            try:  # starting it settles the transaction the broker kept for this id
                await asyncio.wait_for(producer.start(), left)
                self.producers[tp] = producer
                committed = await asyncio.wait_for(self.group_offset(tp), left)
                break
            except (KafkaError, asyncio.TimeoutError, OSError):
                self.producers.pop(tp, None)
                await _stop_quietly(producer)
                await asyncio.sleep(min(OUTAGE_BACKOFF_S, max(0.0, deadline - loop.time())))
        if committed == offsets.stop:
            return True
        if committed is None or committed <= offsets.start:
            return False
        self.producers.pop(tp, None)
        await _stop_quietly(producer)
        raise self.fenced(tp) from lost

    async def group_offset(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of ``tp`` (None when it has none)."""
        found = (await self.committed([tp])).get(tp)
        return None if found is None or found.offset < 0 else found.offset

    async def committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Any]:
        """The group's committed offsets (and their metadata) of ``partitions``."""
        admin = self.new_admin()
        await admin.start()
        try:
            return await admin.list_consumer_group_offsets(self.group_id, partitions=partitions)
        finally:
            await admin.close()

    async def notes(self, partitions: set[TopicPartition]) -> dict[TopicPartition, str]:
        """The note committed with each partition's offset (the last transaction's, once
        :meth:`acquire` has settled it): what past the offset was applied already."""
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        found = await self.committed(wanted) if wanted else {}
        return {tp: meta.metadata for tp, meta in found.items() if meta.metadata}

    def fenced(self, tp: TopicPartition) -> Fenced:
        return Fenced(f"{self.transactional_id(tp)} was started by another worker: {tp} is no "
                      "longer this worker's")  # fmt: skip

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


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    """Stop a producer whose broker may be gone; its pending sends fail, which is all that is
    wanted of it."""
    try:
        await asyncio.wait_for(producer.stop(), 10)
    except Exception:  # noqa: BLE001 - a dead sender re-raises its error on stop
        log.debug("a producer stopped with an error", exc_info=True)


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
