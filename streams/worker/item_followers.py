"""Every worker follows two compacted topics keyed by item: ``<events topic>.item-vectors``,
the item vectors learned online, and the item table's changelog, every item's statistics (what
exploration and the trending fallback read: models/item_board.py).

The item agents (streams/worker/item_path.py) each own the items of their by-item partitions and send
an item's vector there each time its engagements move it, keyed by item id; the topic is
compacted, so it holds each item's newest vector. Every worker reads all of it with no consumer
group (each needs every item), from its start at launch, then as it comes, and hands what it
read to the event loop, where :meth:`streams.worker.serving.Serving.learn` lays it over the served
model between micro-batches; the statistics go to the worker's :class:`ItemBoard` the same way.
A thread of its own per topic, as the model-updates follower: reading must not hold up the
batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Callable, Mapping

import numpy as np
from kafka import KafkaConsumer

from core.codec import CorruptState
from core.item_stats import decode_item_counts, decode_item_vector
from streams.worker.model_updates import consumer_at_start
from models.item_board import ItemBoard
from models.item_learning import Learned
from streams.worker.metrics import PipelineStats
from streams.worker.serving import Serving
from streams.settings import Settings

log = logging.getLogger(__name__)

POLL_MS = 50  # how long a poll waits for records: the follower's share of an update's delay
HAND_OVER_S = 0.1  # at most this often the vectors read go to the loop (each is an O(N D) copy)


def read_vectors(records: list) -> tuple[dict[str, Learned], int]:
    """The newest readable vector per item of ``records``, and how many were unreadable."""
    vectors: dict[str, Learned] = {}
    bad = 0
    for record in records:
        if record.value is None:
            continue  # a tombstone: the item keeps what it has
        try:
            model, updates, raw = decode_item_vector(record.value)
            item = record.key.decode()
        except (CorruptState, AttributeError, UnicodeDecodeError):
            bad += 1
            continue
        vectors[item] = Learned(model, updates, np.frombuffer(raw, "<f4").astype(np.float32))
    return vectors, bad


def read_stats(records: list) -> tuple[dict[str, tuple[int, int, float, int]], int]:
    """The newest readable counts per item of ``records`` (the head of each value, all a
    worker's board keeps), and how many were unreadable."""
    stats: dict[str, tuple[int, int, float, int]] = {}
    bad = 0
    for record in records:
        if record.value is None:
            continue
        try:
            stats[record.key.decode()] = decode_item_counts(record.value)
        except (CorruptState, AttributeError, UnicodeDecodeError):
            bad += 1
    return stats, bad


Reader = Callable[[list], tuple[Mapping[str, object], int]]


class ItemFollower(threading.Thread):
    """Reads a compacted topic keyed by item from its start, for as long as the worker runs,
    and hands what ``read`` made of it to ``take`` on the event loop (``on_bad``: how many
    records were unreadable)."""

    def __init__(self, settings: Settings, topic: str, read: Reader,
                 take: Callable[[dict], None], on_bad: Callable[[int], None],
                 loop: asyncio.AbstractEventLoop, retry_s: float = 5.0) -> None:  # fmt: skip
        super().__init__(name=f"follow {topic}", daemon=True)
        self.settings = settings
        self.topic = topic
        self.read = read
        self.take = take
        self.on_bad = on_bad
        self.loop = loop
        self.retry_s = retry_s
        self.stopping = threading.Event()

    def connected(self) -> KafkaConsumer | None:
        """A consumer at the start of every partition, once the broker answers."""
        # no CRC check: kafka-python's is pure Python, on the worker's CPU (the broker checked
        # the batch when it was produced); a damaged value fails to decode and is counted
        return consumer_at_start(self.settings, self.topic, self.settings.partitions,
                                 self.stopping, self.retry_s, fetch_max_wait_ms=POLL_MS,
                                 check_crcs=False)  # fmt: skip

    def run(self) -> None:
        """Read and hand over until stopped; a failure (the broker gone a while, a bug) is
        logged and the topic read again from its start, so no item stays unknown."""
        while not self.stopping.is_set():
            consumer = self.connected()
            if consumer is None:
                return
            try:
                self.follow(consumer)
            except Exception:  # noqa: BLE001 - the worker keeps scoring with what it has
                log.exception("%s follower failed; reading again in %.0f s", self.topic,
                              self.retry_s)  # fmt: skip
                self.stopping.wait(self.retry_s)
            finally:
                consumer.close()

    def follow(self, consumer: KafkaConsumer) -> None:
        """Poll, and hand what was read to the loop when a poll comes back empty or
        ``HAND_OVER_S`` passed since the last hand-over (a start-up read of the whole topic
        goes over in a few large pieces, not one per fetch)."""
        pending: dict = {}
        handed = time.monotonic()
        while not self.stopping.is_set():
            polled = consumer.poll(timeout_ms=POLL_MS)
            read, bad = self.read([r for batch in polled.values() for r in batch])
            if bad:
                log.warning("%s: %d unreadable records skipped", self.topic, bad)
                self.loop.call_soon_threadsafe(self.on_bad, bad)
            pending.update(read)
            if pending and (not read or time.monotonic() - handed >= HAND_OVER_S):
                self.loop.call_soon_threadsafe(self.take, pending)
                pending, handed = {}, time.monotonic()


def vector_follower(settings: Settings, serving: Serving,
                    loop: asyncio.AbstractEventLoop) -> ItemFollower:  # fmt: skip
    """The follower of the learned item vectors, laid over the served model."""
    def refused(count: int) -> None:
        serving.stats.item_vectors_refused += count

    return ItemFollower(settings, settings.item_vectors_topic, read_vectors, serving.learn,
                        refused, loop)  # fmt: skip


def stats_follower(settings: Settings, board: ItemBoard, stats: PipelineStats, topic: str,
                   loop: asyncio.AbstractEventLoop) -> ItemFollower:  # fmt: skip
    """The follower of the item statistics (the item table's changelog ``topic``), laid on
    the worker's ``board``; ``stats.items_known`` counts the items it knows."""
    def take(read: dict[str, tuple[int, int, float, int]]) -> None:
        board.update(read)
        stats.items_known = len(board)

    return ItemFollower(settings, topic, read_stats, take, lambda count: None, loop)
