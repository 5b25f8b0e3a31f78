"""`streamrec demo`: the whole pipeline on one machine, shown live, then shut down cleanly."""

from __future__ import annotations

import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live

from streams.kafka_edge.topics import ensure_topics
from streams.tools.broker import free_port, start_local_broker, stop_process
from streams.tools.cluster import start_worker, wait_until_ready
from streams.tools.consumer import recommendation_records, render
from core.generator import GeneratorConfig, generate
from streams.tools.producer import produce_events, progress_bar, to_message
from streams.settings import Settings


DEMO_OUTPUTS = ("state", "model", "broker.log", "broker-data", "worker.log")


def reset_workdir(workdir: Path) -> None:
    """Remove what an earlier demo left there, and nothing else (``--workdir .`` is allowed).

    A fresh broker restarts offsets at 0, so old state (which remembers offsets) must go too.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for name in DEMO_OUTPUTS:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def run_demo(
    users: int,
    events_per_user: int,
    rate: float,
    workdir: Path,
    bootstrap: str | None,
    console: Console,
    model: str = "sasrec",
    base: Settings = Settings(),
    engine: str = "auto",
    stay: bool = False,
) -> int:
    """Return a process exit code: 0 when every event produced a recommendation. ``base``: the
    settings the demo starts from (the CLI's, from env); it sets the broker, paths and port.
    ``stay``: once the replay is done, keep the broker and the worker (its web console) up
    until Ctrl-C or the worker stops."""
    from models.train import TrainConfig, train

    started = time.perf_counter()
    reset_workdir(workdir)
    processes = []
    stop_producing = threading.Event()
    producer: threading.Thread | None = None
    try:
        guarantee = base.processing_guarantee
        if bootstrap is None:
            broker = start_local_broker(engine, workdir)
            processes.append(broker.process)
            bootstrap, guarantee = broker.bootstrap, broker.guarantee(guarantee)
            console.print(f"[bold]broker[/]  {broker.describe()} at {bootstrap}", soft_wrap=True)
        settings = base.model_copy(
            update={
                "processing_guarantee": guarantee,
                "bootstrap": bootstrap,
                "model_path": workdir / "model",
                "state_dir": workdir / "state",
                "web_port": free_port(),
            }
        )
        ensure_topics(settings)
        console.print(
            f"[bold]topics[/]  {settings.events_topic}, {settings.recs_topic}, "
            f"{settings.dlq_topic} ({settings.partitions} partitions)"
        )

        catalog = GeneratorConfig(n_users=users, events_per_user=events_per_user)
        # Train on other users of the same catalog than the ones we replay.
        history = generate(GeneratorConfig(n_users=users, events_per_user=events_per_user, seed=1))
        config = TrainConfig(model=model, dim=settings.dim, epochs=30)
        version, metrics = train(
            history, settings.interest, settings.blend, config, settings.model_path
        )
        console.print(
            f"[bold]model[/]   {model} {version}, test HR@10 {metrics['test_hr@10']:.3f}, "
            f"trained in {metrics['train_seconds']} s"
        )

        worker = start_worker(settings, workdir / "worker.log")
        processes.append(worker)
        ready_s = wait_until_ready(
            settings.web_port, timeout=120, process=worker, token=settings.api_token
        )
        console.print(f"[bold]worker[/]  ready in {ready_s:.1f} s, {guarantee} "
                      f"(log: {workdir / 'worker.log'})")
        console.print(f"[bold]console[/] {settings.console_url}  (open it in a browser)")

        messages = [to_message(e) for e in generate(catalog)]
        records = recommendation_records(settings, from_beginning=True, idle_timeout=60)
        latest: OrderedDict[str, dict] = OrderedDict()
        received = 0
        progress = progress_bar(console)
        producer = threading.Thread(
            target=produce_events,
            args=(settings, messages, rate, progress, stop_producing),
            daemon=True,
        )
        with Live(
            Group(progress, render(latest, 0)), console=console, refresh_per_second=4
        ) as live:
            replay_started = time.perf_counter()
            producer.start()
            for record in records:
                received += 1
                latest.pop(record["user_id"], None)
                latest[record["user_id"]] = record
                if received % 50 == 0 or received == len(messages):
                    live.update(Group(progress, render(latest, received)))
                if received >= len(messages):
                    break
            replay_s = time.perf_counter() - replay_started
        producer.join()
        wall = time.perf_counter() - started
        console.print()
        console.print(
            f"[bold]done[/]    {len(messages)} events -> {received} recommendation records; "
            f"replay {replay_s:.1f} s ({received / replay_s:,.0f} records/s end to end"
            f"{', replay rate-limited to %g/s' % rate if rate else ''}); total {wall:.1f} s"
        )
        code = 0 if received >= len(messages) else 1
        if stay:
            console.print(f"[bold]console[/] still up at {settings.console_url}; Ctrl-C stops "
                          "everything")
            try:
                worker.wait()  # until Ctrl-C, or the worker stops
            except KeyboardInterrupt:
                console.print("stopping")
                return code
            console.print(f"[red]the worker stopped[/] (exit {worker.returncode})")
            return code or 1
        return code
    except KeyboardInterrupt:
        console.print("interrupted; shutting down")
        return 130
    finally:
        stop_producing.set()
        if producer is not None and producer.is_alive():
            producer.join(30)
        for process in reversed(processes):
            stop_process(process)
