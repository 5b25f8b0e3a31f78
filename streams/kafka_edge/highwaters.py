"""Where each changelog partition ends, from a Fetch's high watermark.

Tansu answers ListOffsets(latest) with the last batch's base offset + 1
(streams/kafka_edge/compat.py, fix 2), so recovery asks a Fetch instead; this module is that Fetch,
plain aiokafka, no Faust.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from aiokafka import AIOKafkaConsumer
from faust.types import TP

_FETCH_TIMEOUT_S = 30.0


class HighwaterUnknown(RuntimeError):
    """The broker did not say where a changelog partition ends: recovery cannot know when it
    is done, so the worker stops rather than serve what it has read so far."""


async def fetch_highwaters(
    bootstrap: list[str], listed: Mapping[TP, int], auth: Mapping[str, Any] | None = None
) -> dict[TP, int]:
    """High watermarks from one Fetch at ``listed - 1`` per partition (a throwaway consumer
    connecting with ``auth``, aiokafka's security keywords; PLAINTEXT when None)."""
    wanted = {tp: offset for tp, offset in listed.items() if offset > 0}
    if not wanted:
        return dict(listed)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(auth or {})
    )
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset - 1)
        deadline = asyncio.get_running_loop().time() + _FETCH_TIMEOUT_S
        while missing := [tp for tp in wanted if consumer.highwater(tp) is None]:
            if asyncio.get_running_loop().time() > deadline:
                # fail closed: recovering to the undercounted ListOffsets would serve stale state
                raise HighwaterUnknown(f"no Fetch high watermark for {missing} within "
                                       f"{_FETCH_TIMEOUT_S:.0f}s")
            await consumer.getmany(timeout_ms=200)
        # a partition listed empty was not asked (nor assigned): its 0 stands
        return {tp: max(offset, consumer.highwater(tp) or 0) if tp in wanted else offset
                for tp, offset in listed.items()}
    finally:
        await consumer.stop()
