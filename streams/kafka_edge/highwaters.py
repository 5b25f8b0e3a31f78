"""Where each changelog partition ends, as Faust's recovery counts it (plain aiokafka, no Faust).

A changelog written in transactions ends with a commit marker no reader is given, so recovery
ends at the last committed record (:func:`committed_ends`). On Tansu, which has no transactions
and undercounts ListOffsets, recovery asks a Fetch instead (streams/kafka_edge/tansu.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Mapping

from aiokafka import AIOKafkaConsumer

if TYPE_CHECKING:
    from faust.types import TP

_FETCH_TIMEOUT_S = 30.0


class HighwaterUnknown(RuntimeError):
    """The broker did not say where a changelog partition ends: recovery cannot know when it
    is done, so the worker stops rather than serve what it has read so far."""


async def committed_ends(
    bootstrap: list[str], listed: Mapping[TP, int], auth: Mapping[str, Any] | None = None
) -> dict[TP, int]:
    """One past the last committed record below each partition's last stable offset
    (``listed``, what a read_committed ListOffsets says), as recovery counts its end.

    A transaction's commit marker takes an offset no reader is given, so a changelog written by
    transactions ends one offset (or, after an aborted transaction, more) past its last record:
    recovery waiting for the stable offset itself would never end. A throwaway read_committed
    consumer reads back from there until it finds a record."""
    wanted = {tp: end for tp, end in listed.items() if end > 0}
    if not wanted:
        return dict(listed)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", fetch_max_wait_ms=20,
                                auto_offset_reset="earliest", **(auth or {}))  # fmt: skip
    await consumer.start()
    try:
        ends = {}
        for tp, end in wanted.items():  # one at a time: a fetch asks for every assigned one
            consumer.assign([tp])
            ends[tp] = await _last_record_end(consumer, tp, end)
        return {tp: ends.get(tp, end) for tp, end in listed.items()}
    finally:
        await consumer.stop()


async def _last_record_end(consumer: AIOKafkaConsumer, tp: TP, stable: int) -> int:
    """Read ``tp`` from ever further back below ``stable`` until a record shows; 0 if none."""
    deadline = asyncio.get_running_loop().time() + _FETCH_TIMEOUT_S
    back = 8
    while True:
        start = max(0, stable - back)
        consumer.seek(tp, start)
        last = -1
        while await consumer.position(tp) < stable:
            if asyncio.get_running_loop().time() > deadline:
                raise HighwaterUnknown(f"{tp} was not read up to its stable offset {stable} "
                                       f"within {_FETCH_TIMEOUT_S:.0f}s")
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                if record.offset < stable:
                    last = max(last, record.offset)
        if last >= 0 or start == 0:
            return last + 1
        back *= 16
