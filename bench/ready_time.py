"""Worker start-to-ready time: tuned group timeouts vs Faust's defaults.

    .venv/bin/python bench/ready_time.py [--runs 3] [--state-users 1000000]
        [--engine auto|kafka|tansu]

"Ready" = the worker's /stats/ shows assigned partitions, no rebalance in progress and table
recovery complete (streams.tools.cluster.is_ready), measured from process spawn, so it includes
Python, Torch and Faust start-up. Each run uses a new consumer group; a "restart" run reuses the
previous run's group and state dir after a clean stop. ``--state-users N`` first writes N users'
state (d = 64, 50 recent items) to the table's changelog: "fresh" then recovers all of it into an
empty state dir, "restart" finds it in local RocksDB. The broker is a local Apache Kafka (one
KRaft node) where a JDK runs it, else Tansu; the worker runs the default guarantee where the
broker allows it. Writes bench/results/ready_time.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path


from models.train import TrainConfig, train
from streams.kafka_edge.topics import admin, ensure_topics
from streams.tools.broker import ENGINE_HELP, ENGINES, free_port, start_local_broker, stop_process
from streams.tools.cluster import start_worker, wait_until_ready
from core.generator import GeneratorConfig, generate
from core.report import write_report
from streams.settings import Settings

from failover import fill_changelog  # bench/ is on sys.path when run as a script

PROFILES = {
    "tuned (6 / 1 / 6 s)": {},
    "faust defaults (60 / 3 / 60 s)": {
        "session_timeout_s": 60.0,
        "heartbeat_interval_s": 3.0,
        "rebalance_timeout_s": 60.0,
    },
}


def timed_start(settings: Settings, log: Path, timeout: float = 180) -> float:
    started = time.monotonic()
    process = start_worker(settings, log)
    try:
        wait_until_ready(settings.web_port, timeout=timeout, process=process)
        return time.monotonic() - started
    finally:
        stop_process(process, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--state-users", type=int, default=0,
        help="also time a worker recovering this many users' state (tuned profile)",
    )
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ready-"))
    broker = start_local_broker(args.engine, work)
    bootstrap = broker.bootstrap
    guarantee = broker.guarantee(Settings().processing_guarantee)
    print(f"broker: {broker.describe()} at {bootstrap}; {guarantee}", flush=True)
    rows = []
    try:
        admin(bootstrap).close()
        model = work / "model"
        train(
            generate(GeneratorConfig(n_users=50, events_per_user=20)),
            Settings().interest,
            Settings().blend,
            TrainConfig(model="mf", dim=64, epochs=3),
            model,
            show_progress=False,
        )
        for name, overrides in PROFILES.items():
            fresh, restart = [], []
            for run in range(args.runs):
                tag = uuid.uuid4().hex[:8]
                settings = Settings(
                    processing_guarantee=guarantee,
                    bootstrap=bootstrap,
                    app_id=f"ready-{tag}",
                    events_topic=f"ev-{tag}",
                    recs_topic=f"recs-{tag}",
                    model_path=model,
                    state_dir=work / tag,
                    web_port=free_port(),
                    **overrides,
                )
                ensure_topics(settings)
                fresh.append(timed_start(settings, work / f"{tag}.log"))
                restart.append(timed_start(settings, work / f"{tag}-restart.log"))
                print(f"{name} run {run}: fresh {fresh[-1]:.1f} s, restart {restart[-1]:.1f} s")
            rows.append(
                {
                    "profile": name,
                    "fresh_s": fresh,
                    "restart_s": restart,
                    "fresh_median_s": statistics.median(fresh),
                    "restart_median_s": statistics.median(restart),
                }
            )
        if args.state_users:
            tag = uuid.uuid4().hex[:8]
            settings = Settings(
                processing_guarantee=guarantee, bootstrap=bootstrap, app_id=f"ready-{tag}",
                events_topic=f"ev-{tag}", recs_topic=f"recs-{tag}", model_path=model,
                state_dir=work / tag, web_port=free_port(),
            )
            ensure_topics(settings)
            fill_changelog(settings, args.state_users)
            fresh = timed_start(settings, work / f"{tag}.log", timeout=1800)
            restart = timed_start(settings, work / f"{tag}-restart.log", timeout=1800)
            print(f"{args.state_users:,} users: fresh {fresh:.1f} s, restart {restart:.1f} s")
            rows.append({
                "profile": f"tuned, {args.state_users:,} users' state in the changelog",
                "fresh_s": [fresh], "restart_s": [restart],
                "fresh_median_s": fresh, "restart_median_s": restart,
            })
    finally:
        stop_process(broker.process, timeout=30)
    rows = [{**row, "broker": broker.engine, "guarantee": guarantee} for row in rows]
    write_report(
        args.out,
        "ready_time",
        rows,
        {
            "broker": lambda r: r["broker"],
            "guarantee": lambda r: r["guarantee"],
            "group timeouts (session / heartbeat / rebalance)": lambda r: r["profile"],
            "fresh start, median s": lambda r: f"{r['fresh_median_s']:.1f}",
            "restart, median s": lambda r: f"{r['restart_median_s']:.1f}",
            "runs": lambda r: str(len(r["fresh_s"])),
        },
    )


if __name__ == "__main__":
    main()
