"""The streaming pipeline, top to bottom: events topic -> batch -> user table -> model -> topic.

Faust runs the app: the consumer group and its assignment, offset commits, the user table's
changelog recovery and standby replicas, the web server. The events themselves skip Faust's
per-message stream: each fetch of the events topic comes whole to :func:`create_app`'s
``process`` (streams/kafka_edge/compat.py, fix 5), which runs the steps of streams/steps/users.py on it: parse and
group by user, one multi-get of their states, apply their events to the decayed interest state,
score every touched user in one matrix product, then send the top-K records, the dead letters and
the new states (to the changelog) as whole record batches, and write the states to RocksDB once
the broker has them all (streams/worker/transaction.py). Faust acks the fetch when ``process`` returns.
This module only wires those steps; the web views and metrics are streams/worker/views.py's.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from typing import Any, Awaitable, Mapping, NoReturn, Sequence

import faust

from core.events import InvalidEvent
from models.scoring import Recommender
from streams.kafka_edge import compat, security
from streams.steps import dead_letters, records
from streams.worker import item_path as item_agent
from streams.steps.users import Applied, apply_users
from streams.steps.parse import Fetched, Message, ParsedBatch, parse_batch
from streams.worker.transaction import BatchedUsers
from streams.kafka_edge.topics import ITEM_TABLE, USER_TABLE
from streams.worker.metrics import PipelineStats
from models.item_learning import OnlineItems
from models.item_board import ItemBoard
from streams.worker.item_followers import stats_follower, vector_follower
from streams.worker.model_updates import Follower
from streams.kafka_edge.publish import send_records
from streams.worker.retention import COMPACT_EVERY_S, Retention
from streams.worker.serving import Serving
from streams.settings import Settings
from streams.worker.views import (
    register_item_vector_view,
    register_item_view,
    register_views,
    worker_metrics,
)

log = logging.getLogger(__name__)

EXIT_UNCONFINED_FAILURE = 70  # EX_SOFTWARE: restart me; the batch will be read again
GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)


def settle_gc() -> None:
    """Freeze what start-up built (Torch, the model, the catalog, Faust: ~180,000 objects) out
    of the cycle collector's sight, and collect the young generation less often.

    A batch allocates thousands of short-lived containers (tuples, lists, dicts of records),
    freed by reference counting; with CPython's defaults they still set off a collection every
    700, and the older generations' collections walk the whole start-up heap. The loop that
    builds recommendations from the scores took 17-26 µs per user with the defaults and 5.3-5.6
    with this, in one process with Torch loaded (a one-off measurement; bench/throughput.py has
    the pipeline's figures).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)


def stop_without_commit(exc: BaseException) -> NoReturn:
    """Exit the process at once, committing nothing.

    Letting the exception out would not do: Faust would crash the app, and its shutdown
    commits; an agent's supervisor would restart it and the next commit move past events that
    were never applied or dead-lettered. An exit leaves the committed offset at the last batch
    that completed, so a restart reads this one again (state is exactly-once, records
    at-least-once).
    """
    log.critical("stopping without commit: %s: %s", type(exc).__name__, exc, exc_info=exc)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_UNCONFINED_FAILURE)


def new_faust_app(settings: Settings, store: str, app_id: str | None = None) -> faust.App:
    """A Faust app with the worker's broker, consumer-group and producer tuning (the pipeline and
    the benchmarks' pass-through agents share it, so a ceiling is measured on equal terms)."""
    compat.install(settings.fetch_max_wait_ms)
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
        broker_max_poll_records=settings.batch_size,  # a fetch is a batch: bound it
        producer_linger_ms=5,
        # Only our routes: Faust's /table/ would serve a user's raw state, /router/ the topology.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
    )


def create_app(settings: Settings, recommender: Recommender) -> faust.App:
    """Build the Faust app for ``settings`` serving ``recommender``."""
    app = new_faust_app(settings, store="rocksdb://")

    events_topic = app.topic(
        settings.events_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    users = app.Table(
        USER_TABLE,
        partitions=settings.partitions,
        key_type=bytes,  # bytes means the "raw" serializer: values are our binary codec
        value_type=bytes,
        options={"driver": "rocksdict"},
    )
    config = settings.steps
    rules = settings.list_rules  # exploration and cold start (models/slates.py)
    board = ItemBoard(settings.popularity_half_life_s * 1000.0) \
        if settings.item_stats and rules.reads_item_stats else None  # fmt: skip
    stats = PipelineStats()
    serving = Serving(recommender, stats)  # swapped between batches by the model follower
    metrics = worker_metrics(app, users, settings.events_topic, serving, stats)
    retention = Retention(
        lambda: compat.rocksdb_partitions(users),
        lambda partition: compat.compact_partition(users, partition),
        config.interest.ttl_ms,
    )

    @app.agent(events_topic)
    async def recommend(stream: faust.StreamT) -> None:
        """Subscribes the app to the events topic; the batch plane takes every fetch of it
        before a stream could, so an event here means the plane is not installed."""
        async for event in stream.events():
            stop_without_commit(RuntimeError(f"event {event.message.offset} bypassed the plane"))

    async def take(fetched: Mapping[Any, Sequence[Any]]) -> None:
        try:
            await process([
                Fetched.of(r) for records in fetched.values() for r in records
            ])
        except Exception as exc:  # noqa: BLE001 - what apply_users could not confine
            stop_without_commit(exc)

    handlers = {settings.events_topic: take}
    if settings.item_stats:
        items = app.Table(ITEM_TABLE, partitions=settings.partitions, key_type=bytes,
                          value_type=bytes, options={"driver": "rocksdict"})  # fmt: skip
        half_life_ms = settings.popularity_half_life_s * 1000.0

        @app.agent(app.topic(settings.item_events_topic, key_serializer="raw",
                             value_serializer="raw", partitions=settings.partitions))
        async def count_items(stream: faust.StreamT) -> None:
            """Subscribes the app to the by-item topic, which the batch plane takes whole."""
            async for event in stream.events():
                stop_without_commit(RuntimeError(f"{event.message.offset} bypassed the plane"))

        async def take_items(fetched: Mapping[Any, Sequence[Any]]) -> None:
            try:
                done = await item_agent.process_batch(
                    [Fetched.of(r) for records in fetched.values() for r in records],
                    items, compat.kafka_producer(app.producer), config.interest, half_life_ms,
                    dead_letter, config.max_abs_value, learner_of(serving.artifact),
                    settings.item_vectors_topic)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a table or broker failure
                stop_without_commit(exc)
            stats.item_events_applied += done.applied
            stats.item_events_duplicates += done.duplicates
            stats.item_vectors_learned += len(done.vectors)

        learners: list[tuple[Recommender, OnlineItems]] = []  # for the served artifact

        def learner_of(artifact: Recommender) -> OnlineItems | None:
            if not settings.item_learning:
                return None
            if not learners or learners[0][0] is not artifact:
                learners[:] = [(artifact, OnlineItems(
                    artifact.vectors, artifact.index, artifact.tag, settings.item_learning_config,
                    serving.lineage))]  # fmt: skip
            return learners[0][1]

        handlers[settings.item_events_topic] = take_items
        register_item_view(app, items, settings)
        if settings.item_learning:
            register_item_vector_view(app, serving, settings)
    compat.install_batch_plane(app, handlers)

    async def process(batch: Sequence[Fetched]) -> None:
        """One fetch. Faust acks it when this returns, so it returns only once every event is
        applied, its state on the changelog and in RocksDB, and its record or its dead letter
        on the broker."""
        recommender, older_codebooks = serving.active  # one model for the whole batch
        stats.events_in += len(batch)
        metrics.batch_size.observe(len(batch))
        parsed = parse_batch(batch, recommender.index, config.max_future_ms,
                                   config.max_abs_value)
        stats.next_offsets.update(parsed.next_offsets)
        stats.unknown_items += parsed.unknown_items  # scored with no vector contribution
        keys: dict[int, list[bytes]] = {}
        for user, index in parsed.last_index.items():
            keys.setdefault(batch[index].partition, []).append(user.encode())
        state = BatchedUsers(lambda partition: compat.rocksdb_partition(users, partition), keys)
        done = apply_users(
            parsed,
            state,
            recommender.item_vector,
            recommender.dim,
            config,
            bind=lambda index: state.bind(batch[index].partition),
            codebook=recommender.codebook,
            model_tag=recommender.tag,
            older_codebooks=older_codebooks,
        )
        stats.rebased += done.rebased
        stats.duplicates_skipped += done.duplicates
        stats.repeated_ids += done.repeated_ids
        expired = forget(parsed, done, state)
        producer = compat.kafka_producer(app.producer)
        changelog = await state.send_changelog(producer, users.changelog_topic.get_topic_name())
        deliveries = [sent.delivery for sent in changelog]
        explored = trending = 0  # slots of this batch's records that explored; trending lists
        if done.snapshots:
            ids = records.record_ids(done.snapshots)  # each list's draws are seeded by its id
            with metrics.scoring.time():
                recs = records.serve(recommender, done.snapshots, config.top_k, rules, board, ids)
            out = records.recommendation_records(done.snapshots, recs, recommender.version,
                                                 writer=writer_of(recommender), ids=ids,
                                                 exploration=rules.exploration)  # fmt: skip
            deliveries += await send_records(producer, settings.recs_topic, out)
            explored, trending = records.sources_shown(recs)
        if settings.item_stats:  # the item statistics count what the users' states did
            interests = done.interests if settings.item_learning else None
            deliveries += await send_records(
                producer, settings.item_events_topic,
                item_agent.item_event_records(done.item_events, interests,
                                              recommender.tag))  # fmt: skip
        for message, exc in [*parsed.dead, *done.dead]:
            deliveries.append(await dead_letter(message, exc))
            stats.dead_lettered[exc.reason] += 1
        await asyncio.gather(*deliveries)  # a failed delivery raises: nothing is acked
        await state.write_local(changelog, compat.persisted_offset_key(users))
        metrics.observe_sent(parsed.produced)
        # Counted once the batch's records are out and its states written, so a count a
        # caller sees (applied == events in, a user expired) is already true in the table.
        stats.applied += done.applied
        stats.recommendations_out += len(done.snapshots)
        stats.items_explored += explored
        stats.trending_lists += trending
        stats.users_deleted += len(done.deleted)
        stats.users_expired += expired

    writing: list[tuple[list[str], records.ItemsWriter]] = []  # its item ids' JSON, made once

    def writer_of(recommender: Recommender) -> records.ItemsWriter:
        if not writing or writing[0][0] is not recommender.item_ids:  # another catalog
            writing[:] = [(recommender.item_ids, records.ItemsWriter(recommender.item_ids))]
        return writing[0][1]

    async def dead_letter(message: Message, exc: InvalidEvent) -> Awaitable[Any]:
        """The original bytes (cut to fit if too large), with why and where from in headers."""
        key, value, headers = dead_letters.dead_letter_record(message, exc, settings.dlq_max_bytes)
        return await app.producer.send(settings.dlq_topic, key, value, None, None, headers)

    def forget(parsed: ParsedBatch, done: Applied, state: BatchedUsers) -> int:
        """Delete requests were applied by apply_users; here the TTL sweeps, in event time,
        into this batch's tombstones. Returns the users expired."""
        retention.forgot({parsed.by_user[key.decode()][0][1][0] for key in done.deleted})
        if not retention.expires:
            return 0  # no TTL: no per-event watermark work on the hot path
        retention.observe(parsed)
        return retention.sweep(state.delete_in)

    @app.timer(COMPACT_EVERY_S)
    async def compact() -> None:
        stats.compactions += retention.compact()

    @app.task
    async def follow_model_updates() -> None:
        """Serve each model version announced on the model-updates topic (a thread of its own:
        loading and checking an artifact must not hold up the batches)."""
        loop = asyncio.get_running_loop()
        Follower(settings, serving, loop).start()
        if settings.item_learning:
            vector_follower(settings, serving, loop).start()
        if board is not None:  # every item's statistics, from the item table's changelog
            stats_follower(settings, board, stats, items.changelog_topic.get_topic_name(),
                           loop).start()  # fmt: skip

    register_views(app, users, settings, serving, stats, metrics)
    return app
