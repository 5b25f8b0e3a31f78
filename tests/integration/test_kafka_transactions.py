"""What the brokers and aiokafka's transactional producer do, found out before exactly-once is
built on them (issue 31): a second producer with the same transactional id fences the first, a
transaction left open past its timeout is aborted by the broker and its producer fenced, a
read_committed consumer sees neither's records; and Tansu refuses transactional producers, so
there only at-least-once can run."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, ProducerFenced

from streams.tools.broker import start_local_broker, stop_process

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka(local_broker, bootstrap) -> str:
    if local_broker is not None and local_broker.engine != "kafka":
        pytest.skip("transactions need Apache Kafka (Tansu refuses them: see the last test)")
    return bootstrap


async def read_until(bootstrap: str, topic: str, isolation: str, last: bytes) -> list[bytes]:
    """Every value of ``topic`` up to and including ``last``, as a consumer of ``isolation``
    sees them (records written before ``last`` that it does not see are not waited for)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, isolation_level=isolation,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while last not in seen:
            assert time.monotonic() < deadline, f"{last!r} never came; read {seen}"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                seen += [record.value for record in batch]
    finally:
        await consumer.stop()
    return seen


def transactional(bootstrap: str, transactional_id: str, **options) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                            **options)


def test_a_second_producer_with_the_same_id_fences_the_first(kafka):
    topic, tid = f"tx-{uuid.uuid4().hex[:8]}", f"fence-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        zombie = transactional(kafka, tid)
        await zombie.start()
        await zombie.begin_transaction()
        await zombie.send_and_wait(topic, b"from the zombie", partition=0)
        successor = transactional(kafka, tid)
        await successor.start()  # InitProducerId bumps the epoch: the zombie is fenced
        with pytest.raises(ProducerFenced):
            await zombie.send_and_wait(topic, b"after the fence", partition=0)
        with pytest.raises(ProducerFenced):
            await zombie.commit_transaction()
        async with successor.transaction():
            await successor.send_and_wait(topic, b"from the successor", partition=0)
        await successor.stop()
        await zombie.stop()  # a fenced producer still stops cleanly
        assert await read_until(kafka, topic, "read_committed", b"from the successor") == [
            b"from the successor"]
        uncommitted = await read_until(kafka, topic, "read_uncommitted", b"from the successor")
        assert b"from the zombie" in uncommitted  # in the log, aborted: only read_committed hides it

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced(kafka):
    topic, tid = f"tx-{uuid.uuid4().hex[:8]}", f"slow-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        slow = transactional(kafka, tid, transaction_timeout_ms=1000)
        await slow.start()
        await slow.begin_transaction()
        await slow.send_and_wait(topic, b"too slow", partition=0)
        other = AIOKafkaProducer(bootstrap_servers=kafka)
        await other.start()
        await other.send_and_wait(topic, b"plain", partition=0)
        await other.stop()
        # read_committed stops at an open transaction's first record, so "plain" is seen only
        # once the broker has aborted the slow one (its timeout, then the broker's next sweep)
        assert await read_until(kafka, topic, "read_committed", b"plain") == [b"plain"]
        with pytest.raises(ProducerFenced):
            await slow.send_and_wait(topic, b"later", partition=0)
        with pytest.raises(ProducerFenced):
            await slow.commit_transaction()
        await slow.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_tansu_refuses_a_transactional_producer(tmp_path: Path):
    """So on Tansu the worker runs at-least-once: InitProducerId with a transactional id fails.
    (If a later Tansu supports transactions, this fails and says so.)"""
    broker = start_local_broker("tansu", tmp_path)

    async def scenario() -> None:
        producer = transactional(broker.bootstrap, "tansu-probe")
        try:
            with pytest.raises(KafkaError):
                await producer.start()
        finally:
            await producer.stop()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        stop_process(broker.process)
