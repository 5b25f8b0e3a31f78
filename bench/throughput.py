"""Throughput: the pipeline against pass-through ceilings and the peer, same broker, same run.

    .venv/bin/python bench/throughput.py [--events 30000] [--engine auto|kafka|tansu] [--bootstrap H:P] [--profile]

The broker is a local Apache Kafka (one KRaft node) where a JDK runs it, else Tansu; each row
names it. Every run gets fresh topics and its own worker process(es), on a generated ML-100K-sized catalog
(1,682 items; MF model, d = 64). A run starts its workers, waits until they process a canary event
on every partition (so start-up and rebalancing are excluded), then produces the measured events
flat out with librdkafka (fast enough not to be the limit) and reads the output topic.
Rate = events / (timestamp of the last output record - that of the first), the records being
counted by reading (the embedded broker's ListOffsets undercounts, streams/kafka_edge/compat.py).
``--profile`` samples every worker with py-spy while it drains (bench/profiling.py).
Writes bench/results/throughput.{json,md} (``--name`` another name).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from profiling import Profiler
from throughput_runs import PAIRS, RUNS, SAME_BATCH, Run
from models.train import TrainConfig, train
from streams.kafka_edge.topics import admin, ensure_topics
from streams.tools.broker import ENGINE_HELP, ENGINES, free_port, start_local_broker, stop_process
from streams.tools.cluster import child_env, start_worker, wait_for, wait_until_ready, worker_stats
from core.events import Event, encode_event
from core.generator import GeneratorConfig, generate
from core.report import write_report
from streams.settings import Settings

CATALOG = GeneratorConfig(n_users=2000, n_items=1682, events_per_user=40, seed=11)
ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = Path(os.environ.get("BENCH_PEER_PYTHON", ROOT / ".venv-peer" / "bin" / "python"))


class Output:
    """Reads every partition of a topic from the start, keeping the count and the timestamps of
    the records after the first ``skip`` (the canaries)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, skip: int,
                 isolation: str) -> None:  # fmt: skip
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10,
            isolation_level=isolation,
        )
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer.assign(tps)
        for tp in tps:
            self.consumer.seek(tp, 0)
        self.skip = skip
        self.records = 0
        self.timestamps: list[int] = []

    def read(self) -> int:
        for batch in self.consumer.poll(timeout_ms=100).values():
            for record in batch:
                self.records += 1
                if self.records > self.skip:
                    self.timestamps.append(record.timestamp)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def batch_figures(web_ports: list[int]) -> dict:
    """Mean events per micro-batch and the share of worker time spent scoring, from /metrics."""
    totals: dict[str, float] = {}
    for port in web_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            for family in text_string_to_metric_families(response.read().decode()):
                for sample in family.samples:
                    totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    batches = totals.get("streamrec_batch_events_count", 0)
    return {
        "batches": int(batches),
        "mean_batch": round(totals.get("streamrec_batch_events_sum", 0) / max(batches, 1), 1),
        "scoring_s": round(totals.get("streamrec_scoring_seconds_sum", 0), 2),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(run: Run, settings: Settings, log: Path) -> subprocess.Popen:
    if run.kind == "pipeline":
        return start_worker(settings, log, loglevel="info")
    log.parent.mkdir(parents=True, exist_ok=True)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if run.kind == "quix":
        command = [str(PEER_PYTHON), str(ROOT / "bench" / "quix_passthrough.py"),
                   settings.bootstrap, settings.app_id, settings.events_topic,
                   settings.recs_topic, str(settings.state_dir), run.peer_guarantee]
    else:
        command = [sys.executable, str(ROOT / "bench" / "passthrough.py"), "worker", "-l", "info"]
    return subprocess.Popen(
        command,
        env={**child_env(settings, os.environ), "BENCH_MODE": run.kind,
             "BENCH_OUT_TOPIC": settings.recs_topic, "PYTHONPATH": str(ROOT)},
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def measure(run: Run, bootstrap: str, model: Path, events: list[Event], work: Path,
            profile_dir: Path | None, overrides: dict[str, str], engine: str) -> dict:
    tag = uuid.uuid4().hex[:8]
    fields = {"explain": "0", **run.env, **overrides}  # explanations off unless a run says
    if engine == "tansu":  # no transactions there
        fields["processing_guarantee"] = "at_least_once"
    base = Settings(
        bootstrap=bootstrap, app_id=f"tp-{tag}", events_topic=f"events-{tag}",
        recs_topic=f"recs-{tag}", partitions=run.partitions, model_path=model, **fields,
    )
    ensure_topics(base)
    workers = [base.model_copy(update={"state_dir": work / tag / f"w{n}", "web_port": free_port()})
               for n in range(run.workers)]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "partitioner": "murmur2_random"})

    def send(events: list[Event]) -> None:
        for event in events:
            producer.produce(base.events_topic, encode_event(event), event.user_id.encode())
            producer.poll(0)
        producer.flush()

    # Ids of their own: the measured copy of events[0], or the other partition's canary, must
    # not look like a producer retry (the dedupe window would skip it, with no record).
    for partition in range(run.partitions):
        canary = events[0]._replace(event_id=f"canary-{tag}-{partition}")
        producer.produce(base.events_topic, encode_event(canary), canary.user_id.encode(),
                         partition=partition)
    producer.flush()
    if run.backlog:
        copies = range(run.backlog // len(events) + 1)  # each copy with ids of its own
        events = [e._replace(event_id=f"{e.event_id}-{n}") for n in copies for e in events]
        events = events[: run.backlog]
        send(events)  # all queued: the workers start on a full topic
    processes = [start(run, s, work / tag / f"w{n}.log") for n, s in enumerate(workers)]
    guarantee = (run.peer_guarantee.replace("-", "_") if run.kind == "quix"
                 else base.processing_guarantee if run.kind == "pipeline" else "at_least_once")
    output = Output(bootstrap, base.recs_topic, run.partitions, skip=run.partitions,
                    isolation="read_uncommitted" if engine == "tansu" else "read_committed")
    try:
        if run.kind == "pipeline":
            for settings, process in zip(workers, processes):
                wait_until_ready(settings.web_port, 120, process)
        wait_for(lambda: output.read() >= run.partitions, 120, "the canary records",
                 process=processes[0])
        # a drain is under way by now: its CPU counts from the start (start-up included)
        cpu_before = [0.0 if run.backlog else cpu_seconds(p.pid) for p in processes]
        profiler = Profiler(profile_dir, tag, [p.pid for p in processes]) if profile_dir else None
        if not run.backlog:
            send(events)
        sent_in = len(events) + run.partitions  # canaries included
        if run.kind == "pipeline":
            def drained() -> bool:  # every event applied and every record it caused read back
                stats = [worker_stats(s.web_port) or {} for s in workers]
                applied = sum(s.get("applied", 0) for s in stats)
                sent = sum(s.get("recommendations_out", 0) for s in stats)
                return applied >= sent_in and output.read() >= sent
        else:
            def drained() -> bool:
                return output.read() >= sent_in
        wait_for(drained, 600, f"{run.name}: the output of {len(events)} events",
                 process=processes[0])
        cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(processes, cpu_before))
        batches = batch_figures([s.web_port for s in workers]) if run.kind == "pipeline" else {}
        profile = profiler.stop() if profiler else None
    finally:
        for process in processes:
            stop_process(process, timeout=30)
        output.close()
    seconds = (max(output.timestamps) - min(output.timestamps)) / 1000
    return {
        "run": run.name, "guarantee": guarantee, "workers": run.workers,
        "partitions": run.partitions,
        "events": len(events), "records": len(output.timestamps), "seconds": round(seconds, 2),
        "events_per_s": round(len(events) / seconds), "worker_cpu_s": round(cpu, 1), **batches,
        **({"profile": profile} if profile else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--bootstrap", help="use this broker instead of starting a local one")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--runs", nargs="*", help="only the runs whose name contains one of these")
    parser.add_argument("--profile", action="store_true", help="py-spy every worker while draining")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="override a worker setting in every run, e.g. batch_size=1000")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the chosen runs this many times over, in turn (pairs measured "
                        "side by side; the broker warms up over the first)")
    parser.add_argument("--warm-up", action="store_true",
                        help="first run the first chosen pipeline run once, unrecorded (the "
                        "broker's JVM and the page cache warm up over it)")
    parser.add_argument("--name", default="throughput",
                        help="the results' file name: <out>/<name>.{json,md}")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    broker, bootstrap, engine = None, args.bootstrap, "given"
    if bootstrap is None:
        broker = start_local_broker(args.engine, work)
        bootstrap, engine = broker.bootstrap, broker.engine
        print(f"broker: {broker.describe()} at {bootstrap}", flush=True)
    try:
        admin(bootstrap).close()
        generated = generate(CATALOG)
        model = work / "model"
        train(generated[: len(generated) // 2], Settings().interest, Settings().blend,
              TrainConfig(model="mf", dim=64, epochs=3), model, show_progress=False)
        events = (generated[len(generated) // 2:] * 2)[: args.events]
        rows = []
        chosen = [run for run in RUNS
                  if not args.runs or any(part in run.name for part in args.runs)]  # fmt: skip
        warm = [run for run in chosen if run.kind == "pipeline"][:1] if args.warm_up else []
        for run in warm:
            measure(run, bootstrap, model, events, work, None, overrides, engine)
            print(f"warmed up with {run.name}", flush=True)
        # every other turn in reverse, so neither of a pair always runs first (warmer or colder)
        for turn, run in [(turn, run) for turn in range(1, args.repeat + 1)
                          for run in (chosen if turn % 2 else chosen[::-1])]:  # fmt: skip
            if run.kind == "quix" and not PEER_PYTHON.exists():
                print(f"skipping {run.name}: no {PEER_PYTHON} (make bench creates it)")
                continue
            if run.kind == "quix" and run.peer_guarantee != "at-least-once" and engine == "tansu":
                print(f"skipping {run.name}: Tansu has no transactions")
                continue
            row = {**measure(run, bootstrap, model, events, work,
                             args.out / "profiles" if args.profile else None, overrides, engine),
                   "broker": engine, "turn": turn}
            print(row, flush=True)
            rows.append(row)
    finally:
        if broker is not None:
            stop_process(broker.process, timeout=30)
    rate = {(row["turn"], row["run"]): row["events_per_s"] for row in rows}

    def against(run: Run, row: dict) -> float | None:
        """``row``'s rate over ``run``'s in the same turn (side by side)."""
        base = rate.get((row["turn"], run.name))
        return base and row["events_per_s"] / base

    def ratio(value: float | None) -> str:
        return "" if not value else f"{value:.2f}"

    write_report(args.out, args.name, rows, {
        "turn": lambda r: str(r.get("turn", 1)),
        "run": lambda r: r["run"],
        "broker": lambda r: r["broker"],
        "guarantee": lambda r: r["guarantee"],
        "events": lambda r: f"{r['events']:,}",
        "records out": lambda r: f"{r['records']:,}",
        "events/s": lambda r: f"{r['events_per_s']:,}",
        "worker CPU s": lambda r: f"{r['worker_cpu_s']}",
        "CPU ms/event": lambda r: f"{1000 * r['worker_cpu_s'] / r['events']:.3f}",
        "× Faust batched pass-through": lambda r: ratio(against(RUNS[1], r)),
        "× Faust naive pass-through": lambda r: ratio(against(RUNS[0], r)),
        "× Quix pass-through": lambda r: ratio(against(RUNS[2], r)),
        "× its at-least-once twin": lambda r: ratio(against(PAIRS[r["run"]], r))
        if r["run"] in PAIRS else "",
        "× at-least-once at its batch size": lambda r: ratio(against(SAME_BATCH[r["run"]], r))
        if r["run"] in SAME_BATCH else "",
    })


if __name__ == "__main__":
    main()
