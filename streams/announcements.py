"""Model versions announced on the ``model-updates`` topic: what an announcement says, and how
one is published and read back.

An announcement names a verified artifact (version, kind, path, the manifest's sha256, parent
version, metrics). The trainer and ``streamrec models promote VERSION`` publish them (an older
version is a rollback); every worker follows the topic (streams/worker/followers.py) and serves
the newest announced version. The topic is compacted on one key, so what survives is the
version to serve. Outside streams/worker/ because the trainer and the CLI publish and read it
without running a worker.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import BaseModel, ValidationError

from core.seal import Seal, verified
from models.artifact import MANIFEST_FILE, read_metrics, verify_artifact
from streams.kafka_edge.security import kafka_python_kwargs
from streams.kafka_edge.tansu import broker_is_tansu
from streams.settings import Settings

log = logging.getLogger(__name__)

ANNOUNCEMENT_KEY = b"serve"  # one key: compaction keeps the version to serve


class Announcement(BaseModel):
    """A model version to serve (the value on the model-updates topic, as JSON)."""

    version: str
    kind: str
    path: str
    sha256: str  # of the artifact's manifest, which hashes every file it serves
    parent: str | None = None
    metrics: dict[str, Any] = {}
    announced_at_ms: int = 0


def announcement_of(path: Path, parent: str | None = None) -> Announcement:
    """What announcing the artifact at ``path`` says; the artifact is verified first."""
    config = verify_artifact(path)
    return Announcement(
        version=config["version"],
        kind=config["kind"],
        path=str(path.resolve()),
        sha256=hashlib.sha256((path / MANIFEST_FILE).read_bytes()).hexdigest(),
        parent=parent or config.get("parent"),
        metrics=read_metrics(path),
        announced_at_ms=int(time.time() * 1000),
    )


def announce(settings: Settings, announcement: Announcement, timeout: float = 30.0) -> None:
    """Send ``announcement`` and wait until the broker has it."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, **kafka_python_kwargs(settings))
    value, seal = announcement.model_dump_json().encode(), settings.seal
    headers = seal.headers(settings.model_updates_topic, ANNOUNCEMENT_KEY, value) if seal else []
    try:
        producer.send(settings.model_updates_topic, key=ANNOUNCEMENT_KEY, value=value,
                      headers=headers).get(timeout)  # fmt: skip
    finally:
        producer.close()


def valid_of(records: Iterable[Any], seal: Seal | None = None) -> list[Announcement]:
    """The announcements among ``records``, in order (with a ``seal``, only those with the
    cluster's MAC); the rest logged and skipped."""
    valid = []
    records, unsigned = verified(seal, list(records))
    if unsigned:
        log.warning("%d announcements without a valid MAC; skipped", len(unsigned))
    for record in records:
        try:
            valid.append(Announcement.model_validate_json(record.value or b""))
        except ValidationError:
            log.warning("not an announcement at offset %d; skipped", record.offset)
    return valid


def newest_announcement(
    settings: Settings, quiet_s: float = 0.5, within_s: float = 60.0
) -> Announcement | None:
    """The last valid announcement on the topic (:func:`announcements`)."""
    said = announcements(settings, quiet_s, within_s)
    return said[-1] if said else None


def announcements(settings: Settings, quiet_s: float = 0.5, within_s: float = 60.0
                  ) -> list[Announcement]:  # fmt: skip
    """The valid announcements on the topic in log order, read from its start to its end (for
    at most ``within_s``, then what was read, said in the log); on Tansu, whose
    ListOffsets(latest) undercounts, until it has been quiet for ``quiet_s`` instead
    (streams/kafka_edge/tansu.py)."""
    kwargs = kafka_python_kwargs(settings)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                             group_id=None, **kwargs)  # fmt: skip
    said: list[Announcement] = []
    try:
        partition = TopicPartition(settings.model_updates_topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        if broker_is_tansu(settings.bootstrap, settings.broker_engine, kwargs):
            read_to = None  # read until quiet
        else:
            read_to = consumer.end_offsets([partition])[partition]
        deadline = time.monotonic() + within_s
        while read_to is None or consumer.position(partition) < read_to:
            records = consumer.poll(timeout_ms=int(quiet_s * 1000))
            if not records and read_to is None:
                break
            said += valid_of([r for batch in records.values() for r in batch], settings.seal)
            if time.monotonic() > deadline:
                log.warning("%s not read to its end within %.0fs; the newest read is served",
                            partition.topic, within_s)  # fmt: skip
                break
    finally:
        consumer.close()
    return said
