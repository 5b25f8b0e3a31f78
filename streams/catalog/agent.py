"""The catalog agent: what turns the items topic into content vectors the workers can serve.

It reads the items topic (``streamrec produce --catalog`` writes it) in its own consumer group,
refuses a record that is not a v1 item to the dead-letter topic with its reason (as a worker does
an event), encodes the good ones' text in batches with the content encoder (models/content.py),
and publishes each item's content vector, keyed by item, on the compacted content topic that
every worker follows (streams/worker/followers.py). A worker projects a new item's vector into
its model's space and serves it before anyone has engaged with it; no worker holds an encoder or
encodes text.

Offsets are committed after the batch's vectors and dead letters are acknowledged: a crash reads
the batch again and publishes the same vectors again (the topic is compacted, and a worker keeps
the newest per item), so nothing is lost. A retired item (a tombstone) retires its vector too.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from kafka import KafkaConsumer, KafkaProducer

from core.items import InvalidItem, Item, parse_item
from models.content import ENCODER_HEADER, encode_items, pack_content
from streams.kafka_edge.security import kafka_python_kwargs
from streams.kafka_edge.transactions import read_isolation
from streams.settings import Settings
from streams.steps.dead_letters import dead_letter_record
from streams.steps.parse import Fetched

log = logging.getLogger(__name__)


@dataclass
class CatalogStats:
    """What the agent has done since it started."""

    read: int = 0  # item records read
    encoded: int = 0  # content vectors published
    retired: int = 0  # tombstones passed on
    encode_seconds: float = 0.0
    dead_lettered: Counter = field(default_factory=Counter)  # by reason

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "encoded": self.encoded, "retired": self.retired,
                "encode_seconds": round(self.encode_seconds, 3),
                "dead_lettered": dict(self.dead_lettered)}  # fmt: skip


def item_of(record: Any) -> Item:
    """The item a record of the items topic carries; :class:`InvalidItem` says why not."""
    item = parse_item(record.value)
    if record.key is not None and record.key != item.item_id.encode():
        raise InvalidItem("key_mismatch", "message key must be the item_id (compaction)")
    return item


class CatalogAgent:
    """Reads, refuses, encodes and publishes, one batch of at most ``batch_size`` records a
    step; ``encoder`` is a loaded sentence encoder, ``encoder_name`` what it is called."""

    def __init__(self, settings: Settings, encoder: Any, encoder_name: str,
                 batch_size: int = 64) -> None:  # fmt: skip
        self.settings, self.encoder, self.encoder_name = settings, encoder, encoder_name
        self.batch_size = batch_size
        self.seal = settings.seal
        self.stats = CatalogStats()
        security = kafka_python_kwargs(settings)
        self.consumer = KafkaConsumer(
            settings.items_topic, bootstrap_servers=settings.bootstrap,
            group_id=f"{settings.app_id}-catalog", enable_auto_commit=False,
            auto_offset_reset="earliest", **read_isolation(settings.processing_guarantee),
            **security)  # fmt: skip
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                      **security)  # fmt: skip

    def step(self, timeout_ms: int = 500) -> int:
        """Handle one poll's records; returns how many (0: none came within ``timeout_ms``)."""
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.batch_size)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        self.stats.read += len(records)
        items: dict[str, Item] = {}  # the newest record of each item in the batch
        sent = []
        for record in records:
            if record.value is None:
                items.pop(record.key.decode(errors="replace"), None)
                sent.append(self.send_content(record.key, None))
                self.stats.retired += 1
                continue
            try:
                item = item_of(record)
            except InvalidItem as exc:
                key, value, headers = dead_letter_record(Fetched.of(record), exc,
                                                         self.settings.dlq_max_bytes)  # fmt: skip
                sent.append(self.producer.send(self.settings.dlq_topic, key=key, value=value,
                                               headers=headers))  # fmt: skip
                self.stats.dead_lettered[exc.reason] += 1
                continue
            items[item.item_id] = item
        sent += self.publish(list(items.values()))
        for future in sent:
            future.get(timeout=60)  # a failed send raises before the offsets move past it
        self.consumer.commit()
        return len(records)

    def publish(self, items: list[Item]) -> list:
        """Encode ``items`` in one batch and send each one's vector; returns the sends."""
        if not items:
            return []
        started = time.perf_counter()
        vectors = encode_items(self.encoder, items, batch_size=self.batch_size)
        self.stats.encode_seconds += time.perf_counter() - started
        self.stats.encoded += len(items)
        return [self.send_content(item.item_id.encode(), pack_content(vector))
                for item, vector in zip(items, vectors)]  # fmt: skip

    def send_content(self, key: bytes, value: bytes | None) -> Any:
        """Send a content vector (None: the item retired) with the encoder that made it and,
        with an internal key, the cluster's MAC (core/seal.py)."""
        topic, seal = self.settings.content_topic, self.seal
        headers = [(ENCODER_HEADER, self.encoder_name.encode())] if value is not None else []
        headers += seal.headers(topic, key, value) if seal else []
        return self.producer.send(topic, key=key, value=value, headers=headers)

    def run(self, keep_going: Callable[[], bool], idle_s: float | None = None,
            progress: Callable[[CatalogStats], None] = lambda stats: None) -> CatalogStats:
        """Step while ``keep_going()``; with ``idle_s``, stop once no record came for that
        long (the catalog read to its end). ``progress`` hears the stats after each batch."""
        last = time.monotonic()
        while keep_going():
            if self.step():
                last = time.monotonic()
                progress(self.stats)
            elif idle_s is not None and time.monotonic() - last >= idle_s:
                break
        return self.stats

    def close(self) -> None:
        self.producer.flush(30)
        self.producer.close(30)
        self.consumer.close()
