"""Every private Faust API the project uses, in one place, and the fixes that need them.

Checked against faust-streaming 0.15.3 (:data:`FAUST_VERSION`; tests/unit/test_compat.py pins
each use, tests/unit/test_batch_plane.py the batch plane's, so an upgrade fails there first).
Fixes make Faust correct and prompt (and, where streams/kafka_edge/tansu.py says so, on the
embedded Tansu too); accessors reach what Faust keeps private.

1. Fetch wait. Faust creates its consumer with ``fetch_max_wait_ms=1500`` and no way to change
it. The worker's wait comes from ``STREAMREC_FETCH_MAX_WAIT_MS`` instead, 100 by default: Apache
Kafka answers a fetch once data is there, but under exactly-once the worker's latency at low load
follows the wait, cause not yet found; Tansu holds every fetch for much of the wait, and fetching
too often saturates it as the log grows (docs/benchmarks.md, "Consumer fetch wait, Apache Kafka
against Tansu" and "What limits the hot path").

2. Changelog recovery. Faust reads where each changelog partition ends with ListOffsets. With
exactly-once the worker reads committed records only, and a changelog written in transactions
ends in a commit marker no reader is given: recovery then ends at the last committed record
(``committed_ends``), which is where its persisted offset points. On Tansu, whose ListOffsets
undercounts, recovery takes a Fetch's high watermark when it is larger (streams/kafka_edge/
tansu.py: the broker is asked once whether it is Tansu, unless ``STREAMREC_BROKER_ENGINE``
says).
The throwaway clients connect as Faust's own do: :func:`broker_auth` turns ``app.conf``'s
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
:func:`streams.kafka_edge.batch_plane.install_batch_plane` gives the app a consumer whose fetches of the events topic (and of
the events keyed by item, for the item statistics) go whole to one handler each, while every
other topic (changelog recovery, standbys) keeps Faust's path. After
the handler returns, the fetch's offsets go into Faust's own acked-offset bookkeeping, so Faust's
commits decide what is committed, as for any stream; records below the read offset are dropped
and offset gaps recorded as Faust's drain loop does. A running batch holds a lock that revocation
waits for, and revocation commits what was acked first: Faust's ``on_partitions_revoked`` drops
acked offsets not yet committed, so the next owner would read them again.
"""

from __future__ import annotations

from typing import Any, Callable, Container, Mapping

import faust
import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import (
    AIOKafkaConsumerThread,
    credentials_to_aiokafka_auth,
)
from faust.types import TP, ProducerT

from streams.kafka_edge.highwaters import HighwaterUnknown, committed_ends  # noqa: F401
from streams.kafka_edge.tansu import asks_tansu, fetch_highwaters

FAUST_VERSION = "0.15.3"  # what every private use below was read against

_listed_highwaters = AIOKafkaConsumerThread._highwaters
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_fetch_records = AIOKafkaConsumerThread._fetch_records
_fetch_max_wait_ms: int | None = None
_read_committed = False
_broker_engine = "auto"  # STREAMREC_BROKER_ENGINE: kafka, tansu, or auto (ask the broker)


def broker_auth(conf: Any) -> Mapping[str, Any]:
    """aiokafka's security keywords for a Faust app's ``conf``, as Faust gives its own clients."""
    return credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)


async def _highwaters(self: Any, partitions: list[TP]) -> Mapping[TP, int]:
    listed = await _listed_highwaters(self, partitions)
    if self.consumer.in_transaction:
        return listed
    bootstrap = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
    auth = broker_auth(self.app.conf)
    if _read_committed:  # the last stable offset; a commit marker may end the log
        return await committed_ends(bootstrap, listed, auth)
    if await asks_tansu(bootstrap, _broker_engine, auth):
        return await fetch_highwaters(bootstrap, listed, auth)
    return listed


UNBOUNDED = 2**63  # an end not known: every offset is below it


async def listed_ends(app: faust.App, topic: str, partitions: list[int]) -> dict[int, int]:
    """Where ``topic``'s ``partitions`` end, as ListOffsets(latest) says (read_committed: the
    last stable offset), asked by the worker's own consumer in its thread: one request, no
    client to start. An upper bound of every offset a worker has read there. On Tansu, whose
    answer undercounts, every end is :data:`UNBOUNDED` instead."""
    bootstrap = [f"{url.host}:{url.port or 9092}" for url in app.conf.broker]
    if await asks_tansu(bootstrap, _broker_engine, broker_auth(app.conf)):
        return dict.fromkeys(partitions, UNBOUNDED)
    thread = app.consumer._thread
    listed = await thread.call_thread(_listed_highwaters, thread,
                                      [TP(topic, partition) for partition in partitions])
    return {tp.partition: offset for tp, offset in listed.items()}


def _worker_consumer(self: Any, transport: Any) -> AIOKafkaConsumer:
    consumer = _create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read when the consumer starts
    if _read_committed:
        consumer._isolation_level = "read_committed"  # read when the consumer starts
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


def install(fetch_max_wait_ms: int | None = None, read_committed: bool = False,
            broker_engine: str = "auto") -> None:  # fmt: skip
    """Idempotent; called when the app is created. ``read_committed``: the worker's consumer
    (events, by-item events, changelog recovery, standbys) reads committed records only;
    ``broker_engine``: ``tansu``, ``kafka``, or ``auto`` to ask the broker which."""
    global _fetch_max_wait_ms, _read_committed, _broker_engine
    _fetch_max_wait_ms, _read_committed = fetch_max_wait_ms, read_committed
    _broker_engine = broker_engine
    AIOKafkaConsumerThread._highwaters = _highwaters
    AIOKafkaConsumerThread._create_worker_consumer = _worker_consumer
    AIOKafkaConsumerThread._fetch_records = _fetch_live_records


def kafka_producer(producer: ProducerT) -> AIOKafkaProducer:
    """The started aiokafka producer behind ``app.producer`` (raises ``NotReady`` before)."""
    return producer._ensure_producer()


def transactional_producer(app: faust.App, transactional_id: str) -> AIOKafkaProducer:
    """A new (unstarted) aiokafka producer with the app's broker, security and tuning, and
    ``transactional_id``. Its retries back off 5 ms, not aiokafka's 100: a transaction's first
    request meets the broker still writing the previous one's markers (CONCURRENT_TRANSACTIONS,
    KAFKA-5477; on Kafka 4 also its produce verification, KIP-890, which answers an old produce
    version NOT_ENOUGH_REPLICAS meanwhile), and aiokafka waits its full backoff for it except in
    AddPartitionsToTxn."""
    producer = app.producer
    return AIOKafkaProducer(**{**producer._settings_default(), **producer._settings_auth(),
                               **producer._settings_extra()},
                            transactional_id=transactional_id, retry_backoff_ms=5)  # fmt: skip


def admin_client(app: faust.App) -> AIOKafkaAdminClient:
    """A new (unstarted) aiokafka admin client with the app's broker and security."""
    producer = app.producer
    return AIOKafkaAdminClient(
        bootstrap_servers=producer._settings_default()["bootstrap_servers"],
        **producer._settings_auth())


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


def before_store_stops(table: faust.Table, before: Callable[[], None]) -> None:
    """Call ``before()`` when ``table``'s RocksDB store is stopped, before it lets go of its
    databases (Faust's ``Store.stop`` clears them: nothing reaches them after)."""
    store = table.data
    stop = store.stop

    async def stop_after() -> None:
        before()
        await stop()

    store.stop = stop_after


def rocksdb_partition(table: faust.Table, partition: int) -> Any:
    """The table's RocksDB database (rocksdict.Rdict, raw mode) of ``partition``, opened by
    Faust's store if it is not yet."""
    return table.data._db_for_partition(partition)


FAUST_ROWS = b"__faust\x00"  # the prefix of the store's own rows (its persisted offset)


def persisted_offset_key(table: faust.Table) -> bytes:
    """The key under which Faust's RocksDB store keeps a partition's changelog offset."""
    return table.data.offset_key
