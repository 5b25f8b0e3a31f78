"""Failover with real state: kill one of two workers holding 1e6 users and time the takeover.

    .venv/bin/python bench/failover.py [--users 1000000] [--standby 1 0] [--partitions 4]
        [--engine auto|kafka|tansu]

Per standby setting, on a fresh local broker (Apache Kafka, one KRaft node, where a JDK runs it,
else Tansu; the workers run the default guarantee where the broker allows it): ``--users`` encoded
user states (d = 64, 50 recent items, as bench/ready_time.py writes them) go to the table's
changelog; two workers start and recover them (each its active partitions, and with standby
replicas the other worker's too); once the standbys are warm (each worker's RocksDB holds every
user), one worker is SIGKILLed. Failover time is from the kill until the survivor owns every
partition, has recovered, and answers a sample of users from the dead worker's partitions. A
SIGKILL leaves the group only when the session times out (STREAMREC_SESSION_TIMEOUT_S, 6 s), which
is part of the figure.
Writes bench/results/failover.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
import urllib.error
import uuid
from pathlib import Path

import numpy as np
from kafka import KafkaProducer
from kafka.partitioner import murmur2

from core.codec import encode_state
from core.generator import GeneratorConfig, generate
from core.interest import UserState
from core.report import write_report
from models.train import TrainConfig, train
from streams.kafka_edge.topics import USER_TABLE, admin, ensure_topics
from streams.tools.broker import ENGINE_HELP, ENGINES, free_port, start_local_broker, stop_process
from streams.tools.cluster import fetch_json, start_worker, wait_for, wait_until_all_assigned
from streams.settings import Settings

SAMPLE = 20  # users of the dead worker's partitions the survivor must answer


def fill_changelog(settings: Settings, users: int, history: int = 50) -> float:
    """Write ``users`` states to the table's changelog, keyed as the worker keys them; returns
    seconds taken."""
    started = time.monotonic()
    rng = np.random.default_rng(0)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=50,
                             batch_size=1 << 20, acks=1)
    topic = f"{settings.app_id}-{USER_TABLE}-changelog"
    weights = tuple(float(w) for w in np.float32(rng.random(history)))
    vectors = rng.normal(size=(1000, 64)).astype(np.float32)
    for user in range(users):
        state = UserState(
            vector=vectors[user % 1000], last_ts=1_700_000_000_000 + user, count=history,
            recent=tuple(str(i) for i in rng.integers(1, 4000, size=history)),
            recent_weights=weights,
        )
        producer.send(topic, key=f"u{user}".encode(), value=encode_state(state))
        if user % 100_000 == 0:
            print(f"  {user:,} states written", flush=True)
    producer.flush()
    producer.close()
    return time.monotonic() - started


def table_keys(port: int) -> int:
    """RocksDB's estimate of the keys a worker holds (active and standby partitions)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("streamrec_table_keys_estimate "):
                return int(float(line.split()[1]))
    return 0


def answers(port: int, user: str) -> bool:
    try:
        fetch_json(f"http://127.0.0.1:{port}/users/{user}/interest", timeout=5)
        return True
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return False


def run(standby: int, args: argparse.Namespace, model: Path, work: Path) -> dict:
    tag = uuid.uuid4().hex[:8]
    broker = start_local_broker(args.engine, work / f"broker-{tag}")
    guarantee = broker.guarantee(Settings().processing_guarantee)
    print(f"broker: {broker.describe()}; {guarantee}", flush=True)
    workers = []
    try:
        admin(broker.bootstrap).close()
        base = Settings(processing_guarantee=guarantee,
                        bootstrap=broker.bootstrap, app_id=f"failover-{tag}",
                        events_topic=f"ev-{tag}", recs_topic=f"recs-{tag}",
                        partitions=args.partitions, model_path=model, standby_replicas=standby,
                        fetch_max_wait_ms=args.fetch_wait_ms)
        ensure_topics(base)
        fill_s = fill_changelog(base, args.users)
        print(f"standby {standby}: {args.users:,} states in {fill_s:.0f} s", flush=True)
        ports = [free_port(), free_port()]
        started = time.monotonic()
        for n, web_port in enumerate(ports):
            settings = base.model_copy(update={"web_port": web_port,
                                               "state_dir": work / tag / f"w{n}"})
            workers.append(start_worker(settings, work / tag / f"w{n}.log"))
        owned = wait_until_all_assigned(ports, args.partitions, args.timeout, workers)
        startup_s = time.monotonic() - started
        expected = args.users if standby else args.users // 2
        wait_for(lambda: all(table_keys(p) >= 0.95 * expected for p in ports), args.timeout,
                 "standbys warm", interval=2.0)
        warm_s = time.monotonic() - started
        print(f"standby {standby}: all assigned {startup_s:.0f} s, warm {warm_s:.0f} s",
              flush=True)
        survivor, victim = ports
        lost = set(owned[victim])
        sample = [f"u{n}" for n in range(args.users)
                  if (murmur2(f"u{n}".encode()) & 0x7FFFFFFF) % args.partitions in lost][:SAMPLE]
        killed = time.monotonic()
        os.kill(workers[1].pid, signal.SIGKILL)
        workers[1].wait(10)
        wait_until_all_assigned([survivor], args.partitions, args.timeout, workers[:1])
        wait_for(lambda: all(answers(survivor, u) for u in sample), args.timeout,
                 "the survivor to serve the dead worker's users", interval=0.2)
        failover_s = time.monotonic() - killed
        print(f"standby {standby}: failover {failover_s:.1f} s", flush=True)
        return {
            "broker": broker.engine, "guarantee": guarantee, "standby_replicas": standby,
            "users": args.users, "partitions": args.partitions,
            "fill_s": fill_s, "startup_s": startup_s, "warm_s": warm_s,
            "recovery_records_per_s": (args.users if standby else args.users / 2) / warm_s,
            "failover_s": failover_s, "moved_partitions": sorted(lost),
        }
    finally:
        for process in workers:
            stop_process(process, timeout=30)
        stop_process(broker.process, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--standby", type=int, nargs="+", default=[1, 0])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--fetch-wait-ms", type=int, default=Settings().fetch_max_wait_ms)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="failover-") as folder:  # brokers' logs: GBs
        work = Path(folder)
        model = work / "model"
        train(generate(GeneratorConfig(n_users=50, events_per_user=20)), Settings().interest,
              Settings().blend, TrainConfig(model="mf", dim=64, epochs=2), model,
              show_progress=False)
        rows = [run(standby, args, model, work) for standby in args.standby]
    write_report(args.out, "failover", rows, {
        "broker": lambda r: r["broker"],
        "guarantee": lambda r: r["guarantee"],
        "standby replicas": lambda r: str(r["standby_replicas"]),
        "users' state": lambda r: f"{r['users']:,}",
        "2 workers ready, s": lambda r: f"{r['startup_s']:.0f}",
        "state warm on both, s": lambda r: f"{r['warm_s']:.0f}",
        "changelog records/s per worker": lambda r: f"{r['recovery_records_per_s']:,.0f}",
        "failover (kill -> survivor serves), s": lambda r: f"{r['failover_s']:.1f}",
    })


if __name__ == "__main__":
    main()
