"""Model versions announced on the ``model-updates`` topic, and the thread that follows it.

An announcement names a verified artifact (version, kind, path, the manifest's sha256, parent
version, metrics). Every worker reads the whole topic itself, with no consumer group (a group
would hand its one partition to one worker), and serves the newest announced version: at start
it reads to the end and takes the last one, then each new one as it comes. Loading and checking
(:func:`streams.worker.serving.load_checked`) run in this thread, off the event loop; the swap itself
is handed to the loop, between micro-batches. ``streamrec models promote VERSION`` announces a
version by hand, and an older one is a rollback. The topic is compacted on one key, so what
survives is the version to serve.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import BaseModel, ValidationError

from models.artifact import MANIFEST_FILE, read_metrics, verify_artifact
from models.scoring import Recommender
from streams.kafka_edge.security import kafka_python_kwargs
from streams.worker.serving import ModelRefused, Serving, load_checked
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
    try:
        producer.send(settings.model_updates_topic, key=ANNOUNCEMENT_KEY,
                      value=announcement.model_dump_json().encode()).get(timeout)  # fmt: skip
    finally:
        producer.close()


def newest_announcement(settings: Settings, quiet_s: float = 0.5) -> Announcement | None:
    """The last valid announcement on the topic, read from its start until it has been quiet
    for ``quiet_s`` (read, not asked: Tansu's ListOffsets(latest) undercounts)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                             group_id=None, **kafka_python_kwargs(settings))  # fmt: skip
    newest = None
    try:
        partition = TopicPartition(settings.model_updates_topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        while records := consumer.poll(timeout_ms=int(quiet_s * 1000)):
            for record in (r for batch in records.values() for r in batch):
                try:
                    newest = Announcement.model_validate_json(record.value or b"")
                except ValidationError:
                    log.warning("not an announcement at offset %d; skipped", record.offset)
    finally:
        consumer.close()
    return newest


def starting_model(settings: Settings, configured: Recommender) -> Recommender:
    """What a starting worker serves: the newest announced version if it loads and checks,
    else the configured artifact, so a restart does not serve an older model for a moment
    and rebase its users twice."""
    announced = newest_announcement(settings)
    if announced is None or announced.version == configured.version:
        return configured
    try:
        return load_checked(Path(announced.path), announced.version, settings.blend)
    except ModelRefused as exc:
        log.error("announced model %s refused, serving %s: %s", announced.version,
                  configured.version, exc)  # fmt: skip
        return configured


def consumer_at_start(settings: Settings, topic: str, partitions: int, stopping: threading.Event,
                      retry_s: float, on_failure: Callable[[], None] = lambda: None,
                      **options: Any) -> KafkaConsumer | None:  # fmt: skip
    """A consumer of every partition of ``topic`` from its start, with no group, once the broker
    answers (None if ``stopping`` is set first): a worker that starts before its broker, or
    loses it for a while, follows when it is back instead of never again."""
    while not stopping.is_set():
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=settings.bootstrap, enable_auto_commit=False, group_id=None,
                bootstrap_timeout_ms=max(1_000, int(retry_s * 1000)),
                **kafka_python_kwargs(settings), **options)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - NoBrokersAvailable, a DNS failure, ...
            on_failure()
            log.warning("%s: no broker yet (%s); retrying in %.0f s", topic, exc, retry_s)
            stopping.wait(retry_s)
            continue
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        return consumer
    return None


class Follower(threading.Thread):
    """Reads the model-updates topic from its start, for as long as the worker runs."""

    def __init__(self, settings: Settings, serving: Serving, loop: asyncio.AbstractEventLoop,
                 retry_s: float = 5.0) -> None:  # fmt: skip
        super().__init__(name="model-updates", daemon=True)
        self.settings = settings
        self.serving = serving
        self.loop = loop
        self.retry_s = retry_s
        self.stopping = threading.Event()
        self.connect_failures = 0

    def connected(self) -> KafkaConsumer | None:
        """A consumer at the topic's start, once the broker answers (None if stopped first)."""
        return consumer_at_start(self.settings, self.settings.model_updates_topic, 1,
                                 self.stopping, self.retry_s, self._failed)  # fmt: skip

    def _failed(self) -> None:
        self.connect_failures += 1

    def run(self) -> None:
        consumer = self.connected()
        if consumer is None:
            return
        try:
            while not self.stopping.is_set():
                records = [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
                if records:
                    self.offer(records[-1].value)  # only the newest of a backlog is served
        except Exception:  # noqa: BLE001 - the worker keeps serving what it has
            log.exception("model-updates follower stopped; the current model keeps serving")
        finally:
            consumer.close()

    def offer(self, value: bytes | None) -> None:
        try:
            announcement = Announcement.model_validate_json(value or b"")
        except ValidationError as exc:
            self.loop.call_soon_threadsafe(self.serving.refuse, "?", f"not an announcement: {exc}")
            return
        if announcement.version == self.serving.recommender.version:
            return
        try:
            recommender = load_checked(Path(announcement.path), announcement.version,
                                       self.settings.blend)  # fmt: skip
        except ModelRefused as exc:
            self.loop.call_soon_threadsafe(self.serving.refuse, announcement.version, str(exc))
            return
        self.loop.call_soon_threadsafe(self.serving.swap, recommender, announcement.parent)
