"""What the embedded Tansu needs that Apache Kafka does not, and how a client knows which broker
it talks to.

Tansu (the pip-only fallback broker, streams/tools/broker.py) answers ListOffsets(latest) with
the *last batch's base offset + 1*, not the last offset + 1 (15 records, the last 10 in one
batch -> 6; its Fetch high watermark says 15). Faust's changelog recovery asks ListOffsets, so
on Tansu it would end before the changelog does and serve a state short of its events; and a
reader of the model announcements asking where the topic ends would miss the newest. On Tansu,
and only there, recovery takes the larger of ListOffsets and a Fetch's high watermark
(:func:`fetch_highwaters`, used by streams/kafka_edge/compat.py), and the announcements are read
until the topic is quiet (streams/announcements.py).

Which broker it is: ``STREAMREC_BROKER_ENGINE`` says so, or, left ``auto``, the broker's own
cluster id does: Tansu names its cluster ``tansu_cluster`` unless started with another id.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Mapping

from streams.kafka_edge.highwaters import HighwaterUnknown

if TYPE_CHECKING:
    from faust.types import TP

TANSU_CLUSTER_ID = "tansu_cluster"  # what Tansu calls its cluster unless told otherwise
_FETCH_TIMEOUT_S = 30.0
_asked: dict[str, bool] = {}  # bootstrap -> is it Tansu, asked once per process


def named_tansu(engine: str, cluster_id: str | None) -> bool:
    """Whether a broker is Tansu: ``engine`` (the setting) decides unless it is ``auto``."""
    if engine != "auto":
        return engine == "tansu"
    return cluster_id == TANSU_CLUSTER_ID


def broker_is_tansu(bootstrap: str, engine: str, kafka_python: Mapping[str, Any]) -> bool:
    """Whether the broker at ``bootstrap`` is Tansu, asked with kafka-python (``kafka_python``:
    its security keywords) only when ``engine`` is ``auto``."""
    if engine != "auto":
        return named_tansu(engine, None)
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), **kafka_python)
    try:
        return named_tansu(engine, admin.describe_cluster()["cluster_id"])
    finally:
        admin.close()


async def asks_tansu(bootstrap: list[str], engine: str, auth: Mapping[str, Any]) -> bool:
    """:func:`broker_is_tansu` for asyncio clients (``auth``: aiokafka's security keywords),
    asked once per process and bootstrap."""
    if engine != "auto":
        return named_tansu(engine, None)
    from aiokafka.admin import AIOKafkaAdminClient  # aiokafka only for asyncio callers

    key = ",".join(bootstrap)
    if key not in _asked:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth)
        await admin.start()
        try:
            _asked[key] = named_tansu(engine, (await admin.describe_cluster())["cluster_id"])
        finally:
            await admin.close()
    return _asked[key]


async def fetch_highwaters(
    bootstrap: list[str], listed: Mapping[TP, int], auth: Mapping[str, Any] | None = None
) -> dict[TP, int]:
    """The larger of ``listed`` (what ListOffsets said) and the high watermark of one Fetch at
    ``listed - 1`` per partition (a throwaway consumer connecting with ``auth``, aiokafka's
    security keywords; PLAINTEXT when None)."""
    from aiokafka import AIOKafkaConsumer

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
