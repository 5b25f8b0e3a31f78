"""Every worker follows ``<events topic>.item-vectors``: the item vectors learned online.

The item agents (streams/item_agent.py) each own the items of their by-item partitions and send
an item's vector there each time its engagements move it, keyed by item id; the topic is
compacted, so it holds each item's newest vector. Every worker reads all of it with no consumer
group (each needs every item), from its start at launch, then as it comes, and hands what it
read to the event loop, where :meth:`streams.serving.Serving.learn` lays it over the served
model between micro-batches. A thread of its own, as the model-updates follower: reading must
not hold up the batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np
from kafka import KafkaConsumer

from core.codec_legacy import CorruptState
from core.item_stats import decode_item_vector
from streams.model_updates import consumer_at_start
from models.item_learning import Learned
from streams.serving import Serving
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


class VectorFollower(threading.Thread):
    """Reads the item-vectors topic from its start, for as long as the worker runs."""

    def __init__(self, settings: Settings, serving: Serving, loop: asyncio.AbstractEventLoop,
                 retry_s: float = 5.0) -> None:  # fmt: skip
        super().__init__(name="item-vectors", daemon=True)
        self.settings = settings
        self.serving = serving
        self.loop = loop
        self.retry_s = retry_s
        self.stopping = threading.Event()

    def connected(self) -> KafkaConsumer | None:
        """A consumer at the start of every partition, once the broker answers."""
        return consumer_at_start(self.settings, self.settings.item_vectors_topic,
                                 self.settings.partitions, self.stopping, self.retry_s,
                                 fetch_max_wait_ms=POLL_MS)  # fmt: skip

    def run(self) -> None:
        """Read and hand over until stopped; a failure (the broker gone a while, a bug) is
        logged and the topic read again from its start, so no vector stays unknown."""
        while not self.stopping.is_set():
            consumer = self.connected()
            if consumer is None:
                return
            try:
                self.follow(consumer)
            except Exception:  # noqa: BLE001 - the worker keeps scoring with what it has
                log.exception("item-vectors follower failed; reading again in %.0f s",
                              self.retry_s)  # fmt: skip
                self.stopping.wait(self.retry_s)
            finally:
                consumer.close()

    def follow(self, consumer: KafkaConsumer) -> None:
        """Poll, and hand what was read to the loop when a poll comes back empty or
        ``HAND_OVER_S`` passed since the last hand-over (a start-up read of the whole topic
        goes over in a few large pieces, not one per fetch)."""
        pending: dict[str, Learned] = {}
        handed = time.monotonic()
        while not self.stopping.is_set():
            polled = consumer.poll(timeout_ms=POLL_MS)
            vectors, bad = read_vectors([r for batch in polled.values() for r in batch])
            if bad:
                log.warning("item-vectors: %d unreadable records skipped", bad)
                self.loop.call_soon_threadsafe(self._refused, bad)
            pending.update(vectors)
            if pending and (not vectors or time.monotonic() - handed >= HAND_OVER_S):
                self.loop.call_soon_threadsafe(self.serving.learn, pending)
                pending, handed = {}, time.monotonic()

    def _refused(self, count: int) -> None:
        self.serving.stats.item_vectors_refused += count
