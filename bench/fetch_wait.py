"""Produce-to-consume latency of raw aiokafka against the consumer's fetch_max_wait_ms.

    .venv/bin/python bench/fetch_wait.py [--messages 200] [--engines kafka tansu] [--bootstrap H:P]

Why STREAMREC_FETCH_MAX_WAIT_MS exists (streams/kafka_edge/compat.py): Faust fixes the wait at
1500 ms, and a broker that holds a fetch until the wait is over, rather than until data arrives,
adds that to every hop. One producer sends a message every 10 ms (send_and_wait); one consumer
reads them; latency is the consumer's wall clock minus the send time carried in the message. Each
broker engine asked for (Apache Kafka, which answers a fetch once data is there, and Tansu) runs on
a fresh local broker of its own, one after the other.
Writes bench/results/fetch_wait.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import NewTopic

from streams.kafka_edge.topics import admin
from streams.tools.broker import ENGINES, kafka_unavailable, start_local_broker, stop_process
from core.report import write_report

WAITS_MS = (1500, 500, 100, 10)


async def latencies(bootstrap: str, topic: str, wait_ms: int, messages: int) -> np.ndarray:
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)  # resolved before the first send
        seen: list[float] = []

        async def consume() -> None:
            while len(seen) < messages:
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    now = time.time()
                    seen.extend(now - float(r.value) for r in records)

        reading = asyncio.create_task(consume())
        for _ in range(messages):
            await producer.send_and_wait(topic, str(time.time()).encode())
            await asyncio.sleep(0.01)  # the offered load: a message every 10 ms
        await asyncio.wait_for(reading, 60)
        return np.array(seen) * 1000
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--engines", nargs="+", choices=ENGINES[1:],
                        help="local brokers to measure, one after the other (default: Apache "
                        "Kafka where a JDK runs it, and Tansu)")
    parser.add_argument("--bootstrap", help="measure this broker instead of local ones")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    engines = args.engines or (["tansu"] if kafka_unavailable() else ["kafka", "tansu"])
    rows = []
    for engine in ["given"] if args.bootstrap else engines:
        broker = None
        if args.bootstrap is None:
            broker = start_local_broker(engine, Path(tempfile.mkdtemp(prefix="fetch-wait-")))
        bootstrap = args.bootstrap or broker.bootstrap
        try:
            client = admin(bootstrap)
            for wait_ms in WAITS_MS:
                topic = f"fetch-wait-{uuid.uuid4().hex[:8]}"
                client.create_topics([NewTopic(topic, 1, 1)])
                ms = asyncio.run(latencies(bootstrap, topic, wait_ms, args.messages))
                rows.append({
                    "broker": engine, "fetch_max_wait_ms": wait_ms, "messages": len(ms),
                    **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 99)},
                })
                print(rows[-1], flush=True)
            client.close()
        finally:
            if broker is not None:
                stop_process(broker.process, timeout=30)
    write_report(args.out, "fetch_wait", rows, {
        "broker": lambda r: r["broker"],
        "fetch_max_wait_ms": lambda r: str(r["fetch_max_wait_ms"]),
        "messages": lambda r: str(r["messages"]),
        "p50 ms": lambda r: f"{r['p50_ms']:.1f}",
        "p99 ms": lambda r: f"{r['p99_ms']:.1f}",
    })


if __name__ == "__main__":
    main()
