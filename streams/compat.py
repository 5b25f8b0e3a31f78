"""Make Faust correct and prompt on the embedded broker (Tansu) too.

1. Fetch wait. Faust creates its consumer with ``fetch_max_wait_ms=1500`` and no way to change
it. Apache Kafka answers a fetch as soon as ``fetch_min_bytes`` (1) have arrived, so that wait
only matters on an idle topic; Tansu holds the fetch much longer (bench/fetch_wait.py, raw
aiokafka, a message every 10 ms: produce -> consume p50 391 ms / p99 753 ms at 1500, 3 / 6 ms at
10). The worker's wait comes from ``STREAMREC_FETCH_MAX_WAIT_MS``.

2. Changelog recovery.

Tansu answers ListOffsets(latest) with the *last batch's base offset + 1*, not the last offset + 1
(measured: 15 records, the last 10 in one batch -> 6; its Fetch high watermark says 15). Faust
reads the highwater of each changelog partition with ListOffsets, so on Tansu recovery either
crashes ("persisted offset ... is higher than the last offset", after a SIGKILL) or stops before
the end of the changelog and silently loses state. We take the larger of ListOffsets and the
Fetch response's high watermark; on Apache Kafka they agree, so this changes nothing there.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

_listed_highwaters = AIOKafkaConsumerThread._highwaters
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_fetch_max_wait_ms: int | None = None
_FETCH_TIMEOUT_S = 5.0


async def fetch_highwaters(bootstrap: list[str], listed: Mapping[TP, int]) -> dict[TP, int]:
    """High watermarks from one Fetch at ``listed - 1`` per partition (a throwaway consumer)."""
    wanted = {tp: offset for tp, offset in listed.items() if offset > 0}
    if not wanted:
        return dict(listed)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset - 1)
        deadline = asyncio.get_running_loop().time() + _FETCH_TIMEOUT_S
        while any(consumer.highwater(tp) is None for tp in wanted):
            if asyncio.get_running_loop().time() > deadline:
                break
            await consumer.getmany(timeout_ms=200)
        return {tp: max(offset, consumer.highwater(tp) or 0) for tp, offset in listed.items()}
    finally:
        await consumer.stop()


async def _highwaters(self: Any, partitions: list[TP]) -> Mapping[TP, int]:
    listed = await _listed_highwaters(self, partitions)
    if self.consumer.in_transaction:
        return listed
    bootstrap = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
    return await fetch_highwaters(bootstrap, listed)


def _worker_consumer(self: Any, transport: Any) -> AIOKafkaConsumer:
    consumer = _create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read when the consumer starts
    return consumer


def install(fetch_max_wait_ms: int | None = None) -> None:
    """Idempotent; called when the app is created."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = fetch_max_wait_ms
    AIOKafkaConsumerThread._highwaters = _highwaters
    AIOKafkaConsumerThread._create_worker_consumer = _worker_consumer
