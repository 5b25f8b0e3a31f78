"""The streaming pipeline, top to bottom: events topic -> agent -> user table -> model -> topic.

The agent takes micro-batches (``stream.take_events``) and runs the steps of streams/steps.py on
each: parse and group by user, apply each user's events to the decayed interest state in the
RocksDB-backed table, score every touched user in one matrix product, and send the top-K records
as whole record batches (streams/publish.py) and bad input to the dead-letter topic. This module
only wires those steps to Faust; the web views and metrics are streams/views.py's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any, Awaitable, NoReturn, Sequence

import faust

from core.events import InvalidEvent
from models.scoring import Recommender
from streams import compat, dead_letters, security, steps
from streams.broker import USER_TABLE
from streams.metrics import PipelineStats
from streams.publish import send_records
from streams.retention import COMPACT_EVERY_S, Retention
from streams.settings import Settings
from streams.views import register_views, worker_metrics

log = logging.getLogger(__name__)

EXIT_UNCONFINED_FAILURE = 70  # EX_SOFTWARE: restart me; the batch will be read again


def stop_without_commit(exc: BaseException) -> NoReturn:
    """Exit the process at once, committing nothing.

    Letting the exception out of the agent would not do: Faust's ``take_events`` acks the
    batch's events as the generator closes, its supervisor restarts the agent and the next
    commit moves past events that were never applied or dead-lettered. An exit leaves the
    committed offset at the last batch that completed, so a restart reads this one again (state
    is exactly-once, records at-least-once).
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
        consumer_auto_offset_reset="earliest",
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
    config = steps.StepConfig.of(settings)
    stats = PipelineStats()
    metrics = worker_metrics(app, users, settings.events_topic, recommender, stats)
    changelog_sends: list[asyncio.Future] = []  # this batch's state on its way to the changelog
    compat.collect_changelog_sends(users, changelog_sends.append)
    retention = Retention(
        users,
        lambda: compat.rocksdb_partitions(users),
        lambda partition: compat.compact_partition(users, partition),
        config.interest.ttl_ms,
    )

    @app.agent(events_topic)
    async def recommend(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            try:
                await process(batch)
            except Exception as exc:  # noqa: BLE001 - what apply_users could not confine
                stop_without_commit(exc)

    async def process(batch: Sequence[faust.EventT]) -> None:
        """One micro-batch. Faust acks its events when this returns, so it returns only once
        every event is applied, its state on the changelog, and its record or its dead letter on
        the broker."""
        stats.events_in += len(batch)
        metrics.batch_size.observe(len(batch))
        parsed = steps.parse_batch(
            [event.message for event in batch],
            recommender.index,
            config.max_future_ms,
            config.max_abs_value,
        )
        stats.next_offsets.update(parsed.next_offsets)
        stats.unknown_items += parsed.unknown_items  # scored with no vector contribution
        done = steps.apply_users(
            parsed,
            users,
            recommender.item_vector,
            recommender.dim,
            config,
            bind=lambda index: compat.bind_current_event(batch[index]),
        )
        stats.duplicates_skipped += done.duplicates
        stats.repeated_ids += done.repeated_ids
        deliveries = []
        if done.snapshots:
            with metrics.scoring.time():
                recs = steps.score(recommender, [s.state for s in done.snapshots], config.top_k)
            records = steps.recommendation_records(done.snapshots, recs, recommender.version)
            deliveries += await send_records(
                compat.kafka_producer(app.producer), settings.recs_topic, records
            )
        for message, exc in [*parsed.dead, *done.dead]:
            deliveries.append(await dead_letter(message, exc))
            stats.dead_lettered[exc.reason] += 1
        forget(batch, parsed, done)
        deliveries += changelog_sends
        changelog_sends.clear()
        await asyncio.gather(*deliveries)  # a failed delivery raises: nothing is acked
        metrics.observe_sent(parsed.produced)
        # Counted once the batch's records are out, so applied == events in means done.
        stats.applied += done.applied
        stats.recommendations_out += len(done.snapshots)

    async def dead_letter(message: steps.Message, exc: InvalidEvent) -> Awaitable[Any]:
        """The original bytes (cut to fit if too large), with why and where from in headers."""
        key, value, headers = dead_letters.dead_letter_record(message, exc, settings.dlq_max_bytes)
        return await app.producer.send(settings.dlq_topic, key, value, None, None, headers)

    def forget(
        batch: Sequence[faust.EventT], parsed: steps.ParsedBatch, done: steps.Applied
    ) -> None:
        """Delete requests were applied by apply_users; here the TTL sweeps, in event time."""
        stats.users_deleted += len(done.deleted)
        retention.forgot({parsed.by_user[key.decode()][0][1][0] for key in done.deleted})
        if not retention.expires:
            return  # no TTL: no per-event watermark work on the hot path
        retention.observe(parsed)
        on_partition = {event.message.partition: event for event in batch}
        stats.users_expired += retention.sweep(
            lambda partition: compat.bind_current_event(on_partition[partition])
        )

    @app.timer(COMPACT_EVERY_S)
    async def compact() -> None:
        stats.compactions += retention.compact()

    register_views(app, users, settings, recommender, stats, metrics)
    return app
