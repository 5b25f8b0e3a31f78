"""The lifelong trainer (``streamrec trainer``): the model keeps learning while the workers serve.

It reads the events topic in its own consumer group, into a replay buffer (the newest events and
a uniform sample of older ones, :class:`models.replay.ReplayBuffer`): the events the workers
apply, by their own check (what they dead-letter is left out), and a user's delete request
drops all of that user's events from the buffer. Every ``every_events``
new events, or ``every_s`` seconds if any came, it continues the version it last announced with
the warm-start update the evaluator measures (:func:`models.update.update`): the new events'
examples in their users' context, plus ``replay`` examples drawn from the older ones so the
update does not forget. The new artifact goes to ``root/<version>`` (a directory the workers
read too: the compose file's ``models`` volume) and is announced on the model-updates topic
with its parent (streams/announcements.py); the workers check it and swap to it between
micro-batches (streams/worker/followers.py). The group's offsets are committed after each
announcement, so a restarted trainer goes on from the events its last version has not learned
yet.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from core.events import DELETE, InvalidEvent
from models.artifact import load_recommender, read_config
from models.promotion import GateConfig
from models.replay import ReplayBuffer
from models.train import TrainConfig
from models.update import update
from streams.announcements import Announcement, announce, announcement_of
from streams.trainer.promotion_gate import GateLog, GateMetrics
from streams.kafka_edge.security import kafka_python_kwargs
from streams.kafka_edge.transactions import read_isolation
from streams.settings import Settings
from streams.steps.parse import Fetched, parse_event_message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerConfig:
    """When the trainer updates and what it keeps."""

    root: Path  # where versions are written: root/<version>
    every_events: int = 1_000
    every_s: float = 60.0
    window: int = 100_000  # newest events kept
    reservoir: int = 20_000  # older events kept, a uniform sample
    replay: int = 5_000  # older examples replayed per update
    passes: int = 1
    gate: GateConfig | None = None  # judge each version on the logged lists before announcing


class Trainer:
    """Continues the model at ``start`` from the events topic; see the module docstring."""

    def __init__(self, settings: Settings, config: TrainerConfig, start: Path) -> None:
        self.settings, self.config = settings, config
        self.current = start
        started = read_config(start)
        self.version, self.kind = started["version"], started["kind"]
        self.buffer = ReplayBuffer(config.window, config.reservoir)
        self.new_positives = 0  # new events an update learns from (weight > 0)
        self.invalid = 0  # records that are no event (the workers dead-letter them)
        self.announced: list[Announcement] = []
        self.held: list[tuple[str, str]] = []  # versions the gate held back, and why
        self.metrics = GateMetrics()
        self.gate = GateLog(settings, load_recommender(start), config.gate) if config.gate \
            else None  # fmt: skip
        self.last_update = time.monotonic()
        self.next_due = config.every_events  # new events that make an update due

    def take(self, records: list[ConsumerRecord]) -> None:
        """Add a poll's events to the buffer: what the workers apply (what they dead-letter is
        left out, by the same check); a delete request drops the user's events from it."""
        events = []
        limits = (self.settings.max_future_skew_s * 1000.0, self.settings.max_abs_value)
        positioned = []
        for record in records:
            try:
                event = parse_event_message(Fetched.of(record), *limits)
            except InvalidEvent:
                self.invalid += 1
                continue
            positioned.append((event, (record.partition, record.offset)))
            if event.type == DELETE:
                self.buffer.extend(events)
                events = []
                self.buffer.forget(event.user_id)
                continue
            events.append(event)
        self.buffer.extend(events)
        self.new_positives += sum(self.settings.interest.weight(e) > 0 for e in events)
        if self.gate is not None:
            self.gate.take_events(positioned)

    def due(self) -> bool:
        waited = time.monotonic() - self.last_update >= self.config.every_s
        new = self.buffer.new_since_update
        return new >= self.next_due or (new > 0 and waited)

    def update(self) -> Announcement | None:
        """One version: trained, written, announced; None if the new events teach nothing yet
        (no user with an earlier event to learn a next item from), kept for the next try."""
        self.last_update = time.monotonic()
        staging = self.config.root / f".staging-{uuid.uuid4().hex[:8]}"
        train = TrainConfig(model=self.kind, recent_events=max(1, self.new_positives),
                            replay_examples=self.config.replay,
                            update_passes=self.config.passes)  # fmt: skip
        try:
            version, metrics = update(self.current, self.buffer.events(), self.settings.interest,
                                      train, staging, new_positives=self.new_positives)  # fmt: skip
        except ValueError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            # try again after as many new events (or every_s), not at every poll
            self.next_due = self.buffer.new_since_update + self.config.every_events
            log.info("no update yet: %s", exc)
            return None
        final = self.config.root / version
        if final.exists():  # the same version again: the same bytes
            shutil.rmtree(staging)
        else:
            staging.rename(final)
        if self.gate is not None and not self.passes_gate(final, version):
            self.next_due = self.buffer.new_since_update + self.config.every_events
            return None
        announcement = announcement_of(final, parent=self.version)
        announce(self.settings, announcement)
        log.info("announced %s (from %s): %d examples, %d replayed, %.1f s", version,
                 self.version, metrics["examples"], metrics["replayed_examples"],
                 metrics["train_seconds"])  # fmt: skip
        self.current, self.version = final, version
        self.buffer.updated()
        self.new_positives = 0
        self.next_due = self.config.every_events
        self.announced.append(announcement)
        self.metrics.announced.inc()
        return announcement

    def passes_gate(self, path: Path, version: str) -> bool:
        """Whether the gate lets the version at ``path`` serve; if not, it is held back (kept
        in ROOT, not announced: the next update continues the serving version, on these events
        and the ones after them), the reason logged and counted."""
        candidate = load_recommender(path)
        decision = self.gate.judge(candidate)
        self.metrics.snips.labels(self.version).set(
            decision.estimates.get("serving_snips", float("nan")))
        self.metrics.snips.labels(version).set(
            decision.estimates.get("candidate_snips", float("nan")))
        if not decision.promote:
            log.warning("held back %s (serving %s): %s: %s", version, self.version,
                        decision.reason, decision.detail)  # fmt: skip
            self.held.append((version, decision.reason))
            self.metrics.held.labels(decision.reason).inc()
            return False
        log.info("gate passed %s: %s", version, decision.detail)
        self.gate.serve(candidate)
        return True

    def run(self, stop: threading.Event) -> None:
        """Consume, update when due, commit what each announced version learned; until
        ``stop``."""
        self.config.root.mkdir(parents=True, exist_ok=True)
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            group_id=f"{self.settings.app_id}-trainer",  # for its committed offsets only
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **kafka_python_kwargs(self.settings),
            **read_isolation(self.settings.processing_guarantee),
        )
        # every partition assigned by hand: one trainer reads them all, and it starts at once
        # (a group join waits out the broker's rebalance delay first)
        topic = self.settings.events_topic
        consumer.topics()  # fetches the cluster's metadata
        partitions = consumer.partitions_for_topic(topic) or range(self.settings.partitions)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        logs = self.logged_records() if self.gate is not None else None
        try:
            while not stop.is_set():
                polled = consumer.poll(timeout_ms=200)
                self.take([r for batch in polled.values() for r in batch])
                if logs is not None:
                    self.gate.take_records(readable(logs.poll(timeout_ms=0)))
                if self.due() and self.update() is not None:
                    consumer.commit()
        finally:
            consumer.close()
            if logs is not None:
                logs.close()

    def logged_records(self) -> KafkaConsumer:
        """A consumer of the recommendations topic from now on (no group): the lists the gate
        judges on are the ones logged while the trainer runs."""
        return KafkaConsumer(self.settings.recs_topic, bootstrap_servers=self.settings.bootstrap,
                             auto_offset_reset="latest", enable_auto_commit=False,
                             **kafka_python_kwargs(self.settings),
                             **read_isolation(self.settings.processing_guarantee))  # fmt: skip


def readable(polled: dict) -> list[dict]:
    """The records of a poll of the recommendations topic that are JSON objects."""
    out = []
    for record in (r for batch in polled.values() for r in batch):
        try:
            value = orjson.loads(record.value)
        except (orjson.JSONDecodeError, TypeError):
            continue
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            out.append(value)
    return out
