"""Soak the pipeline: hostile input, SIGKILLed workers, a frozen broker, scaling; then check.

A generated stream with hostile messages goes through workers that are SIGKILLed and restarted,
a broker that is frozen and a group that is scaled; then every user is checked against an
uninterrupted reference.

    .venv/bin/python bench/soak.py [--events 100000] [--kills 10] [--freeze-s 10] [--hostile 200]

Phases, a progress line each: the embedded broker (memory-only, so it is never restarted: the
freeze is SIGSTOP, then SIGCONT) -> a small MF model (or --model) -> topics -> --workers workers
-> the stream (core.generator at --rate, with --hostile messages of the kinds in
bench/soak_hostile.py) and, at random points of it, the faults: --kills SIGKILLs each followed by
a restart, one freeze, a scale N -> N+1 -> N -> read the events topic back -> wait until every user
has caught up -> check each user's /users/<id>/interest against tests/helpers.reference_state, the
dead-letter topic against the reasons expected, the recommendations topic against the events.
Writes bench/results/soak.{json,md} and soak_hostile.{json,md}; exits 1 if any event was lost or
applied twice (or a user's state could not be read), 2 if the run itself failed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from rich.progress import Progress

# The reference is the tests' oracle (soak_check.py says why it stays there): import it from
# the repository, which `python bench/soak.py` does not otherwise put on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.generator import GeneratorConfig, generate  # noqa: E402
from soak_cluster import Cluster  # noqa: E402
from soak_faults import Faults  # noqa: E402
from soak_hostile import mix  # noqa: E402
from soak_report import STARTED, check_run, say, write  # noqa: E402
from streams.kafka_edge.topics import ensure_topics  # noqa: E402
from streams.tools.broker import ENGINES, start_local_broker  # noqa: E402
from streams.tools.broker import stop_process  # noqa: E402
from streams.tools.cluster import wait_for  # noqa: E402
from streams.tools.producer import produce_events  # noqa: E402
from streams.settings import Settings  # noqa: E402

# The worker skips a repeated event_id (STREAMREC_DEDUPE_WINDOW), so a retry it applies is an
# event applied twice. --no-dedupe-check counts such retries apart (`retries.applied`) instead.
DEDUPE_CHECKED = True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--events", type=int, default=100_000, help="valid events generated (default 100,000)")
    add("--users", type=int, default=1000, help="users they are spread over")
    add("--items", type=int, default=200, help="catalog size of the generated stream and model")
    add("--rate", type=float, default=500.0, help="messages per second sent (0 = flat out)")
    add("--workers", type=int, default=1, help="workers at the start (scaled to N+1 and back)")
    add("--partitions", type=int, default=4)
    add("--standby-replicas", type=int, default=1, help="the workers' STREAMREC_STANDBY_REPLICAS")
    add("--kills", type=int, default=10, help="SIGKILLs of a random worker, each then restarted"
        " (with exactly-once, every second one while it is inside a transaction)")
    add("--guarantee", choices=("exactly_once", "at_least_once"), default="exactly_once",
        help="the workers' processing guarantee (at_least_once on Tansu, which has no "
        "transactions)")
    add("--freeze-s", type=float, default=10.0, help="seconds the broker is SIGSTOPped (0 = none)")
    add("--engine", choices=ENGINES, default="auto",
        help="the broker: Apache Kafka where a JDK runs it (auto), or Tansu")
    add("--broker-kills", type=int, default=None,
        help="SIGKILLs of the broker, each then restarted on its log (default 1 on Apache Kafka; "
        "Tansu loses every topic, so none there)")
    add("--zombies", type=int, default=1, help="workers SIGSTOPped until the others own their "
        "partitions, then SIGCONTed (needs --scale or --workers 2+)")
    add("--scale", action=argparse.BooleanOptionalAction, default=True,
        help="start a worker a quarter into the stream, retire the oldest at three quarters")
    add("--hostile", type=int, default=200, help="hostile messages mixed in (kinds in turn)")
    add("--dedupe-check", action=argparse.BooleanOptionalAction, default=DEDUPE_CHECKED,
        help="count a retry (same event_id) the worker applies as applied twice")
    add("--model", type=Path, help="model artifact to serve (default: train a small MF)")
    add("--seed", type=int, default=0)
    add("--drain-timeout", type=float, default=300.0, help="seconds to wait for catch-up")
    add("--workdir", type=Path, help="logs, state dirs and model (default: a new temp dir)")
    add("--out", type=Path, default=Path("bench/results"))
    add("--name", default="soak", help="report file name under --out")
    args = parser.parse_args(argv)
    if args.events < 1 or args.users < 1 or args.events < args.users:
        parser.error("--events must be at least --users, and both positive")
    if args.workers < 1 or args.kills < 0 or args.freeze_s < 0 or args.rate < 0 or \
            args.zombies < 0 or (args.broker_kills or 0) < 0:
        parser.error("--workers must be positive; --kills, --freeze-s, --rate, --zombies and "
                     "--broker-kills not negative")
    if args.zombies and args.workers < 2 and not args.scale:
        parser.error("a zombie needs a second worker to take its partitions: --scale or --workers 2")
    return args


def small_model(out: Path, items: int) -> Path:
    """An MF artifact (d = 16) on a generated log of the same catalog, in seconds."""
    from models.train import TrainConfig, train

    events = generate(GeneratorConfig(n_users=100, n_items=items, events_per_user=30, seed=1))
    train(events, Settings().interest, Settings().blend, TrainConfig(model="mf", dim=16, epochs=5),
          out, show_progress=False)
    return out


def fault_plan(args: argparse.Namespace, rng: np.random.Generator) -> list[tuple[float, str]]:
    """(share of the stream sent, fault), in order: kills at random points, the freeze midway,
    the scale-up at a quarter and the scale-down at three quarters."""
    plan = [(float(at), "kill") for at in rng.uniform(0.05, 0.95, args.kills)]
    if args.freeze_s:
        plan.append((0.5, "freeze"))
    # while the group has two workers or more (the scale-up is at a quarter)
    plan += [(0.3 + 0.4 * (n + 1) / (args.zombies + 1), "zombie") for n in range(args.zombies)]
    plan += [(0.4 + 0.2 * (n + 1) / (args.broker_kills + 1), "broker kill")
             for n in range(args.broker_kills or 0)]
    if args.scale:
        plan += [(0.25, "scale up"), (0.75, "scale down")]
    return sorted(plan)


def stream_with_faults(base: Settings, messages: list, faults: Faults,
                       plan: list[tuple[float, str]], rate: float) -> int:
    """Send ``messages`` at ``rate`` in a thread and run each fault when its share is sent;
    return how many were sent."""
    progress = Progress(disable=True)  # produce_events counts into it; nothing is drawn
    stop = threading.Event()
    sent: list[int] = []
    producer = threading.Thread(
        target=lambda: sent.append(produce_events(base, messages, rate, progress, stop)),
        daemon=True,
    )
    faults.streaming = producer.is_alive

    def produced() -> int:
        return int(progress.tasks[0].completed) if progress.tasks else 0

    expected_s = len(messages) / rate if rate else 60.0
    producer.start()
    try:
        for share, fault in plan:
            wait_for(lambda: produced() >= share * len(messages) or not producer.is_alive(),
                     2 * expected_s + 600, f"{share:.0%} of the stream to be sent")
            say("fault", faults.safely(fault, produced()))
        wait_for(lambda: not producer.is_alive(), 2 * expected_s + 600, "the stream to be sent")
    finally:
        stop.set()
        producer.join(30)
    return sent[0] if sent else produced()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    broker = start_local_broker(args.engine, workdir)
    if args.broker_kills is None:
        args.broker_kills = 1 if broker.engine == "kafka" else 0
    say("broker", f"{broker.describe()} on {broker.bootstrap}; logs under {workdir}")
    cluster = None
    try:
        if args.broker_kills and broker.engine != "kafka":
            raise ValueError("--broker-kills needs Apache Kafka: Tansu loses every topic")
        model = args.model or small_model(workdir / "model", args.items)
        say("model", str(model))
        tag = uuid.uuid4().hex[:8]
        base = Settings(
            bootstrap=broker.bootstrap, app_id=f"soak-{tag}", events_topic=f"soak-{tag}",
            recs_topic=f"soak-{tag}-recs", partitions=args.partitions, model_path=model,
            state_dir=workdir / "unused", web_port=0, top_k=5, history_len=10, half_life_s=3600.0,
            standby_replicas=args.standby_replicas,
            processing_guarantee=broker.guarantee(args.guarantee),
        )
        args.guarantee = base.processing_guarantee
        say("topics", ", ".join(ensure_topics(base)))
        cluster = Cluster(base, workdir)
        for _ in range(args.workers):
            cluster.add()
        say("workers", f"{args.workers} ready in {cluster.settle():.1f} s")
        per_user = args.events // args.users
        events = generate(GeneratorConfig(n_users=args.users, n_items=args.items,
                                          events_per_user=per_user, seed=args.seed))
        stream = mix(events, args.hostile, args.seed)
        plan = fault_plan(args, np.random.default_rng(args.seed))
        say("stream", f"{len(stream.messages):,} messages ({len(events):,} events of "
            f"{args.users:,} users, {args.hostile} hostile) at {args.rate:g}/s; "
            f"faults: {', '.join(f'{f} at {s:.0%}' for s, f in plan) or 'none'}")
        faults = Faults(cluster, broker, args, lambda: True, workdir / "broker.log")
        sent = stream_with_faults(base, stream.messages, faults, plan, args.rate)
        say("stream", f"{sent:,} sent")
        report = check_run(base, cluster, stream, model, args, sent)
    except Exception as exc:
        say("FAILED", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if cluster is not None:
            cluster.stop()
        stop_process(broker.process, timeout=30)
    recoveries = [k["consuming_s"] or k["ready_s"] for k in faults.kills]
    report.update({
        "crashes_injected": len(faults.kills),
        "kills": faults.kills,
        "max_recovery_s": max(recoveries, default=0.0),
        "freeze_s": sum(f["freeze_s"] for f in faults.freezes),
        "freezes": faults.freezes,
        "zombies": faults.zombies,
        "broker_kills": faults.broker_kills,
        "broker": broker.engine,
        "scale_steps": faults.scale_steps,
        "faults_after_stream": sum(not row["mid_stream"] for row in
                                   [*faults.kills, *faults.freezes, *faults.zombies,
                                    *faults.broker_kills, *faults.scale_steps]),
        "unexpected_exits": cluster.unexpected_exits,
        "fenced_exits": cluster.fenced_exits,
        "fault_errors": faults.errors,
        "wall_s": round(time.monotonic() - STARTED, 1),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "workdir": str(workdir),
    })
    write(args.out, args.name, report)
    # a user no worker answered for is not known to be right
    failed = report["lost"] or report["applied_twice"] or report["unreadable_users"] or (
        args.guarantee == "exactly_once" and not report["committed"]["one_per_event"]) or (
        faults.errors)  # a fault the group did not recover from by its deadline
    say("done", f"lost {report['lost']}, applied twice {report['applied_twice']}, unreadable "
        f"users {report['unreadable_users']}, read_committed one record per event "
        f"{report['committed']['one_per_event']}, faults failed {len(faults.errors)}: "
        f"{'FAIL' if failed else 'ok'}; {args.out / args.name}.json")
    return 1 if failed else 0


if __name__ == "__main__":
    # SIGTERM (a test's deadline, Ctrl-C's cousin) unwinds like an exception, so every worker
    # and the broker are stopped, and a frozen broker is continued, on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - the traceback is printed; the status says the run failed
        import traceback

        traceback.print_exc()
        sys.exit(2)
