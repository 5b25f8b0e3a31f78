"""Every private Faust API the project uses, in one place, and the fixes that need them.

Checked against faust-streaming 0.15.3 (:data:`FAUST_VERSION`; tests/unit/test_compat.py pins
each use, tests/unit/test_batch_plane.py the batch plane's, so an upgrade fails there first).
Fixes make Faust correct and prompt on the embedded broker (Tansu) too; accessors reach what Faust
keeps private.

1. Fetch wait. Faust creates its consumer with ``fetch_max_wait_ms=1500`` and no way to change
it. Apache Kafka answers a fetch as soon as ``fetch_min_bytes`` (1) have arrived, so that wait
only matters on an idle topic; Tansu holds the fetch for much of the wait even when data is
there, so the wait is added to every hop (bench/fetch_wait.py measures it; docs/benchmarks.md,
"Consumer fetch wait on the embedded broker"). The worker's wait comes from
``STREAMREC_FETCH_MAX_WAIT_MS``, 100 by default, not lower: Tansu's memory storage does work in
proportion to a partition's records on every fetch, so a consumer that fetches too often
saturates it as the log grows and the worker never drains its backlog (bench/backlog.py;
docs/benchmarks.md, "Backlog on the embedded broker against the consumer fetch wait").

2. Changelog recovery.

Tansu answers ListOffsets(latest) with the *last batch's base offset + 1*, not the last offset + 1
(for example 15 records, the last 10 in one batch -> 6; its Fetch high watermark says 15). Faust
reads the highwater of each changelog partition with ListOffsets, so on Tansu recovery either
crashes ("persisted offset ... is higher than the last offset", after a SIGKILL) or stops before
the end of the changelog and silently loses state. We take the larger of ListOffsets and the Fetch
response's high watermark; on Apache Kafka they agree, so this changes nothing there. The throwaway
consumer that reads it connects as Faust's own do: :func:`broker_auth` turns ``app.conf``'s
credentials into aiokafka's keywords with Faust's own ``credentials_to_aiokafka_auth``, so a SASL
or TLS broker (streams/kafka_edge/security.py) does not refuse recovery.

3. Standby holes. Faust passes aiokafka the *live* set of active partitions, which it empties
while recovery pauses them; aiokafka's ``fetched_records`` reads an empty collection as "every
partition", drains what it prefetched for the standby partitions (advancing their positions),
and Faust drops those records as not active. Nothing re-reads them: the standby's RocksDB misses
them while its persisted offset moves past, and a promotion serves the hole (a soak lost events of
one user this way). We hand aiokafka a view that is never empty-as-all.

4. The table's RocksDB. The batch plane reads and writes the user table's partitions itself
(streams/worker/transaction.py): :func:`rocksdb_partition` and :func:`persisted_offset_key` reach
Faust's store; :func:`compact_partition` compacts and reopens one (the TTL,
streams/worker/retention.py).

5. The batch plane. Faust hands a stream one message at a time (a ``wait_first`` with four tasks,
the conductor, a channel queue, an ``Event`` and an ack per message; docs/benchmarks.md's
throughput table has Faust's per-message pass-through beside the batched one).
:func:`install_batch_plane` gives the app a consumer whose fetches of the events topic (and of
the events keyed by item, for the item statistics) go whole to one handler each, while every
other topic (changelog recovery, standbys) keeps Faust's path. After
the handler returns, the fetch's offsets go into Faust's own acked-offset bookkeeping, so Faust's
commits decide what is committed, as for any stream; records below the read offset are dropped
and offset gaps recorded as Faust's drain loop does. A running batch holds a lock that revocation
waits for, and revocation commits what was acked first: Faust's ``on_partitions_revoked`` drops
acked offsets not yet committed, so the next owner would read them again.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Container, Mapping, Sequence

import faust
import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from faust.transport.drivers.aiokafka import (
    AIOKafkaConsumerThread,
    credentials_to_aiokafka_auth,
)
from faust.types import TP, ProducerT

from streams.kafka_edge.highwaters import (  # noqa: F401 (re-exported)
    HighwaterUnknown,
    fetch_highwaters,
)

FAUST_VERSION = "0.15.3"  # what every private use below was read against

_listed_highwaters = AIOKafkaConsumerThread._highwaters
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_fetch_records = AIOKafkaConsumerThread._fetch_records
_fetch_max_wait_ms: int | None = None


def broker_auth(conf: Any) -> Mapping[str, Any]:
    """aiokafka's security keywords for a Faust app's ``conf``, as Faust gives its own clients."""
    return credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)


async def _highwaters(self: Any, partitions: list[TP]) -> Mapping[TP, int]:
    listed = await _listed_highwaters(self, partitions)
    if self.consumer.in_transaction:
        return listed
    bootstrap = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
    return await fetch_highwaters(bootstrap, listed, broker_auth(self.app.conf))


def _worker_consumer(self: Any, transport: Any) -> AIOKafkaConsumer:
    consumer = _create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read when the consumer starts
    return consumer


class LivePartitions:
    """Faust's live set of active partitions as aiokafka must read it: membership follows the
    set as Faust changes it, and an empty set means none (aiokafka takes a falsy one for all)."""

    __slots__ = ("live",)

    def __init__(self, live: Container[TP]) -> None:
        self.live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.live


async def _fetch_live_records(
    self: Any,
    consumer: AIOKafkaConsumer,
    active_partitions: Container[TP],
    timeout: float | None = None,
    max_records: int | None = None,
) -> Any:
    return await _fetch_records(
        self, consumer, LivePartitions(active_partitions), timeout, max_records
    )


def install(fetch_max_wait_ms: int | None = None) -> None:
    """Idempotent; called when the app is created."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = fetch_max_wait_ms
    AIOKafkaConsumerThread._highwaters = _highwaters
    AIOKafkaConsumerThread._create_worker_consumer = _worker_consumer
    AIOKafkaConsumerThread._fetch_records = _fetch_live_records


def kafka_producer(producer: ProducerT) -> AIOKafkaProducer:
    """The started aiokafka producer behind ``app.producer`` (raises ``NotReady`` before)."""
    return producer._ensure_producer()


def rocksdb_partitions(table: faust.Table) -> Mapping[int, Any]:
    """The table's open RocksDB partitions (partition -> ``rocksdict.Rdict``); empty for any
    other store."""
    return getattr(table.data, "_dbs", {})


def compact_partition(table: faust.Table, partition: int) -> bool:
    """Compact the table's RocksDB partition to the bottom level and reopen it, so deleted users
    leave no byte on disk; False if this worker has no such partition open.

    A delete only writes a tombstone: the old value stays in the SST files, and the key may stay
    a file boundary in the MANIFEST, which RocksDB rewrites only when the database is opened.
    A forced bottommost compaction drops values and tombstones; the reopen (Faust's own
    ``_open_for_partition``, swapped into its ``_dbs``) writes a MANIFEST of live files only.
    """
    store = table.data
    db = rocksdb_partitions(table).get(partition)
    if db is None:
        return False
    options = rocksdict.CompactOptions()
    options.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
    db.compact_range(None, None, options)
    db.close()
    store._dbs[partition] = store._open_for_partition(partition)
    return True


BatchHandler = Callable[[Mapping[TP, Sequence[ConsumerRecord]]], Awaitable[None]]


def install_batch_plane(
    app: faust.App,
    handlers: Mapping[str, BatchHandler],
    on_commit_refused: Callable[[set[TP]], None] = lambda tps: None,
) -> None:
    """From now on ``app``'s consumer hands every fetch of a topic of ``handlers`` (its active
    partitions' aiokafka records, by partition) to that topic's handler, one batch at a time,
    and acks them once it returns; call before the app's consumer is created (before the worker
    starts). ``on_commit_refused`` hears, at revocation, of the partitions whose last offset
    commit failed (on the way, in a batch's or the periodic commit, or at revocation): this
    worker may have been put out of the group (a zombie), so what it wrote for them since may be
    older than what their new owner wrote. (A commit refused in an ordinary rebalance counts
    too: the cost is a longer restore, never a wrong state.)"""
    base = app.transport.Consumer

    class BatchConsumer(base):  # type: ignore[misc, valid-type]
        _batch_running: asyncio.Lock | None = None
        _refused: set[TP] | None = None

        def _running(self) -> asyncio.Lock:
            if self._batch_running is None:
                self._batch_running = asyncio.Lock()
            return self._batch_running

        def _refused_since_commit(self) -> set[TP]:
            """Partitions of ``handlers`` whose last offset commit failed. Faust cannot say:
            a failed commit has already popped its acks and advanced its committed offsets."""
            if self._refused is None:
                self._refused = set()
            return self._refused

        async def _commit(self, offsets: Mapping[TP, int]) -> bool:
            done = await super()._commit(offsets)
            mine = {tp for tp in offsets if tp.topic in handlers}
            if done:
                self._refused_since_commit().difference_update(mine)
            else:
                self._refused_since_commit().update(mine)
            return done

        async def _wait_next_records(self, timeout: float) -> Any:
            records, active = await super()._wait_next_records(timeout)
            for topic, handle in handlers.items():
                mine = {tp: records.pop(tp) for tp in [tp for tp in records or ()
                                                       if tp.topic == topic]}  # fmt: skip
                if mine:
                    await self._run_batch(handle, mine, active)
            return records, active

        async def _run_batch(
            self, handle: BatchHandler, fetched: dict[TP, Any], active: Container[TP] | None
        ) -> None:
            generation = self.app.consumer_generation_id
            async with self._running():
                if (not self.flow_active or self.should_stop
                        or self.app.consumer_generation_id != generation):
                    return  # a rebalance: Faust seeks what it keeps back to the commit
                batch = {}
                for tp, records in fetched.items():
                    read = self._read_offset[tp]
                    kept = [r for r in records if read is None or r.offset >= read]
                    if kept and (active is None or tp in active):
                        batch[tp] = kept
                if not batch:
                    return
                await handle(batch)
                for tp, records in batch.items():
                    await _ack_records(self, tp, records)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()

        async def on_partitions_revoked(self, revoked: set[TP]) -> None:
            async with self._running():  # a running batch ends (and is acked) first
                mine = {tp for tp in revoked if tp.topic in handlers}
                await self.force_commit(mine)
                doubted = self._refused_since_commit() & mine
                if doubted:
                    on_commit_refused(doubted)
                    self._refused_since_commit().difference_update(doubted)
                await super().on_partitions_revoked(revoked)

    app.transport.Consumer = BatchConsumer


async def _ack_records(consumer: Any, tp: TP, records: Sequence[ConsumerRecord]) -> None:
    """What Faust's ``_drain_messages`` and ``ack`` do per message, for a whole fetch."""
    committed = consumer._committed_offset[tp]
    read = consumer._read_offset[tp]
    index, acked = consumer._acked_index[tp], consumer._acked[tp]
    new = []
    for record in records:
        offset = record.offset
        if read and offset - read > 1:  # compacted away, or a transaction marker
            # the missing offsets only (the drain loop's ``offset`` end doubles the present one)
            await consumer._add_gap(tp, read + 1, offset - 1)
        read = offset
        if (committed is None or offset >= committed) and offset not in index:
            new.append(offset)
    index.update(new)
    acked.extend(new)
    consumer._n_acked += len(new)
    consumer._read_offset[tp] = read


def rocksdb_partition(table: faust.Table, partition: int) -> Any:
    """The table's RocksDB database (rocksdict.Rdict, raw mode) of ``partition``, opened by
    Faust's store if it is not yet."""
    return table.data._db_for_partition(partition)


FAUST_ROWS = b"__faust\x00"  # the prefix of the store's own rows (its persisted offset)


def persisted_offset_key(table: faust.Table) -> bytes:
    """The key under which Faust's RocksDB store keeps a partition's changelog offset."""
    return table.data.offset_key
