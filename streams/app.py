"""The streaming pipeline, top to bottom: events topic -> agent -> user table -> model -> topic.

The agent takes micro-batches (``stream.take_events``) and runs the steps of streams/steps.py on
each: parse and group by user, apply each user's events to the decayed interest state in the
RocksDB-backed table, score every touched user in one matrix product, and send the top-K records
as whole record batches (streams/publish.py) and bad input to the dead-letter topic. This module
only wires those steps to Faust; the web views and metrics are streams/views.py's.
"""

from __future__ import annotations

from typing import Sequence

import faust

from core.events import InvalidEvent
from models.scoring import Recommender
from streams import compat, steps
from streams.broker import USER_TABLE
from streams.metrics import PipelineStats
from streams.publish import send_records
from streams.settings import Settings
from streams.views import register_views, worker_metrics


def new_faust_app(settings: Settings, store: str, app_id: str | None = None) -> faust.App:
    """A Faust app with the worker's broker, consumer-group and producer tuning (the pipeline and
    the benchmarks' pass-through agents share it, so a ceiling is measured on equal terms)."""
    compat.install(settings.fetch_max_wait_ms)
    return faust.App(
        app_id or settings.app_id,
        broker=settings.broker_url,
        store=store,
        datadir=str(settings.state_dir),
        web_port=settings.web_port,
        web_host=settings.web_host,
        canonical_url=settings.canonical_url,  # where other workers route /users/... queries
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
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

    @app.agent(events_topic)
    async def recommend(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
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
            if done.snapshots:
                with metrics.scoring.time():
                    recs = steps.score(recommender, [s.state for s in done.snapshots], config.top_k)
                records = steps.recommendation_records(done.snapshots, recs, recommender.version)
                await publish(records, parsed.produced)
            # Counted once the batch's records are out, so applied == events in means done.
            stats.applied += done.applied
            stats.recommendations_out += len(done.snapshots)
            for message, exc in [*parsed.dead, *done.dead]:
                await dead_letter(message, exc)

    async def publish(records: Sequence[tuple[bytes, bytes]], produced: Sequence[float]) -> None:
        """Send the records; then every valid event's record (or its coalesced one) is out."""
        await send_records(compat.kafka_producer(app.producer), settings.recs_topic, records)
        metrics.observe_sent(produced)

    async def dead_letter(message: steps.Message, exc: InvalidEvent) -> None:
        """The original bytes, with why and where from in the headers."""
        headers = steps.dead_letter_headers(message, exc)
        await app.producer.send(settings.dlq_topic, message.key, message.value, None, None, headers)
        stats.dead_lettered[exc.reason] += 1

    register_views(app, users, settings, recommender, stats, metrics)
    return app
