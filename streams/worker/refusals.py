"""Where the followers' refused records go (streams/worker/followers.py): the dead-letter topic,
like a refused event, with why, where from and which worker refused it; a count per reason on
``/stats/`` and ``/metrics`` (``dead_lettered``, beside the paths' reasons); and one log line per
topic and reason, so a flood of forgeries cannot flood the log.

Every worker follows every internal topic and judges each record itself (a vector fits one
served model and not another), so a record every worker refuses has a dead letter per worker:
the same ``streamrec.source``, a different ``streamrec.refused_by``. The dead letters are sent
from a thread of their own, outside any transaction (a follower commits nothing): a broker that
does not answer delays them, never the batches or the followers.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from types import SimpleNamespace
from typing import Any, Callable

from kafka import KafkaProducer

from core.events import InvalidEvent
from streams.kafka_edge.security import kafka_python_kwargs
from streams.settings import Settings
from streams.steps.dead_letters import dead_letter_record
from streams.worker.metrics import PipelineStats

log = logging.getLogger(__name__)

RETRY_S = 5.0  # after a send failed, the wait before the dead letters are sent again
# a follower's dead letter is stored cut to this (with the original's size and SHA-256): every
# worker writes one per refused record, so a flood of large forgeries must not cost each worker
# the flood's size in memory and the dead-letter topic that size times the workers
MAX_BYTES = 16 * 1024
_STOP = object()


def unknown_source(topic: str, key: bytes | None) -> Any:
    """What a dead letter says of a refused value whose record is not known any more."""
    return SimpleNamespace(topic=topic, partition=-1, offset=-1, key=key, value=None)


class Refusals(threading.Thread):
    """Takes refused records from any thread (:meth:`refuse`), counts them on the event loop
    and sends their dead letters from this thread."""

    def __init__(self, settings: Settings, stats: PipelineStats, loop: asyncio.AbstractEventLoop,
                 new_producer: Callable[[], Any] | None = None,
                 retry_s: float = RETRY_S) -> None:  # fmt: skip
        super().__init__(name="dead letters of the followers", daemon=True)
        self.settings, self.stats, self.loop = settings, stats, loop
        self.new_producer = new_producer or (lambda: KafkaProducer(
            bootstrap_servers=settings.bootstrap, **kafka_python_kwargs(settings)))
        self.retry_s = retry_s
        self.waiting: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.logged: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.sent = 0

    def refuse(self, record: Any, reason: str, detail: str) -> None:
        """Dead-letter ``record`` (a Kafka client record, or :func:`unknown_source`)."""
        with self.lock:
            first = (record.topic, reason) not in self.logged
            self.logged.add((record.topic, reason))
        if first:
            log.warning("%s: refused a record (%s: %s); every refusal is dead-lettered to %s "
                        "and counted, this is logged once", record.topic, reason, detail,
                        self.settings.dlq_topic)  # fmt: skip
        self.loop.call_soon_threadsafe(self._count, reason)
        self.waiting.put(dead_letter_record(record, InvalidEvent(reason, detail),
                                            min(MAX_BYTES, self.settings.dlq_max_bytes)))

    def _count(self, reason: str) -> None:
        self.stats.dead_lettered[reason] += 1

    def stop(self) -> None:
        self.stopping.set()  # a retry's wait ends at once
        self.waiting.put(_STOP)

    def run(self) -> None:
        producer, letter = None, None
        refused_by = ("streamrec.refused_by", self.settings.canonical_url.encode())
        while True:
            letter = letter or self.waiting.get()
            if letter is _STOP or self.stopping.is_set():
                break
            try:
                producer = producer or self.new_producer()
                key, value, headers = letter
                producer.send(self.settings.dlq_topic, key=key, value=value,
                              headers=[*headers, refused_by]).get(30)  # fmt: skip
                self.sent += 1
                letter = None
            except Exception as exc:  # noqa: BLE001 - no broker yet, or gone a while
                log.warning("dead letters not sent yet (%s); retrying in %.0f s", exc,
                            self.retry_s)  # fmt: skip
                self.stopping.wait(self.retry_s)
        if producer is not None:
            producer.close(5)
