"""Prometheus metrics of one worker, served on its web port at ``/metrics``.

Counters are read from :class:`PipelineStats` at scrape time (one source of truth for ``/stats/``
and Prometheus); latencies are histograms observed on the hot path. Each app has its own
registry, so several workers in one process (tests) never share series.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain"  # Prometheus text format 0.0.4 (aiohttp wants the charset apart)

# Event produce time -> recommendation sent: sub-millisecond to tens of seconds under backlog.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCHES_KEPT = 1_000  # the batches the console's p50 and p99 are over
SWAPS_KEPT = 20  # the model swaps the console lists
SCORING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


@dataclass
class PipelineStats:
    """What a worker has done since it started; served on ``/stats/`` and ``/metrics``."""

    events_in: int = 0
    applied: int = 0
    duplicates_skipped: int = 0
    repeated_ids: int = 0
    unknown_items: int = 0
    recommendations_out: int = 0
    users_deleted: int = 0
    users_expired: int = 0
    compactions: int = 0
    rebased: int = 0  # users whose vector was rebuilt in a newly served model's space
    model_swaps: int = 0  # announced versions now served
    models_refused: int = 0  # announced versions refused (corrupt, mismatched, failed canary)
    item_events_applied: int = 0  # events counted into the item statistics
    item_events_duplicates: int = 0  # by-item records counted before (a replay, sent again)
    item_vectors_learned: int = 0  # vectors this worker's item path moved and sent
    item_vectors_applied: int = 0  # learned item vectors now scored with (from every worker)
    item_vectors_refused: int = 0  # unreadable, or of another dimension or model space
    content_vectors_applied: int = 0  # new catalog items scored from their content vector
    content_vectors_refused: int = 0  # unreadable, or with no projection or another dimension
    items_explored: int = 0  # slots of records that showed an explored item (source explore/new)
    trending_lists: int = 0  # records of cold users that got the trending fallback
    items_known: int = 0  # items whose statistics this worker has read (exploration, trending)
    dead_lettered: Counter = field(default_factory=Counter)
    next_offsets: dict[int, int] = field(default_factory=dict)  # events partition -> next offset
    # the newest batches' seconds, received to committed, and the newest model swaps: the console's
    batch_seconds: deque = field(default_factory=lambda: deque(maxlen=BATCHES_KEPT))
    swaps: deque = field(default_factory=lambda: deque(maxlen=SWAPS_KEPT))

    def swapped(self, version: str, kind: str, was: str) -> None:
        """A model version is served from now on (wall-clock ms: when, not event time)."""
        self.model_swaps += 1
        self.swaps.append({"version": version, "kind": kind, "was": was,
                           "at_ms": int(time.time() * 1000)})  # fmt: skip

    def batch_quantiles(self) -> dict[str, float | None]:
        """p50 and p99 of the newest batches' seconds (None before the first)."""
        if not self.batch_seconds:
            return {"p50": None, "p99": None}
        ordered = sorted(self.batch_seconds)
        return {name: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
                for name, q in (("p50", 0.5), ("p99", 0.99))}  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "events_in": self.events_in,
            "applied": self.applied,
            "duplicates_skipped": self.duplicates_skipped,
            "repeated_ids": self.repeated_ids,
            "unknown_items": self.unknown_items,
            "recommendations_out": self.recommendations_out,
            "users_deleted": self.users_deleted,
            "users_expired": self.users_expired,
            "compactions": self.compactions,
            "rebased": self.rebased,
            "model_swaps": self.model_swaps,
            "models_refused": self.models_refused,
            "item_events_applied": self.item_events_applied,
            "item_events_duplicates": self.item_events_duplicates,
            "item_vectors_learned": self.item_vectors_learned,
            "item_vectors_applied": self.item_vectors_applied,
            "item_vectors_refused": self.item_vectors_refused,
            "content_vectors_applied": self.content_vectors_applied,
            "content_vectors_refused": self.content_vectors_refused,
            "items_explored": self.items_explored,
            "trending_lists": self.trending_lists,
            "items_known": self.items_known,
            "dead_lettered": dict(self.dead_lettered),
            "batch_seconds": self.batch_quantiles(),
            "swaps": list(self.swaps),
        }


class WorkerMetrics(Collector):
    """The registry a worker serves. ``lag`` and ``users`` are read when scraped."""

    def __init__(
        self,
        stats: PipelineStats,
        model: Callable[[], dict[str, str]],
        lag: Callable[[], dict[int, int]],
        users: Callable[[], int],
    ) -> None:
        self.stats, self.model, self.lag, self.users = stats, model, lag, users
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.latency = Histogram(
            "streamrec_end_to_end_latency_seconds",
            "From the event's Kafka timestamp (when it was produced) to its recommendation "
            "being sent",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scoring = Histogram(
            "streamrec_scoring_seconds",
            "Scoring and top-K of one micro-batch (one matrix product)",
            buckets=SCORING_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "streamrec_batch_events",
            "Events per micro-batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=self.registry,
        )

    def observe_sent(self, produced: Iterable[float]) -> None:
        """End-to-end latency of events produced at ``produced`` (Kafka timestamps, s) whose
        records were just sent."""
        sent_at = time.time()
        for produced_ts in produced:
            self.latency.observe(max(0.0, sent_at - produced_ts))

    def collect(self) -> Iterator[Any]:
        stats = self.stats
        for name, value, doc in (
            ("events_in", stats.events_in, "Events consumed"),
            ("events_applied", stats.applied, "Events applied to user state"),
            ("duplicates_skipped", stats.duplicates_skipped, "Replayed events already applied"),
            ("repeated_ids", stats.repeated_ids, "Events skipped as a repeated event_id"),
            ("users_deleted", stats.users_deleted, "Users forgotten on a delete request"),
            ("users_expired", stats.users_expired, "Users evicted by the TTL (event time)"),
            ("unknown_items", stats.unknown_items, "Events for items the model does not know"),
            ("recommendations_out", stats.recommendations_out, "Recommendation records sent"),
            ("users_rebased", stats.rebased, "User vectors rebuilt in a newly served model"),
            ("model_swaps", stats.model_swaps, "Announced model versions now served"),
            ("models_refused", stats.models_refused, "Announced model versions refused"),
            ("item_vectors_learned", stats.item_vectors_learned,
             "Item vectors moved online by this worker's item path"),
            ("item_vectors_applied", stats.item_vectors_applied,
             "Online item vectors taken into scoring"),
            ("item_vectors_refused", stats.item_vectors_refused,
             "Online item vectors refused (unreadable, other dimension or model)"),
            ("content_vectors_applied", stats.content_vectors_applied,
             "New catalog items scored from their content vector"),
            ("content_vectors_refused", stats.content_vectors_refused,
             "Content vectors refused (unreadable, no projection, other dimension)"),
            ("items_explored", stats.items_explored, "Record slots showing an explored item"),
            ("trending_lists", stats.trending_lists, "Records of cold users given trending items"),
        ):
            yield CounterMetricFamily(f"streamrec_{name}", doc, value=value)
        dead = CounterMetricFamily(
            "streamrec_dead_lettered", "Events sent to the dead-letter topic", labels=["reason"]
        )
        for reason, count in sorted(stats.dead_lettered.items()):
            dead.add_metric([reason], count)
        yield dead
        lag = GaugeMetricFamily(
            "streamrec_consumer_lag",
            "Events in the partition not yet processed (high watermark - next offset)",
            labels=["partition"],
        )
        for partition, value in sorted(self.lag().items()):
            lag.add_metric([str(partition)], value)
        yield lag
        yield GaugeMetricFamily(
            "streamrec_table_keys_estimate",
            "Users in this worker's table partitions by RocksDB's estimate-num-keys (no scan; "
            "overwrites not yet compacted count again)",
            value=self.users(),
        )
        yield InfoMetricFamily("streamrec_model", "The model artifact served", value=self.model())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
