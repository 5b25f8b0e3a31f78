"""End-to-end latency: an event's produce call -> its recommendation record read by a consumer.

    .venv/bin/python bench/latency.py [--loads 500 1000 2000] [--seconds 10]
        [--engine auto|kafka|tansu] [--bootstrap H:P] [--partitions 1] [--profiles ...]

Two Kafka hops (events -> worker -> recommendations -> consumer) on one worker, one partition
unless ``--partitions`` says more, a generated 1,682-item catalog (ML-100K-sized), d = 64. For each
consumer fetch-wait profile (Faust's fixed 1500 ms and the tuned STREAMREC_FETCH_MAX_WAIT_MS) the
producer sends at fixed offered loads, paced by the clock, then flat out to find the maximum, then
at 80% of that maximum. Latency is measured per event from the wall clock at its send to the wall
clock when the consumer reads the record that names it (same machine, same clock). The broker is a
local Apache Kafka (one KRaft node) where a JDK runs it, else Tansu; the worker runs the guarantee
asked for where that broker allows it (Tansu has no transactions), and the consumer reads
read_committed under exactly-once.
Writes bench/results/latency.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from models.train import TrainConfig, train
from streams.kafka_edge.topics import admin, ensure_topics
from streams.kafka_edge.transactions import isolation_level
from streams.tools.broker import ENGINE_HELP, ENGINES, free_port, start_local_broker, stop_process
from streams.tools.cluster import WorkerError, start_worker, wait_for, wait_until_ready
from core.events import encode_event
from core.generator import GeneratorConfig, generate
from core.report import write_report
from streams.settings import Settings

CATALOG = GeneratorConfig(n_users=2000, n_items=1682, events_per_user=40, seed=11)
PROFILES = {"faust fixed 1500 ms": 1500, "tuned 10 ms": 10}
LATENCY_COLUMNS = {  # a report's columns of a row made by :func:`summarise`
    "p50 ms": lambda r: f"{r['p50_ms']:.1f}",
    "p95 ms": lambda r: f"{r['p95_ms']:.1f}",
    "p99 ms": lambda r: f"{r['p99_ms']:.1f}",
    "max ms": lambda r: f"{r['max_ms']:.1f}",
}


class Arrivals(threading.Thread):
    """Reads the recommendations topic from its end; remembers when each trigger event's first
    record arrived."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5,
            isolation_level=isolation_level(settings.processing_guarantee),
        )
        partitions = [TopicPartition(settings.recs_topic, p) for p in range(settings.partitions)]
        self.consumer.assign(partitions)
        self.consumer.seek_to_end()
        for tp in partitions:
            self.consumer.position(tp)  # resolve "end" now, before anything is produced
        self.seen: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for records in self.consumer.poll(timeout_ms=50).values():
                now = time.time()
                for record in records:
                    self.seen.setdefault(orjson.loads(record.value)["trigger"]["event_id"], now)


def send(producer: KafkaProducer, settings: Settings, events: list, rate: float | None,
         tag: str) -> dict[str, float]:
    """Send ``events`` at ``rate``/s (None: flat out); return event id -> send time, in order."""
    sent = {}
    started = time.time()
    for n, event in enumerate(events):
        if rate:
            delay = started + n / rate - time.time()
            if delay > 0:
                time.sleep(delay)  # pacing the offered load, not synchronisation
        event_id = f"{tag}-{n}"
        message = encode_event(event._replace(event_id=event_id))
        sent[event_id] = time.time()
        producer.send(settings.events_topic, key=event.user_id.encode(), value=message)
    producer.flush()
    return sent


def summarise(profile: str, load: str, sent: dict[str, float], arrivals: Arrivals) -> dict:
    arrived = {e: arrivals.seen[e] for e in sent if e in arrivals.seen}
    latency = np.array([arrived[e] - sent[e] for e in arrived]) * 1000
    span = max(arrived.values()) - min(sent.values())
    return {
        "profile": profile,
        "offered": load,
        "events": len(sent),
        "received": int(latency.size),
        "achieved_per_s": round(len(arrived) / span, 1),
        **{f"p{q}_ms": round(float(np.percentile(latency, q)), 2) for q in (50, 95, 99)},
        "max_ms": round(float(latency.max()), 2),
    }


def measure(profile: str, settings: Settings, replay: list, loads: list[float], seconds: float,
            max_events: int) -> list[dict]:
    """The fixed loads, flat out, then 80% of flat out, against the worker ``settings`` name."""
    arrivals = Arrivals(settings)
    arrivals.start()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=0)
    events = itertools.cycle(replay)

    def run(load: str, rate: float | None, count: int) -> dict:
        batch = list(itertools.islice(events, count))
        sent = send(producer, settings, batch, rate, f"{load}-{uuid.uuid4().hex[:6]}")
        try:
            wait_for(lambda: all(e in arrivals.seen for e in sent), 120, "every record")
        except WorkerError as exc:
            print(f"{profile} {load}: {exc}; reporting the records that came")
        row = summarise(profile, load, sent, arrivals)
        print(row, flush=True)
        return row

    try:
        run("warm-up", 200, 400)
        rows = [run(f"{load:g}/s", load, int(load * seconds)) for load in loads]
        rows.append(run("max", None, max_events))
        eighty = 0.8 * rows[-1]["achieved_per_s"]
        rows.append(run(f"80% of max ({eighty:,.0f}/s)", eighty, int(eighty * seconds)))
        return rows
    finally:
        arrivals.stopping.set()
        arrivals.join()
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=float, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=10.0, help="per fixed load")
    parser.add_argument("--max-events", type=int, default=20_000, help="flat-out run")
    parser.add_argument("--bootstrap", help="use this broker instead of starting a local one")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--guarantee", choices=["exactly_once", "at_least_once"],
                        default=Settings().processing_guarantee,
                        help="the worker's (Tansu, which has no transactions: at_least_once)")
    parser.add_argument("--partitions", type=int, default=1,
                        help="of the events and records topics, all on the one worker")
    parser.add_argument("--profiles", nargs="+", choices=list(PROFILES), default=list(PROFILES),
                        help="the consumer fetch-wait profiles to run")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="latency-"))
    processes = []
    bootstrap, engine, guarantee = args.bootstrap, "given", args.guarantee
    if bootstrap is None:
        broker = start_local_broker(args.engine, work)
        processes.append(broker.process)
        bootstrap, engine, guarantee = broker.bootstrap, broker.engine, broker.guarantee(guarantee)
        print(f"broker: {broker.describe()} at {bootstrap}; {guarantee}", flush=True)
    rows = []
    try:
        admin(bootstrap).close()
        events = generate(CATALOG)
        model = work / "model"
        train(events[: len(events) // 2], Settings().interest, Settings().blend,
              TrainConfig(model="mf", dim=64, epochs=5), model, show_progress=False)
        replay = events[len(events) // 2 :]
        for profile in args.profiles:
            wait_ms, tag = PROFILES[profile], uuid.uuid4().hex[:8]
            settings = Settings(
                processing_guarantee=guarantee, bootstrap=bootstrap, app_id=f"latency-{tag}",
                events_topic=f"events-{tag}", recs_topic=f"recs-{tag}", partitions=args.partitions,
                model_path=model, state_dir=work / tag / "state", web_port=free_port(),
                fetch_max_wait_ms=wait_ms, explain=0,
            )
            ensure_topics(settings)
            worker = start_worker(settings, work / tag / "worker.log")
            processes.append(worker)
            wait_until_ready(settings.web_port, timeout=120, process=worker)
            rows += [{**row, "broker": engine, "guarantee": guarantee} for row in
                     measure(profile, settings, replay, args.loads, args.seconds, args.max_events)]
            stop_process(worker, timeout=30)
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=30)
    write_report(args.out, "latency", rows, {
        "broker": lambda r: r["broker"],
        "guarantee": lambda r: r["guarantee"],
        "consumer fetch wait": lambda r: r["profile"],
        "offered load": lambda r: r["offered"],
        "events": lambda r: f"{r['events']:,}",
        "achieved events/s": lambda r: f"{r['achieved_per_s']:,.0f}",
        **LATENCY_COLUMNS,
    })


if __name__ == "__main__":
    main()
