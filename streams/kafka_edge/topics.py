"""The pipeline's topics: their names, partition counts and configs, and creating them.

Every process reads its topics' shape from here (the worker, the trainer, the CLI's topic
commands, the local tools), so a topic is declared once. Plain kafka-python admin, no Faust.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.kafka_edge.security import kafka_python_kwargs
from streams.settings import Settings

# A name that persists: the changelog topic is "<app_id>-user-interest-changelog" and the RocksDB
# directory is named after it, so renaming it orphans every user's state. Declared here, not in
# streams.worker.app, so topic admin does not import Faust and Torch.
USER_TABLE = "user-interest"
ITEM_TABLE = "item-stats"


class BrokerError(RuntimeError):
    """The broker could not be started or reached, or a topic has the wrong shape."""


def admin(
    bootstrap: str, timeout: float = 30.0, security: Mapping[str, Any] | None = None
) -> KafkaAdminClient:
    """An admin client; kafka-python retries the bootstrap until ``timeout`` passes.
    ``security`` is :func:`~streams.kafka_edge.security.kafka_python_kwargs` (PLAINTEXT when
    None)."""
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            bootstrap_timeout_ms=int(timeout * 1000),
            request_timeout_ms=5000,
            **(security or {}),
        )
    except KafkaError as exc:
        hint = ""
        if (security or {}).get("sasl_mechanism"):  # kafka-python sees the broker hang up
            hint = (f"; a broker that refuses SASL {security['sasl_mechanism']} credentials "
                    "closes the connection, which reads the same: check the username and password")
        raise BrokerError(
            f"no Kafka broker answered at {bootstrap} within {timeout:.0f}s: {exc}{hint}"
        ) from exc


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Every topic the pipeline uses and its partition count (all co-partitioned by user, but
    the model announcements: one partition, every worker reads all of it; and those keyed by
    item, partitioned alike among themselves)."""
    topics = {
        settings.events_topic: settings.partitions,
        settings.items_topic: settings.partitions,
        settings.content_topic: settings.partitions,
        settings.recs_topic: settings.partitions,
        settings.dlq_topic: settings.partitions,
        f"{settings.app_id}-{USER_TABLE}-changelog": settings.partitions,
        settings.model_updates_topic: 1,
    }
    if settings.item_stats:  # partitioned by item, the item table's changelog with them
        topics[settings.item_events_topic] = settings.partitions
        topics[f"{settings.app_id}-{ITEM_TABLE}-changelog"] = settings.partitions
    if settings.item_learning:
        topics[settings.item_vectors_topic] = settings.partitions
    return topics


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Configs the pipeline creates its topics with. The tables' changelogs are compacted (the
    newest state per key survives) within ``STREAMREC_FORGET_WITHIN``: a deleted user's old
    states within half of it, the tombstone within the other half. The recommendations and the
    dead-letter topics (users' records and raw input) keep ``STREAMREC_RECS_RETENTION`` and
    ``STREAMREC_DLQ_RETENTION``, in segments of a tenth of it, so a record leaves within about
    1.1x the retention."""
    changelog = {"cleanup.policy": "compact", **_compacted_within(settings.forget_within)}
    return {
        f"{settings.app_id}-{USER_TABLE}-changelog": changelog,
        f"{settings.app_id}-{ITEM_TABLE}-changelog": changelog,
        settings.model_updates_topic: {"cleanup.policy": "compact"},
        settings.item_vectors_topic: {"cleanup.policy": "compact"},  # each item's newest
        settings.items_topic: {"cleanup.policy": "compact"},  # each item's newest record
        settings.content_topic: {"cleanup.policy": "compact"},  # each item's newest vector
        settings.recs_topic: _retained(settings.recs_retention),
        settings.dlq_topic: _retained(settings.dlq_retention),
    }


def _compacted_within(seconds: float) -> dict[str, str]:
    """A compacted topic's configs that bound how long a superseded value and a tombstone stay
    (the broker rolls a segment whose records are older than ``max.compaction.lag.ms`` at its
    next write, so a partition that receives none keeps its last segment)."""
    if math.isinf(seconds):
        return {}
    half = str(max(1, int(seconds * 500)))
    return {"max.compaction.lag.ms": half, "delete.retention.ms": half}


def _retained(seconds: float | None) -> dict[str, str]:
    """A topic's configs that delete a record about ``seconds`` after it was written (a
    segment goes once its newest record is past the retention: segments of a tenth of it)."""
    if seconds is None or math.isinf(seconds):
        return {"retention.ms": "-1"}
    ms = int(seconds * 1000)
    return {"retention.ms": str(ms), "segment.ms": str(max(1, ms // 10))}


def _described(client: KafkaAdminClient, wanted: dict[str, int], deadline: float) -> dict:
    """Each topic's partition count as the broker describes it. Apache Kafka answers a topic
    just created with no partitions until its metadata has spread, so a topic described with
    none is asked about again until ``deadline``; a count that differs is the answer."""
    while True:
        found = {t["name"]: len(t["partitions"]) for t in client.describe_topics(list(wanted))}
        if all(found.get(name) for name in wanted) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)  # polling the broker's metadata, within the deadline


def ensure_topics(settings: Settings, timeout: float = 30.0) -> dict[str, int]:
    """Create the pipeline's topics, or check existing ones have the partitions we expect.

    Brokers that auto-create topics (Tansu uses 4 partitions) would otherwise give the events
    topic and the table's changelog different partition counts, which breaks co-partitioning.
    """
    wanted = topic_partitions(settings)
    configs = topic_configs(settings)
    client = admin(settings.bootstrap, timeout, kafka_python_kwargs(settings))
    try:
        new = [
            NewTopic(
                name,
                num_partitions=count,
                replication_factor=settings.replication,
                topic_configs=configs.get(name, {}),
            )
            for name, count in wanted.items()
        ]
        for topic in new:
            try:
                client.create_topics([topic], raise_errors=True)
            except TopicAlreadyExistsError:
                pass
        found = _described(client, wanted, time.monotonic() + timeout)
    finally:
        client.close()
    wrong = {name: found.get(name) for name, count in wanted.items() if found.get(name) != count}
    if wrong:
        raise BrokerError(
            f"topics exist with the wrong partition count {wrong}; expected {wanted}. "
            "Delete them or set STREAMREC_PARTITIONS to match."
        )
    return wanted
