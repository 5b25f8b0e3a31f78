"""Topic setup and the highwater fix against the real broker."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP

from streams.kafka_edge.topics import BrokerError, ensure_topics
from streams.kafka_edge.security import kafka_python_kwargs
from streams.kafka_edge.tansu import asks_tansu, broker_is_tansu, fetch_highwaters

pytestmark = pytest.mark.integration


def test_topics_are_created_co_partitioned_and_checked(settings):
    """The user-keyed topics share a partition count; the model announcements have one."""
    created = ensure_topics(settings)
    announcements = created.pop(settings.model_updates_topic)
    assert set(created.values()) == {settings.partitions} and announcements == 1
    created[settings.model_updates_topic] = announcements
    assert ensure_topics(settings) == created  # idempotent
    with pytest.raises(BrokerError, match="wrong partition count"):
        ensure_topics(settings.model_copy(update={"partitions": settings.partitions + 1}))


@pytest.mark.tansu_lane
def test_highwater_counts_every_record_of_the_last_batch(settings):
    topic = f"{settings.events_topic}-hw"

    async def scenario() -> dict:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=50)
        await producer.start()
        try:
            await (await producer.send(topic, b"single", partition=0))
            pending = [await producer.send(topic, b"x", partition=0) for _ in range(10)]
            last = (await asyncio.gather(*pending))[-1].offset
        finally:
            await producer.stop()
        tp = TP(topic, 0)
        # Feed it ListOffsets' lowest possible answer: one past the last batch's base offset.
        return {"last": last, "hw": (await fetch_highwaters([settings.bootstrap], {tp: 2}))[tp]}

    result = asyncio.run(scenario())
    assert result["hw"] == result["last"] + 1 == 11


def test_a_changelog_partition_listed_empty_keeps_its_zero_beside_one_asked(settings):
    """Recovery after a first batch that reached only one changelog partition's broker: the
    empty one is not asked (nor assigned), and must not crash the answer for the other."""
    topic = f"{settings.events_topic}-hw2"

    async def scenario() -> dict:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(topic, b"x", partition=0)
                                   for _ in range(3)])
        finally:
            await producer.stop()
        return await fetch_highwaters([settings.bootstrap], {TP(topic, 0): 1, TP(topic, 1): 0})

    ensure_topics(settings.model_copy(update={"events_topic": topic}))
    assert asyncio.run(scenario()) == {TP(topic, 0): 3, TP(topic, 1): 0}


@pytest.mark.tansu_lane
def test_a_client_knows_whether_the_broker_is_tansu(settings, local_broker):
    """Tansu's workarounds run on Tansu only: both ways of asking name the session's broker."""
    if local_broker is None:
        pytest.skip("a given broker: its engine is not known here")
    expected = local_broker.engine == "tansu"
    assert broker_is_tansu(settings.bootstrap, "auto", kafka_python_kwargs(settings)) is expected
    assert asyncio.run(asks_tansu([settings.bootstrap], "auto", {})) is expected


def test_the_session_runs_on_apache_kafka_where_a_jdk_runs_it(local_broker):
    """make install fetches Kafka's jars wherever a JDK 17 and Maven exist, so the suite may not
    fall back to Tansu there without saying so: only STREAMREC_TEST_BROKER=tansu (the Tansu lane)
    or a given bootstrap may."""
    import os
    import shutil

    from streams.tools.kafka_broker import java_missing

    if local_broker is None or os.environ.get("STREAMREC_TEST_BROKER", "auto") != "auto":
        pytest.skip("the broker was chosen by the environment")
    if java_missing() is not None or shutil.which("mvn") is None:
        pytest.skip(f"no JDK 17 and Maven here: {java_missing() or 'no mvn'}")
    assert local_broker.engine == "kafka"


def test_apache_kafka_keeps_its_topics_across_a_restart(tmp_path):
    """A real log directory: what was written before the broker stopped is read after."""
    from kafka import KafkaConsumer, KafkaProducer

    from streams.tools.broker import (
        free_port, kafka_unavailable, start_broker, stop_process, wait_ready,
    )

    if kafka_unavailable():
        pytest.skip(kafka_unavailable())
    port = free_port()
    for attempt in range(2):
        broker = start_broker(port, "kafka", tmp_path / "data", tmp_path / "broker.log")
        try:
            wait_ready(broker, log_path=tmp_path / "broker.log")
            if attempt == 0:
                producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
                producer.send("kept", b"before the restart").get(30)
                producer.close()
            else:
                consumer = KafkaConsumer("kept", bootstrap_servers=broker.bootstrap,
                                         auto_offset_reset="earliest")
                read: list[bytes] = []
                deadline = time.monotonic() + 30
                while not read and time.monotonic() < deadline:
                    for batch in consumer.poll(timeout_ms=1000).values():
                        read += [message.value for message in batch]
                consumer.close()
                assert read == [b"before the restart"]
        finally:
            stop_process(broker.process, timeout=30)


def test_the_newest_announcement_is_read_to_the_topics_end_on_apache_kafka(
    settings, local_broker, model_path
):
    """On Apache Kafka the reader asks where the topic ends and reads to there, however short
    its quiet wait; only Tansu, whose ListOffsets undercounts, is read until quiet."""
    from streams.announcements import announce, announcement_of, newest_announcement

    if local_broker is None or local_broker.engine != "kafka":
        pytest.skip("reading until quiet is Tansu's; this is Apache Kafka's reader")
    ensure_topics(settings)
    said = announcement_of(model_path)
    for n in range(20):
        announce(settings, said.model_copy(update={"version": f"v{n}"}))
    newest = newest_announcement(settings, quiet_s=0.001)
    assert newest is not None and newest.version == "v19"
