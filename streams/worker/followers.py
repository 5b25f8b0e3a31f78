"""Every worker follows the internal compacted topics it serves from, each in a thread of its
own (reading must not hold up the batches), all by one rule, :class:`Follower`:

- ``model-updates``: the model versions announced (streams/announcements.py); the newest is
  loaded and checked in the thread and swapped in on the event loop between micro-batches
  (:class:`streams.worker.serving.Serving`).
- ``<events topic>.item-vectors``: the item vectors the item paths (streams/worker/item_path.py)
  learned online, keyed by item, laid over the served model by
  :meth:`streams.worker.serving.Serving.lay_learned_vectors`.
- ``<events topic>.content``: the catalog items' content vectors (``streamrec catalog`` encodes
  them), a new item's projected into the served model's space by
  :meth:`streams.worker.serving.Serving.lay_content_vectors`.
- the item table's changelog: every item's statistics, what exploration and the trending
  fallback read (models/item_board.py), laid on the worker's :class:`ItemBoard`.

Every worker reads all of each topic with no consumer group (a group would split it, and each
worker needs every key), from its start at launch, then as it comes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from typing import Any, Callable, Mapping

from kafka import KafkaConsumer, TopicPartition

from core.seal import Seal, verified
from models.item_board import ItemBoard
from streams.announcements import ANNOUNCEMENT_KEY, Announcement
from streams.kafka_edge.security import kafka_python_kwargs
from streams.kafka_edge.transactions import read_isolation
from streams.settings import Settings
from streams.worker.metrics import PipelineStats
from streams.worker.model_choice import load_announced
from streams.worker.refusals import Refusals, unknown_source
from streams.worker.serving import ModelRefused, Serving
from streams.worker.topic_readers import (
    Refused,
    read_announcements,
    read_content,
    read_stats,
    read_vectors,
)

log = logging.getLogger(__name__)

POLL_MS = 50  # how long a poll waits for records: the follower's share of an update's delay
HAND_OVER_S = 0.1  # at most this often what was read goes to the loop (an item hand-over copies
# the catalog's vectors)
RETRY_S = 5.0  # after a failure, the wait before the topic is read again from its start

# what the event loop runs with what a follower read; it may return what it refused, by key:
# (reason, what was wrong)
Action = Callable[[], Mapping[str, tuple[str, str]] | None]
Reader = Callable[[list], tuple[Mapping[str, Any], list[Refused]]]  # newest per key, unreadable


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
                **kafka_python_kwargs(settings), **read_isolation(settings.processing_guarantee),
                **options)  # fmt: skip
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
    """Reads a compacted topic from its start for as long as the worker runs. In this thread,
    ``read`` makes each poll's records into the newest readable value per key (and the
    unreadable ones, whose count goes to ``on_bad`` on the loop), and ``ready`` makes what was
    read since the last hand-over into what the event loop is to run (None: nothing), which may
    refuse some of it. With a ``seal``, a record without the cluster's MAC is not read (core/
    seal.py). Every refused record goes to ``refusals`` (dead-lettered, counted, logged once).

    One failure rule for every topic: a failure (the broker gone a while, a bug) is logged and
    the topic read again from its start after ``retry_s``, so nothing stays unknown and the
    worker keeps serving what it has meanwhile; only :meth:`stop` ends the thread."""

    def __init__(self, settings: Settings, topic: str, partitions: int, read: Reader,
                 ready: Callable[[dict], Action | None], loop: asyncio.AbstractEventLoop,
                 on_bad: Callable[[int], None] = lambda count: None,
                 retry_s: float = RETRY_S, seal: Seal | None = None,
                 refusals: Refusals | None = None) -> None:  # fmt: skip
        super().__init__(name=f"follow {topic}", daemon=True)
        self.settings, self.topic, self.partitions = settings, topic, partitions
        self.read, self.ready, self.on_bad = read, ready, on_bad
        self.loop = loop
        self.retry_s, self.seal, self.refusals = retry_s, seal, refusals
        self.stopping = threading.Event()
        self.connect_failures = 0  # connects the broker did not answer
        self.failures = 0  # reads that failed and started again

    def connected(self) -> KafkaConsumer | None:
        """A consumer at the start of every partition, once the broker answers."""
        # no CRC check: kafka-python's is pure Python, on the worker's CPU (the broker checked
        # the batch when it was produced); a damaged value fails to decode and is counted
        return consumer_at_start(self.settings, self.topic, self.partitions, self.stopping,
                                 self.retry_s, self._connect_failed, fetch_max_wait_ms=POLL_MS,
                                 check_crcs=False)  # fmt: skip

    def _connect_failed(self) -> None:
        self.connect_failures += 1

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            consumer = self.connected()
            if consumer is None:
                return
            try:
                self.follow(consumer)
            except Exception:  # noqa: BLE001 - the worker keeps serving what it has
                self.failures += 1
                log.exception("%s follower failed; reading again from the start in %.1f s",
                              self.topic, self.retry_s)  # fmt: skip
                self.stopping.wait(self.retry_s)
            finally:
                consumer.close()

    def follow(self, consumer: KafkaConsumer) -> None:
        """Poll, and hand what was read over when a poll reads nothing new or ``HAND_OVER_S``
        passed since the last hand-over (a start-up read of the whole topic goes over in a few
        large pieces, not one per fetch; of a backlog of model announcements, only the newest)."""
        pending: dict = {}
        sources: dict = {}  # the record each pending value was read from, by its key
        handed = time.monotonic()
        while not self.stopping.is_set():
            polled = consumer.poll(timeout_ms=POLL_MS)
            records, unsigned = verified(self.seal, [r for b in polled.values() for r in b])
            read, refused = self.read(records)
            refused = [(r, "bad_mac", "no valid MAC of the cluster's internal key")
                       for r in unsigned] + refused  # fmt: skip
            if refused:
                self.refuse(refused)
                self.loop.call_soon_threadsafe(self.on_bad, len(refused))
            unread = {id(record) for record, _, _ in refused}
            sources.update((r.key, r) for r in records if id(r) not in unread)
            pending.update(read)
            if pending and (not read or time.monotonic() - handed >= HAND_OVER_S):
                action = self.ready(pending)
                if action is not None:
                    self.loop.call_soon_threadsafe(self.run_on_loop, action, sources)
                pending, sources, handed = {}, {}, time.monotonic()

    def refuse(self, refused: list[Refused]) -> None:
        if not refused:
            return
        if self.refusals is None:
            log.warning("%s: %d records refused", self.topic, len(refused))
            return
        for record, reason, detail in refused:
            self.refusals.refuse(record, reason, detail)

    def run_on_loop(self, action: Action, sources: dict) -> None:
        """Run ``action`` on the loop; what it refuses is dead-lettered with the record it was
        read from."""
        refused = action() or {}
        self.refuse([(sources.get(key.encode()) or unknown_source(self.topic, key.encode()),
                      reason, detail) for key, (reason, detail) in refused.items()])


def taken_by(take: Callable[[dict], None]) -> Callable[[dict], Action]:
    """A ``ready`` that hands what was read, as it is, to ``take`` on the loop."""
    return lambda read: functools.partial(take, read)


def model_follower(settings: Settings, serving: Serving, loop: asyncio.AbstractEventLoop,
                   refusals: Refusals | None = None) -> Follower:  # fmt: skip
    """The follower of the model-updates topic. Only the newest announcement read since the
    last hand-over is served; one of the version served now is skipped (a worker reading the
    topic again after a restart or a failure); loading and checking run in the follower's
    thread, off the loop, and the swap or the refusal on the loop."""
    # the version the loop serves once what was handed over has run, compared with rather than
    # the one served now: a swap handed over may not have run yet, and a rollback announced
    # meanwhile must not be skipped. A refusal changes nothing served, so it is not recorded: a
    # good artifact announced later under a refused version is still served.
    serves = [serving.recommender.version]

    def ready(read: dict[str, Announcement]) -> Action | None:
        announced = read["serve"]
        if announced.version == serves[0]:
            return None
        try:
            recommender = load_announced(announced, settings)
        except ModelRefused as exc:
            return functools.partial(refuse, announced.version, str(exc))
        except Exception as exc:  # noqa: BLE001 - a check that crashed refuses the model too
            return functools.partial(refuse, announced.version, f"{type(exc).__name__}: {exc}")
        serves[0] = announced.version
        return functools.partial(serving.swap, recommender, announced.parent)

    def refuse(version: str, reason: str) -> dict[str, tuple[str, str]]:
        serving.refuse(version, reason)
        return {ANNOUNCEMENT_KEY.decode(): ("refused_model", f"{version}: {reason}")}

    def unreadable(count: int) -> None:
        serving.refuse("?", f"{count} record(s) on the topic not an announcement or unsigned")

    return Follower(settings, settings.model_updates_topic, 1, read_announcements, ready, loop,
                    unreadable, seal=settings.seal, refusals=refusals)  # fmt: skip


def vector_follower(settings: Settings, serving: Serving, loop: asyncio.AbstractEventLoop,
                    refusals: Refusals | None = None) -> Follower:  # fmt: skip
    """The follower of the learned item vectors, laid over the served model."""
    def refused(count: int) -> None:
        serving.stats.item_vectors_refused += count

    return Follower(settings, settings.item_vectors_topic, settings.partitions, read_vectors,
                    taken_by(serving.lay_learned_vectors), loop, refused,
                    seal=settings.seal, refusals=refusals)  # fmt: skip


def content_follower(settings: Settings, serving: Serving, loop: asyncio.AbstractEventLoop,
                     refusals: Refusals | None = None) -> Follower:  # fmt: skip
    """The follower of the catalog's content vectors, new items laid over the served model."""
    def refused(count: int) -> None:
        serving.stats.content_vectors_refused += count

    return Follower(settings, settings.content_topic, settings.partitions, read_content,
                    taken_by(serving.lay_content_vectors), loop, refused,
                    seal=settings.seal, refusals=refusals)  # fmt: skip


def stats_follower(settings: Settings, board: ItemBoard, stats: PipelineStats, topic: str,
                   loop: asyncio.AbstractEventLoop,
                   refusals: Refusals | None = None) -> Follower:  # fmt: skip
    """The follower of the item statistics (the item table's changelog ``topic``), laid on
    the worker's ``board``; ``stats.items_known`` counts the items it knows."""
    def take(read: dict[str, tuple[int, int, float, int]]) -> None:
        board.update(read)
        stats.items_known = len(board)

    return Follower(settings, topic, settings.partitions, read_stats, taken_by(take), loop,
                    refusals=refusals)  # fmt: skip


def start_followers(settings: Settings, serving: Serving, board: ItemBoard | None,
                    stats: PipelineStats, item_stats_topic: str | None,
                    loop: asyncio.AbstractEventLoop) -> list[Follower]:  # fmt: skip
    """Start the worker's followers and return them: the model updates and the catalog's content
    vectors always, the learned item vectors with ``settings.item_learning``, and the item
    statistics (``item_stats_topic``, the item table's changelog) when the worker keeps a
    ``board``."""
    refusals = Refusals(settings, stats, loop)
    refusals.start()
    followers = [model_follower(settings, serving, loop, refusals),
                 content_follower(settings, serving, loop, refusals)]  # fmt: skip
    if settings.item_learning:
        followers.append(vector_follower(settings, serving, loop, refusals))
    if board is not None:
        if item_stats_topic is None:
            raise ValueError("a board to follow needs the item table's changelog topic")
        followers.append(stats_follower(settings, board, stats, item_stats_topic, loop,
                                        refusals))  # fmt: skip
    for follower in followers:
        follower.start()
    return followers
