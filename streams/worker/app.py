"""The worker's wiring: the Faust app, its two tables, the user path and the item path on the
batch plane, the followers, the compaction timer and the web views.

Faust runs the app: the consumer group and its assignment, offset commits, the tables' changelog
recovery and standby replicas, the web server. The events skip Faust's per-message stream: each
fetch goes whole to a path's ``process`` (streams/worker/user_path.py, item_path.py) through the
batch plane (streams/kafka_edge/batch_plane.py). This module only builds and connects the parts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Awaitable, TypeVar

import faust

from models.item_board import ItemBoard
from models.scoring import Recommender
from streams.kafka_edge import batch_plane, compat, security
from streams.kafka_edge.topics import ITEM_TABLE, USER_TABLE
from streams.kafka_edge.transactions import EXACTLY_ONCE, AtLeastOnce, ExactlyOnce, Outlet
from streams.settings import Settings
from streams.worker.bad_requests import quiet_bad_requests
from streams.worker.failure import stop_without_commit
from streams.worker.console import register_console
from streams.worker.followers import start_followers
from streams.worker.item_path import ItemPath
from streams.worker.metrics import PipelineStats
from streams.worker.retention import COMPACT_EVERY_S, Retention
from streams.worker.serving import Serving
from streams.worker.restore import distrust_local_state, keep_newest_on_restore
from streams.worker.transaction import TableStore
from streams.worker.user_path import UserPath
from streams.worker.views import (
    register_item_vector_view,
    register_item_view,
    register_views,
    worker_metrics,
)

GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)

log = logging.getLogger(__name__)
T = TypeVar("T")


def settle_gc() -> None:
    """Freeze what start-up built (Torch, the model, the catalog, Faust) out
    of the cycle collector's sight, and collect the young generation less often.

    A batch allocates thousands of short-lived containers (tuples, lists, dicts of records),
    freed by reference counting; with CPython's defaults they still set off a young collection
    every few hundred allocations, and the older generations' collections walk the whole
    start-up heap (bench/throughput.py measures the pipeline with this on).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)


PRODUCER_BATCH_BYTES = 512 * 1024


def new_faust_app(settings: Settings, store: str, app_id: str | None = None) -> faust.App:
    """A Faust app with the worker's broker, consumer-group and producer tuning (the pipeline and
    the benchmarks' pass-through agents share it, so a ceiling is measured on equal terms)."""
    compat.install(settings.fetch_max_wait_ms,
                   read_committed=settings.processing_guarantee == EXACTLY_ONCE,
                   broker_engine=settings.broker_engine)  # fmt: skip
    return faust.App(
        app_id or settings.app_id,
        broker=settings.broker_url,
        broker_credentials=security.faust_credentials(settings),  # SASL/TLS, or None: PLAINTEXT
        store=store,
        datadir=str(settings.state_dir),
        web_port=settings.web_port,
        web_host=settings.web_host,
        canonical_url=settings.canonical_url,  # where other workers route /users/... queries
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=settings.max_batch,  # a fetch is a batch: bound it
        producer_linger_ms=5,
        # a micro-batch's records for a partition go as one record batch, not many: aiokafka
        # sends one request at a time per broker, and each extra batch of a partition waits for
        # the one before it to be sent (a round trip each); below the broker's message.max.bytes
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # Only our routes: Faust's /table/ would serve a user's raw state, /router/ the topology.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
    )


def create_app(settings: Settings, recommender: Recommender) -> faust.App:
    """Build the Faust app for ``settings`` serving ``recommender``."""
    app = new_faust_app(settings, store="rocksdb://")
    quiet_bad_requests()
    users = raw_table(app, USER_TABLE, settings)
    retention = Retention(lambda: compat.rocksdb_partitions(users),
                          lambda partition: compat.compact_partition(users, partition),
                          settings.interest.ttl_ms)  # fmt: skip
    # a zombie's late changelog values must not win a restore; a restored or standby
    # tombstone's partition is compacted like the active path's
    keep_newest_on_restore(users, retention.forgot)
    items = raw_table(app, ITEM_TABLE, settings) if settings.item_stats else None
    board = ItemBoard(settings.popularity_half_life_s * 1000.0) \
        if settings.item_stats and settings.list_rules.reads_item_stats else None  # fmt: skip
    stats = PipelineStats()
    serving = Serving(recommender, stats,  # swapped between batches by the model follower
                      settings.processing_guarantee != "exactly_once")  # fmt: skip
    metrics = worker_metrics(app, users, settings.events_topic, serving, stats)
    outlet = new_outlet(app, settings)
    user_path = UserPath(settings, table_store(users), outlet, serving, board, retention,
                         stats, metrics)  # fmt: skip
    handlers = {subscribe(app, settings.events_topic, settings): user_path.take}
    if items is not None:
        item_path = ItemPath(settings, table_store(items), outlet, serving, stats,
                             lambda partitions: compat.listed_ends(app, settings.events_topic,
                                                                   partitions))  # fmt: skip
        handlers[subscribe(app, settings.item_events_topic, settings)] = item_path.take
        register_item_view(app, items, settings)
        if settings.item_learning:
            register_item_vector_view(app, serving, settings)
    batch_plane.install_batch_plane(
        app, handlers, lambda tps: distrust_local_state(
            users, {tp.partition for tp in tps if tp.topic == settings.events_topic}),
        transactional=settings.processing_guarantee == EXACTLY_ONCE, on_revoked=outlet.release,
        on_assigned=lambda tps: or_stop(acquired(outlet, tps)),
        slices={settings.events_topic: settings.max_user_slice}
        if settings.max_user_slice else None)  # fmt: skip

    @app.timer(COMPACT_EVERY_S)
    async def compact() -> None:
        stats.compactions += retention.compact()

    def compact_before_stopping() -> None:
        """A user deleted just before a stop leaves no byte on disk either."""
        compacted = retention.compact()
        stats.compactions += compacted
        if compacted:
            log.info("compacted %d partition(s) that lost users before stopping", compacted)

    compat.before_store_stops(users, compact_before_stopping)

    @app.task
    async def follow_internal_topics() -> None:
        """Follow the model updates, learned item vectors and item statistics (threads of their
        own: loading and checking an artifact must not hold up the batches)."""
        start_followers(settings, serving, board, stats,
                        items.changelog_topic.get_topic_name() if items is not None else None,
                        asyncio.get_running_loop())  # fmt: skip

    register_views(app, users, settings, serving, stats, metrics, board)
    register_console(app)
    return app


async def acquired(outlet: Outlet, partitions: set) -> dict:
    """Newly assigned ``partitions`` taken over (their previous owner's transaction settled),
    and the note committed with each one's offset (what past it was applied already)."""
    await outlet.acquire(partitions)
    return await outlet.notes(partitions)


async def or_stop(step: Awaitable[T]) -> T:
    """Await ``step`` of a rebalance; a failure stops the worker (exit 70, said in its log):
    aiokafka only logs what a rebalance listener raises, and Faust would then never recover or
    resume, leaving the worker holding partitions it does not process."""
    try:
        return await step
    except Exception as exc:  # noqa: BLE001 - TransactionsRefused, a broker gone, an ACL
        stop_without_commit(exc)


def new_outlet(app: faust.App, settings: Settings) -> Outlet:
    """How the paths commit a batch: one transaction per input partition's batch, or the app's
    producer with Faust committing the offsets after (streams/kafka_edge/transactions.py)."""
    if settings.processing_guarantee == EXACTLY_ONCE:
        return ExactlyOnce(lambda transactional_id: compat.transactional_producer(
            app, transactional_id), settings.app_id, app.conf.id,
            lambda: compat.admin_client(app))  # fmt: skip
    return AtLeastOnce(lambda: compat.kafka_producer(app.producer))  # started with the app


def raw_table(app: faust.App, name: str, settings: Settings) -> faust.Table:
    """A table of raw bytes in RocksDB: the values are our own codecs'."""
    return app.Table(name, partitions=settings.partitions, key_type=bytes, value_type=bytes,
                     options={"driver": "rocksdict"})  # fmt: skip


def table_store(table: faust.Table) -> TableStore:
    """Where a batch transaction reads and writes ``table``."""
    return TableStore(lambda partition: compat.rocksdb_partition(table, partition),
                      table.changelog_topic.get_topic_name(), compat.persisted_offset_key(table))


def subscribe(app: faust.App, topic: str, settings: Settings) -> str:
    """Subscribe the app to ``topic`` with an agent whose stream never runs: the batch plane
    takes every fetch of it first, so an event here means the plane is not installed."""

    @app.agent(app.topic(topic, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions), name=f"subscribe:{topic}")  # fmt: skip
    async def bypassed(stream: faust.StreamT) -> None:
        async for event in stream.events():
            stop_without_commit(RuntimeError(f"{topic} {event.message.offset} bypassed the plane"))

    return topic
