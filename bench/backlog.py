"""Drain a backlog through the worker, against the consumer's fetch wait, on either broker.

    .venv/bin/python bench/backlog.py [--events 100000] [--rate 600] [--waits 10 100 500]
        [--engine auto|kafka|tansu]

Why (issue 15, defect 6): with a short ``STREAMREC_FETCH_MAX_WAIT_MS`` a live run kept up for a
while, then fell far behind and never drained. The cause is the embedded broker: Tansu's memory
storage does work proportional to the records in a partition on every fetch, so a consumer that
fetches that often makes the broker's load grow with the log until it is saturated. A longer
wait means fewer fetches; Apache Kafka (an offset index) does not slow down with the log, and
answers a fetch as soon as data is there whatever the wait. The figures are in
docs/benchmarks.md, "Backlog against the consumer fetch wait".

Per fetch wait, on a fresh local broker (Apache Kafka, one KRaft node, where a JDK runs it, else
Tansu; the worker runs the default guarantee where the broker allows it): one worker (4 partitions)
runs while a producer offers ``--rate`` events/s until ``--events`` are sent ("live"), then the
backlog left is timed until drained; and the same events produced before the worker starts
("preloaded") are timed from the worker's start. Lag is sampled from /stats/ every second. Writes
bench/results/backlog.{json,md}.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

from core.generator import GeneratorConfig, generate
from core.report import write_report
from models.train import TrainConfig, train
from streams.kafka_edge.topics import admin, ensure_topics
from streams.tools.broker import ENGINE_HELP, ENGINES, free_port, start_local_broker, stop_process
from streams.tools.cluster import start_worker, wait_until_ready, worker_stats
from streams.tools.producer import produce_events, to_message
from streams.settings import Settings

SAMPLE_S = 1.0


def applied(settings: Settings) -> int:
    stats = worker_stats(settings.web_port)
    return 0 if stats is None else stats["applied"] + sum(stats["dead_lettered"].values())


def run(mode: str, wait_ms: int, events: list, model: Path, work: Path, args: argparse.Namespace
        ) -> dict:
    """One fetch wait, one mode, on a broker of its own (Tansu's cost grows with its log)."""
    tag = uuid.uuid4().hex[:8]
    broker = start_local_broker(args.engine, work / f"broker-{tag}")
    guarantee = broker.guarantee(Settings().processing_guarantee)
    worker = None
    try:
        admin(broker.bootstrap).close()
        settings = Settings(
            processing_guarantee=guarantee, bootstrap=broker.bootstrap, app_id=f"backlog-{tag}",
            events_topic=f"ev-{tag}",
            recs_topic=f"recs-{tag}", partitions=4, model_path=model, state_dir=work / tag,
            web_port=free_port(), fetch_max_wait_ms=wait_ms, explain=0,
        )
        ensure_topics(settings)
        messages = [to_message(e) for e in events]
        if mode == "preloaded":
            produce_events(settings, messages, rate=0)
        worker = start_worker(settings, work / f"worker-{tag}.log")
        wait_until_ready(settings.web_port, timeout=120, process=worker)
        producer = threading.Thread(
            target=produce_events, args=(settings, messages, args.rate if mode == "live" else 0)
        )
        started = time.monotonic()
        if mode == "live":
            producer.start()
        samples, produced_at = [], None
        while True:
            now = time.monotonic() - started
            done = applied(settings)
            if mode == "live" and produced_at is None and not producer.is_alive():
                produced_at, lag_at_end = now, len(events) - done
            offered = len(events) if mode == "preloaded" or produced_at else min(
                len(events), args.rate * now)
            samples.append({"t": round(now, 1), "applied": done, "lag": max(0, int(offered - done))})
            if done >= len(events) or now > args.timeout:
                break
            time.sleep(SAMPLE_S)  # sampling interval, not synchronisation
        producer.join() if mode == "live" else None
        finished = time.monotonic() - started
        if mode == "preloaded":
            produced_at, lag_at_end = 0.0, len(events)
        drain_s = finished - produced_at
        row = {
            "broker": broker.engine, "guarantee": guarantee,
            "mode": mode, "fetch_max_wait_ms": wait_ms, "events": len(events),
            "offered_per_s": args.rate if mode == "live" else None,
            "drained": done >= len(events), "applied": done,
            "max_lag": max(s["lag"] for s in samples), "lag_at_end_of_production": lag_at_end,
            "drain_s": drain_s, "drain_per_s": (lag_at_end - (len(events) - done)) / drain_s
            if drain_s > 0 else None,
            "overall_per_s": done / finished, "samples": samples,
        }
        print(f"{mode} wait {wait_ms} ms: applied {done:,}/{len(events):,}, max lag "
              f"{row['max_lag']:,}, drain {drain_s:.0f} s at {row['drain_per_s'] or 0:,.0f}/s")
        return row
    finally:
        if worker is not None:
            stop_process(worker, timeout=30)
        stop_process(broker.process, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=600.0, help="offered events/s (live)")
    parser.add_argument("--waits", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--modes", nargs="+", default=["live", "preloaded"],
                        choices=["live", "preloaded"])
    parser.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backlog-") as folder:  # brokers' logs: GBs
        work = Path(folder)
        users = max(1, args.events // 50)
        events = generate(GeneratorConfig(n_users=users, n_items=2000, events_per_user=50,
                                          seed=3))
        events = events[: args.events]
        model = work / "model"
        train(events[:20_000], Settings().interest, Settings().blend,
              TrainConfig(model="mf", dim=32, epochs=2), model, show_progress=False)
        rows = [run(mode, wait, events, model, work, args) for mode in args.modes
                for wait in args.waits]
    write_report(args.out, "backlog", rows, {
        "broker": lambda r: r["broker"],
        "guarantee": lambda r: r["guarantee"],
        "mode": lambda r: r["mode"] + (f" at {r['offered_per_s']:,.0f}/s" if r["offered_per_s"]
                                       else ""),
        "fetch_max_wait_ms": lambda r: str(r["fetch_max_wait_ms"]),
        "events": lambda r: f"{r['events']:,}",
        "drained": lambda r: "yes" if r["drained"] else f"no ({r['applied']:,} applied)",
        "max lag": lambda r: f"{r['max_lag']:,}",
        "backlog at end of production": lambda r: f"{r['lag_at_end_of_production']:,}",
        "drain s": lambda r: f"{r['drain_s']:.0f}",
        "drain events/s": lambda r: f"{r['drain_per_s']:,.0f}" if r["drain_per_s"] else "-",
        "overall events/s": lambda r: f"{r['overall_per_s']:,.0f}",
    })


if __name__ == "__main__":
    main()
