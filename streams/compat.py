"""Every private Faust API the project uses, in one place, and the fixes that need them.

Checked against faust-streaming 0.15.3 (:data:`FAUST_VERSION`; tests/unit/test_compat.py pins
each use, so an upgrade fails there first). Two fixes make Faust correct and prompt on the
embedded broker (Tansu) too; three accessors reach what Faust keeps private.

1. Fetch wait. Faust creates its consumer with ``fetch_max_wait_ms=1500`` and no way to change
it. Apache Kafka answers a fetch as soon as ``fetch_min_bytes`` (1) have arrived, so that wait
only matters on an idle topic; Tansu holds the fetch much longer (bench/fetch_wait.py, raw
aiokafka, a message every 10 ms: produce -> consume p50 391 ms / p99 753 ms at 1500, 26 / 52 ms
at 100, 3 / 6 ms at 10). The worker's wait comes from ``STREAMREC_FETCH_MAX_WAIT_MS``, 100 by
default, not lower: Tansu's memory storage does work in proportion to a partition's records on
every fetch (a fetch at the tail: ~1 ms at 1,000 records, ~9 ms at 50,000, ~55 ms at 100,000),
so a consumer fetching every 10 ms saturates it as the log grows. bench/backlog.py, 600 events/s
offered over 4 partitions: at 10 ms the worker fell behind after ~50,000 events and drained at
14 events/s; at 100 and 500 ms it kept up with 100,000 (max lag 613 and 884).

2. Changelog recovery.

Tansu answers ListOffsets(latest) with the *last batch's base offset + 1*, not the last offset + 1
(measured: 15 records, the last 10 in one batch -> 6; its Fetch high watermark says 15). Faust
reads the highwater of each changelog partition with ListOffsets, so on Tansu recovery either
crashes ("persisted offset ... is higher than the last offset", after a SIGKILL) or stops before
the end of the changelog and silently loses state. We take the larger of ListOffsets and the
Fetch response's high watermark; on Apache Kafka they agree, so this changes nothing there.
The throwaway consumer that reads it connects as Faust's own do: :func:`broker_auth` turns
``app.conf``'s credentials into aiokafka's keywords with Faust's own
``credentials_to_aiokafka_auth``, so a SASL or TLS broker (streams/security.py) does not refuse
recovery.

3. Standby holes. Faust passes aiokafka the *live* set of active partitions, which it empties
while recovery pauses them; aiokafka's ``fetched_records`` reads an empty collection as "every
partition", drains what it prefetched for the standby partitions (advancing their positions),
and Faust drops those records as not active. Nothing re-reads them: the standby's RocksDB misses
them while its persisted offset moves past, and a promotion serves the hole (a soak lost 17 events
of one user this way). We hand aiokafka a view that is never empty-as-all.

4. Changelog delivery. A table write only queues its changelog message in Faust's producer
buffer, and the flush before a commit may return with messages still queued; a failed send is
only logged. :func:`collect_changelog_sends` gives the agent each write's delivery future, so a
batch is acked only once its state is on the changelog.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Callable, Container, Mapping

import faust
import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import (
    AIOKafkaConsumerThread,
    credentials_to_aiokafka_auth,
)
from faust.types import TP, EventT, ProducerT

FAUST_VERSION = "0.15.3"  # what every private use below was read against

_listed_highwaters = AIOKafkaConsumerThread._highwaters
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_fetch_records = AIOKafkaConsumerThread._fetch_records
_fetch_max_wait_ms: int | None = None
_FETCH_TIMEOUT_S = 30.0


def broker_auth(conf: Any) -> Mapping[str, Any]:
    """aiokafka's security keywords for a Faust app's ``conf``, as Faust gives its own clients."""
    return credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)


class HighwaterUnknown(RuntimeError):
    """The broker did not say where a changelog partition ends: recovery cannot know when it
    is done, so the worker stops rather than serve what it has read so far."""


async def fetch_highwaters(
    bootstrap: list[str], listed: Mapping[TP, int], auth: Mapping[str, Any] | None = None
) -> dict[TP, int]:
    """High watermarks from one Fetch at ``listed - 1`` per partition (a throwaway consumer
    connecting with ``auth``, aiokafka's security keywords; PLAINTEXT when None)."""
    wanted = {tp: offset for tp, offset in listed.items() if offset > 0}
    if not wanted:
        return dict(listed)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(auth or {})
    )
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset - 1)
        deadline = asyncio.get_running_loop().time() + _FETCH_TIMEOUT_S
        while missing := [tp for tp in wanted if consumer.highwater(tp) is None]:
            if asyncio.get_running_loop().time() > deadline:
                # fail closed: recovering to the undercounted ListOffsets would serve stale state
                raise HighwaterUnknown(f"no Fetch high watermark for {missing} within "
                                       f"{_FETCH_TIMEOUT_S:.0f}s")
            await consumer.getmany(timeout_ms=200)
        return {tp: max(offset, consumer.highwater(tp) or 0) for tp, offset in listed.items()}
    finally:
        await consumer.stop()


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


def collect_changelog_sends(table: faust.Table, collect: Callable[[asyncio.Future], None]) -> None:
    """Hand ``collect`` the delivery future of every changelog message ``table`` sends (Faust's
    ``on_key_set``/``on_key_del`` call ``self.send_changelog``; the future fails if the send
    does)."""
    send = table.send_changelog

    def sending(*args: Any, **kwargs: Any) -> Any:
        future = send(*args, **kwargs)
        collect(future)
        return future

    table.send_changelog = sending


def bind_current_event(event: EventT) -> None:
    """Make ``event`` Faust's current event.

    A Faust table routes each read and write (RocksDB partition and changelog partition) by the
    current event, and ``take_events`` leaves only the batch's last one current. Binding each
    user's own event keeps state in the partition its events come from.
    """
    _current_event.set(weakref.ref(event))


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
