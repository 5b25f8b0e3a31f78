"""Model freshness through the broker: from a version's announcement to it serving on every
worker, and to the first record scored with it; and from a positive event to its item's learned
vector scoring on every worker; while events flow.

    .venv/bin/python bench/freshness.py [--swaps 20] [--probes 20] [--workers 2]
        [--engine auto|kafka|tansu]

Two small MF artifacts are announced in turn on the model-updates topic (as the lifelong trainer
and `streamrec models promote` do) while a producer sends 200 events/s to N workers. "Serving"
is when every worker's /stats/ names the version (polled every 10 ms), "first record" when the
recommendations topic carries a record scored with it. The workers learn item vectors online
(STREAMREC_ITEM_LEARNING): each probe is a click on an item no artifact has, sent by a user of
the flow; "item vector scoring" is when every worker's GET /items/ID/vector says it serves it
(polled every 10 ms; the next micro-batch scores with it). The broker is a local Apache Kafka
(one KRaft node) where a JDK runs it, else Tansu; the workers run the default guarantee where the
broker allows it, and records are read read_committed under exactly-once. Writes
bench/results/freshness.{json,md} (p50, p99 and max over the swaps and the probes).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from core.generator import GeneratorConfig, generate
from core.report import write_report
from models.artifact import read_config
from models.train import TrainConfig, train
from streams.kafka_edge.topics import admin, ensure_topics
from streams.kafka_edge.transactions import isolation_level
from streams.tools.broker import ENGINE_HELP, ENGINES, free_port, start_local_broker, stop_process
from streams.tools.cluster import (
    fetch_json,
    start_worker,
    wait_for,
    wait_until_ready,
    worker_stats,
)
from streams.announcements import announce, announcement_of
from core.events import Event, encode_event
from streams.settings import Settings


class FirstRecords(threading.Thread):
    """When each model version's first record reached the recommendations topic."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5,
            isolation_level=isolation_level(settings.processing_guarantee))
        self.consumer.assign([TopicPartition(settings.recs_topic, p)
                              for p in range(settings.partitions)])  # fmt: skip
        self.first: dict[str, float] = {}
        self.since: dict[str, float] = {}
        self.stopping = threading.Event()

    def reset(self, version: str, since: float) -> None:
        """Look for ``version``'s first record emitted at or after ``since`` (epoch s)."""
        self.first.pop(version, None)
        self.since[version] = since

    def run(self) -> None:
        while not self.stopping.is_set():
            for records in self.consumer.poll(timeout_ms=50).values():
                now = time.time()
                for record in records:
                    value = orjson.loads(record.value)
                    version = value["model_version"]
                    if value["emitted_at"] / 1000 >= self.since.get(version, float("inf")):
                        self.first.setdefault(version, now)


def send_until(settings: Settings, messages: list, rate: float, stop: threading.Event) -> None:
    """``messages`` at ``rate``/s, in a loop, until ``stop``."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5)
    started, n = time.time(), 0
    while not stop.is_set():
        key, value = messages[n % len(messages)]
        producer.send(settings.events_topic, key=key, value=value)
        n += 1
        delay = started + n / rate - time.time()
        if delay > 0:
            stop.wait(delay)  # pacing the offered load
    producer.close()


def percentiles(values: list[float]) -> dict:
    ms = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "max_ms": round(float(ms.max()), 1)}


def probe_items(settings: Settings, ports: list[int], probes: int, after_ts: int) -> list[float]:
    """Seconds from sending each probe click (on an item new to the catalog) to every worker
    serving its learned vector."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=0)
    out = []
    for n in range(probes):
        item, user = f"probe-{uuid.uuid4().hex[:8]}", f"u{n % 300}"
        event = Event(user, item, "click", after_ts + 1000 * (n + 1), None, f"probe-{item}")
        sent = time.time()
        producer.send(settings.events_topic, key=user.encode(), value=encode_event(event)).get(10)
        wait_for(lambda: all(serves(p, item) for p in ports), 30, f"{item} on every worker",
                 interval=0.01)  # fmt: skip
        out.append(time.time() - sent)
        time.sleep(0.5)  # pacing the probes, not synchronisation
    producer.close()
    return out


def serves(port: int, item: str) -> bool:
    try:
        return bool(fetch_json(f"http://127.0.0.1:{port}/items/{item}/vector", timeout=1)["serving"])
    except OSError:  # 404 until the vector is taken
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="freshness-"))
    broker = start_local_broker(args.engine, work)
    processes = [broker.process]
    bootstrap, guarantee = broker.bootstrap, broker.guarantee(Settings().processing_guarantee)
    print(f"broker: {broker.describe()} at {bootstrap}; {guarantee}", flush=True)
    try:
        admin(bootstrap).close()
        catalog = generate(GeneratorConfig(n_users=300, n_items=500, events_per_user=40, seed=3))
        for name, seed in (("a", 0), ("b", 1)):
            train(catalog, Settings().interest, Settings().blend,
                  TrainConfig(model="mf", dim=32, epochs=2, seed=seed), work / name,
                  show_progress=False)  # fmt: skip
        versions = {name: read_config(work / name)["version"] for name in ("a", "b")}
        tag = uuid.uuid4().hex[:8]
        base = Settings(processing_guarantee=guarantee, bootstrap=bootstrap,
                        app_id=f"fresh-{tag}", events_topic=f"events-{tag}",
                        recs_topic=f"recs-{tag}", model_updates_topic=f"updates-{tag}",
                        partitions=args.workers, model_path=work / "a", fetch_max_wait_ms=10,
                        item_learning=True)  # fmt: skip
        ensure_topics(base)
        workers = [base.model_copy(update={"web_port": free_port(),
                                           "state_dir": work / f"state-{n}"})
                   for n in range(args.workers)]  # fmt: skip
        for n, one in enumerate(workers):
            processes.append(start_worker(one, work / f"worker-{n}.log"))
        for one, process in zip(workers, processes[1:]):
            wait_until_ready(one.web_port, timeout=120, process=process)
        records = FirstRecords(base)
        records.start()
        events = generate(GeneratorConfig(n_users=300, n_items=500, events_per_user=200, seed=4))
        messages = [(e.user_id.encode(), encode_event(e)) for e in events]
        sending = threading.Event()
        sender = threading.Thread(target=send_until, args=(base, messages, 200.0, sending))
        sender.start()
        serving_s, first_record_s = [], []
        ports = [one.web_port for one in workers]
        for swap in range(args.swaps):
            name = "b" if swap % 2 == 0 else "a"
            version = versions[name]
            announced = time.time()
            records.reset(version, announced)
            announce(base, announcement_of(work / name))
            wait_for(lambda: all(worker_stats(p)["model_version"] == version for p in ports),
                     30, f"{version} on every worker", interval=0.01)  # fmt: skip
            serving_s.append(time.time() - announced)
            wait_for(lambda: version in records.first, 30,
                     f"a record of {version}", interval=0.01)  # fmt: skip
            first_record_s.append(records.first[version] - announced)
            time.sleep(1.0)  # pacing the swaps, not synchronisation
        item_s = probe_items(base, ports, args.probes, max(e.ts for e in events))
        records.stopping.set()
        sending.set()
        sender.join(30)
        rows = [{"broker": broker.engine, "guarantee": guarantee, **row} for row in [
            {"measure": "announcement -> serving on every worker", "workers": args.workers,
             "swaps": args.swaps, **percentiles(serving_s)},
            {"measure": "announcement -> first record scored with it", "workers": args.workers,
             "swaps": args.swaps, **percentiles(first_record_s)},
            {"measure": "positive event -> its item vector scoring on every worker",
             "workers": args.workers, "swaps": args.probes, **percentiles(item_s)},
        ]]  # fmt: skip
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=30)
    write_report(args.out, "freshness", rows, {
        "broker": lambda r: r["broker"],
        "guarantee": lambda r: r["guarantee"],
        "measure": lambda r: r["measure"],
        "workers": lambda r: str(r["workers"]),
        "swaps / probes": lambda r: str(r["swaps"]),
        "p50 ms": lambda r: f"{r['p50_ms']:.1f}",
        "p99 ms": lambda r: f"{r['p99_ms']:.1f}",
        "max ms": lambda r: f"{r['max_ms']:.1f}",
    })


if __name__ == "__main__":
    main()
