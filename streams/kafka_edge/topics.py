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
    """Configs the pipeline creates its topics with: the table's changelog is compacted (the
    newest state per user, and a deleted user's tombstone, is what survives), and the dead-letter
    topic keeps ``STREAMREC_DLQ_RETENTION`` (it holds users' raw input: not forever by default)."""
    retention = settings.dlq_retention
    return {
        f"{settings.app_id}-{USER_TABLE}-changelog": {"cleanup.policy": "compact"},
        f"{settings.app_id}-{ITEM_TABLE}-changelog": {"cleanup.policy": "compact"},
        settings.model_updates_topic: {"cleanup.policy": "compact"},
        settings.item_vectors_topic: {"cleanup.policy": "compact"},  # each item's newest
        settings.items_topic: {"cleanup.policy": "compact"},  # each item's newest record
        settings.content_topic: {"cleanup.policy": "compact"},  # each item's newest vector
        settings.dlq_topic: {
            "retention.ms": "-1" if retention is None or math.isinf(retention)
            else str(int(retention * 1000))
        },
    }


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
