"""The runs bench/throughput.py measures: each a pipeline configuration or a pass-through
ceiling, and which runs are each other's twins when the cost of exactly-once is read."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.settings import Settings


@dataclass(frozen=True)
class Run:
    name: str
    kind: str  # "pipeline" or a bench/passthrough.py BENCH_MODE
    workers: int = 1
    partitions: int = 1
    env: dict[str, str] = field(default_factory=dict)
    backlog: int = 0  # events queued before the workers start (a drain), instead of --events
    peer_guarantee: str = "at-least-once"  # Quix Streams' processing_guarantee


RUNS = [
    Run("faust pass-through, topic.send per message", "faust-naive"),
    Run("faust pass-through, take_events + producer.send", "faust-batched"),
    Run("quix streams pass-through (peer)", "quix"),
    Run("quix streams pass-through (peer), exactly-once", "quix", peer_guarantee="exactly-once"),
    Run("pipeline, a record per event", "pipeline", env={"emit": "every"}),
    Run("pipeline, a record per event, at-least-once", "pipeline",
        env={"emit": "every", "processing_guarantee": "at_least_once"}),
    Run("pipeline, a record per event, at-least-once, exactly-once's batch size", "pipeline",
        env={"emit": "every", "processing_guarantee": "at_least_once",
             "batch_size": str(Settings().max_batch)}),
    Run("pipeline, ranker and explanations off", "pipeline",
        env={"emit": "every", "rerank_candidates": "0"}),
    Run("pipeline, item statistics off", "pipeline",
        env={"emit": "every", "item_stats": "false"}),
    Run("pipeline, online item learning on", "pipeline",
        env={"emit": "every", "item_learning": "true"}),
    Run("pipeline, thompson exploring 1 of 10 slots", "pipeline",
        env={"emit": "every", "explore": "thompson"}),
    Run("pipeline, MMR diversity (lambda 0.7)", "pipeline",
        env={"emit": "every", "mmr_lambda": "0.7"}),
    Run("pipeline, ranker on, 3 explanations per item", "pipeline",
        env={"emit": "every", "explain": "3"}),
    Run("pipeline, a record per user per batch", "pipeline", env={"emit": "coalesce"}),
    Run("pipeline, 1 worker, 2 partitions", "pipeline", partitions=2, env={"emit": "every"}),
    Run("pipeline, 2 workers, 2 partitions", "pipeline", 2, 2, env={"emit": "every"}),
    Run("pipeline, 2 workers, 2 partitions, standby replicas off", "pipeline", 2, 2,
        env={"emit": "every", "standby_replicas": "0"}),
    Run("pipeline, backlog drain (100,000 queued before start)", "pipeline",
        env={"emit": "every"}, backlog=100_000),
]


# each exactly-once run against its at-least-once twin (the cost of exactly-once), with the
# defaults of each guarantee, and the pipeline's also at the same batch size
PAIRS = {RUNS[3].name: RUNS[2], RUNS[4].name: RUNS[5]}
SAME_BATCH = {RUNS[4].name: RUNS[6]}
