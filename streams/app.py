"""The streaming pipeline, top to bottom: events topic -> agent -> user table -> model -> topic.

The agent takes micro-batches (``stream.take_events``), groups them by user, applies each user's
events to the decayed interest state from the RocksDB-backed table, scores every touched user in
one matrix product, and sends the top-K records as whole record batches (streams/publish.py) and
dead letters through the app's producer.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import faust
import numpy as np
import orjson
from faust.streams import _current_event

from models.scoring import Recommendation, Recommender
from streams import compat
from streams.broker import USER_TABLE
from core.codec import CorruptState, decode_state, encode_state
from core.events import Event, InvalidEvent, parse_event
from core.interest import UserState, apply_event, decay_factor, event_weight
from streams.metrics import CONTENT_TYPE, PipelineStats, WorkerMetrics
from streams.publish import send_records
from streams.settings import Settings

log = logging.getLogger(__name__)

RECORD_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An event and the user's state right after it: what its record is scored from."""

    event: Event
    position: tuple[int, int]
    state: UserState


def apply_user_events(
    state: UserState,
    events: Sequence[tuple[Event, tuple[int, int]]],
    item_vector: Callable[[str], np.ndarray | None],
    settings: Settings,
) -> tuple[UserState, list[Snapshot], int]:
    """Apply one user's events in arrival order; return (state, a snapshot per event, applied).

    An event at or before the stored position was applied before a crash: it is not applied
    again, but it still gets a snapshot (of the current state), because its record may have
    been lost with the crash. So state is exactly-once and records at-least-once.
    """
    snapshots = []
    applied = 0
    for event, position in events:
        if not state.has_applied(*position):
            weight = event_weight(event, settings.event_weights, settings.rating_center)
            state = apply_event(
                state,
                event,
                item_vector(event.item_id),
                weight,
                settings.half_life_ms,
                settings.history_len,
                position,
                settings.half_life_events,
            )
            applied += 1
        snapshots.append(Snapshot(event, position, state))
    return state, snapshots, applied


def score(recommender: Recommender, states: Sequence[UserState], k: int) -> list[Recommendation]:
    """Top-K for a batch of user states: one matrix product."""
    return recommender.top_k(
        np.stack([s.vector for s in states]),
        [s.recent for s in states],
        k,
        [s.recent_weights for s in states],
    )


def record_items(rec: Recommendation) -> list[dict[str, Any]]:
    return [
        {
            "item_id": item,
            "score": round(item_score, 6),
            "because": [{"item_id": i, "weight": w} for i, w in because],
        }
        for item, item_score, because in zip(rec.item_ids, rec.scores, rec.because)
    ]


def recommendation_record(snapshot: Snapshot, rec: Recommendation, model_version: str) -> bytes:
    """The output record, schema v1 (see README)."""
    event = snapshot.event
    return orjson.dumps(
        {
            "user_id": event.user_id,
            "items": record_items(rec),
            "model_version": model_version,
            "event_ts": event.ts,
            "emitted_at": int(time.time() * 1000),
            "trigger": {
                "event_id": event.event_id,
                "partition": snapshot.position[0],
                "offset": snapshot.position[1],
            },
            "schema_version": RECORD_SCHEMA_VERSION,
        }
    )


def consumer_lag(app: faust.App, topic: str, stats: PipelineStats) -> dict[int, int]:
    """Per partition of ``topic`` this worker owns and has read from: high watermark minus the
    next offset to process."""
    lag = {}
    consumer = app.consumer
    for tp in consumer.assignment():
        if tp.topic == topic and tp.partition in stats.next_offsets:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag[tp.partition] = max(0, highwater - stats.next_offsets[tp.partition])
    return lag


def table_size(table: faust.Table) -> int:
    """Keys in the table's local RocksDB partitions, by RocksDB's own estimate (no scan)."""
    dbs = getattr(table.data, "_dbs", {})  # faust's RocksDB store: partition -> rocksdict.Rdict
    return sum(db.property_int_value("rocksdb.estimate-num-keys") or 0 for db in dbs.values())


def _bind(event: faust.types.EventT) -> None:
    """Make ``event`` Faust's current event.

    A Faust table routes each read and write (RocksDB partition and changelog partition) by the
    current event, and ``take_events`` leaves only the batch's last one current. Binding each
    user's own event keeps state in the partition its events come from.
    """
    _current_event.set(weakref.ref(event))


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
    stats = PipelineStats()
    metrics = WorkerMetrics(
        stats,
        model=lambda: {"version": recommender.version, "kind": recommender.kind},
        lag=lambda: consumer_lag(app, settings.events_topic, stats),
        users=lambda: table_size(users),
    )

    @app.agent(events_topic)
    async def recommend(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            stats.events_in += len(batch)
            metrics.batch_size.observe(len(batch))
            by_user: dict[str, list[tuple[Event, tuple[int, int]]]] = {}
            last_event_of: dict[str, faust.types.EventT] = {}
            dead: list[tuple[faust.types.EventT, InvalidEvent]] = []
            produced: list[float] = []  # Kafka timestamps (s) of the valid events
            for item in batch:
                message = item.message
                stats.next_offsets[message.partition] = message.offset + 1
                try:
                    event = parse_event(message.value)
                    if message.key is not None and message.key != event.user_id.encode():
                        raise InvalidEvent(
                            "key_mismatch", "message key must be the user_id (partitioning)"
                        )
                except InvalidEvent as exc:
                    dead.append((item, exc))
                    continue
                by_user.setdefault(event.user_id, []).append(
                    (event, (message.partition, message.offset))
                )
                produced.append(message.timestamp)
                last_event_of[event.user_id] = item
                if event.item_id not in recommender.index:
                    stats.unknown_items += 1  # counted, scored with no vector contribution

            touched: list[Snapshot] = []
            applied_in_batch = 0
            for user_id, user_events in by_user.items():
                _bind(last_event_of[user_id])
                key = user_id.encode()
                raw = users.get(key)
                state = UserState.empty(recommender.dim)
                if raw is not None:
                    try:
                        state = decode_state(raw)
                    except CorruptState:
                        log.exception("user %s: unreadable state, starting afresh", user_id)
                state, snapshots, applied = apply_user_events(
                    state, user_events, recommender.item_vector, settings
                )
                stats.duplicates_skipped += len(user_events) - applied
                if applied:
                    users[key] = encode_state(state)
                applied_in_batch += applied
                touched.extend(snapshots[-1:] if settings.emit == "coalesce" else snapshots)

            producer = app.producer
            if touched:
                scoring_started = time.perf_counter()
                recs = score(recommender, [s.state for s in touched], settings.top_k)
                metrics.scoring.observe(time.perf_counter() - scoring_started)
                version = recommender.version
                records = [
                    (snapshot.event.user_id.encode(), recommendation_record(snapshot, rec, version))
                    for snapshot, rec in zip(touched, recs)
                ]
                await send_records(producer._ensure_producer(), settings.recs_topic, records)
                sent_at = time.time()  # every valid event's record (or its coalesced one) is out
                for produced_ts in produced:
                    metrics.latency.observe(max(0.0, sent_at - produced_ts))
            # Counted once the batch's records are out, so applied == events in means done.
            stats.applied += applied_in_batch
            stats.recommendations_out += len(touched)
            for item, exc in dead:
                message = item.message
                source = f"{message.topic}/{message.partition}/{message.offset}"
                headers = [
                    ("streamrec.reason", exc.reason.encode()),
                    ("streamrec.detail", exc.detail.encode()),
                    ("streamrec.source", source.encode()),
                ]
                await producer.send(
                    settings.dlq_topic, message.key, message.value, None, None, headers
                )
                stats.dead_lettered[exc.reason] += 1

    @app.page("/stats/")
    async def stats_view(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        assignment = app.consumer.assignment() if app.consumer else set()
        return web.json(
            {
                **stats.as_dict(),
                "model_version": recommender.version,
                "model_kind": recommender.kind,
                "assigned": sorted(
                    tp.partition for tp in assignment if tp.topic == settings.events_topic
                ),
                "rebalancing": bool(app.rebalancing),
                "recovered": app.tables.recovery.completed.is_set(),
            }
        )

    def stored_state(user_id: str) -> UserState | None:
        raw = users.get(user_id.encode())
        return None if raw is None else decode_state(raw)

    def unknown(web: faust.web.Web, user_id: str) -> faust.web.Response:
        return web.json({"error": f"unknown user {user_id}"}, status=404)

    # The views below answer on the worker that owns the user's partition; any other worker
    # forwards the request there (``table_route``), so clients may ask any worker.
    @app.page("/users/{user_id}/recommendations")
    class RecommendationsView(faust.web.View):
        """The user's top-K now: what the last record said, scored from the stored state."""

        @app.table_route(table=users, match_info="user_id")
        async def get(self, request: faust.web.Request, user_id: str) -> faust.web.Response:
            state = stored_state(user_id)
            if state is None:
                return unknown(self, user_id)
            [rec] = score(recommender, [state], settings.top_k)
            return self.json(
                {
                    "user_id": user_id,
                    "items": record_items(rec),
                    "model_version": recommender.version,
                    "last_event_ts": state.last_ts,
                    "position": list(state.position),
                }
            )

    @app.page("/users/{user_id}/interest")
    class InterestView(faust.web.View):
        """The decayed interest vector at ``?at=`` (epoch ms; default now) and its raw state."""

        @app.table_route(table=users, match_info="user_id")
        async def get(self, request: faust.web.Request, user_id: str) -> faust.web.Response:
            state = stored_state(user_id)
            if state is None:
                return unknown(self, user_id)
            try:
                at = int(request.query.get("at", time.time() * 1000))
            except ValueError:
                return self.json({"error": "at must be epoch milliseconds"}, status=400)
            factor = (
                1.0  # the clock is the user's own events: nothing decays between them
                if settings.half_life_events is not None
                else decay_factor(max(0, at - state.last_ts), settings.half_life_ms)
            )
            return self.json(
                {
                    "user_id": user_id,
                    "at": at,
                    "decay": factor,
                    "interest": (state.vector * np.float32(factor)).tolist(),
                    "vector": state.vector.tolist(),  # as stored, at last_ts
                    "last_ts": state.last_ts,
                    "count": state.count,
                    "recent": list(state.recent),
                    "recent_weights": list(state.recent_weights),
                    "position": list(state.position),
                }
            )

    @app.page("/metrics")
    async def metrics_view(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(metrics.exposition(), content_type=CONTENT_TYPE)

    return app
