"""The commands that run the pipeline's processes: broker, topics, worker, health, up."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from streams.settings_names import CONSOLE_PATH
from streams.cli.options import (
    Bootstrap,
    Engine,
    ModelPath,
    Partitions,
    console,
    load_settings,
    stop_on_signals,
    user_errors,
)
from streams.settings import Settings


def broker(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 9092,
    partitions: Partitions = None,
    create_topics: Annotated[bool, typer.Option(help="Create the pipeline's topics.")] = True,
    engine: Engine = "auto",
    data_dir: Annotated[
        Path, typer.Option(help="Apache Kafka's log directory: topics, offsets and transactions "
                           "survive a restart on the same folder.")
    ] = Path(".broker"),
    fetch: Annotated[
        bool, typer.Option("--fetch", help="Fetch Apache Kafka's pinned jars (deploy/kafka/"
                           "pom.xml) with Maven into ~/.cache/streamrec, then exit.")
    ] = False,
) -> None:
    """Run a local broker until Ctrl-C and print its address: Apache Kafka (one KRaft node)
    where a JDK 17 runs it, else the embedded Tansu (memory only)."""
    from streams.kafka_edge.topics import ensure_topics
    from streams.tools import kafka_broker
    from streams.tools.broker import start_broker, stop_process, wait_ready

    with user_errors():
        if fetch:
            jars = kafka_broker.fetch_kafka(kafka_broker.kafka_jars())
            console.print(f"Apache Kafka {kafka_broker.kafka_version()} jars in {jars}")
            return
        bootstrap = f"127.0.0.1:{port}"
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        log = data_dir / "broker.log"
        stop_on_signals()  # from the start: a broker still starting is stopped too
        local = start_broker(port, engine, data_dir, log)
    try:
        with user_errors():
            wait_ready(local, log_path=log)
            if create_topics:
                topics = ensure_topics(load_settings(bootstrap=bootstrap, partitions=partitions))
                console.print(f"topics: {topics}")
        print(bootstrap, flush=True)
        console.print(f"{local.describe()} at [bold]{bootstrap}[/] (pid {local.process.pid}); "
                      "Ctrl-C stops", soft_wrap=True)
        local.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(local.process)


def topics(bootstrap: Bootstrap = None, partitions: Partitions = None) -> None:
    """Create the pipeline's topics (or check their partition counts) on the broker."""
    from streams.kafka_edge.topics import ensure_topics

    with user_errors():
        created = ensure_topics(load_settings(bootstrap=bootstrap, partitions=partitions))
    for name, count in created.items():
        print(f"{name}\t{count}")


def worker(
    bootstrap: Bootstrap = None,
    partitions: Partitions = None,
    model_path: ModelPath = None,
    state_dir: Annotated[
        Optional[Path], typer.Option(envvar="STREAMREC_STATE_DIR", help="RocksDB data dir.")
    ] = None,
    web_port: Annotated[
        Optional[int], typer.Option(envvar="STREAMREC_WEB_PORT", help="Port of /stats/ etc.")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "info",
) -> None:
    """Run a Faust worker: consume events, keep user state, emit top-K recommendations.

    STREAMREC_PROCESSING_GUARANTEE=exactly_once (the default) commits each batch of an input
    partition as one Kafka transaction, so a read_committed consumer sees each event's record
    once; it needs a broker with transactions (Apache Kafka). at_least_once is for one without
    (Tansu): state stays exactly-once, a crash may send a batch's records again."""
    import torch
    from faust.worker import Worker

    from models.artifact import load_recommender
    from streams.worker.app import create_app, settle_gc
    from streams.worker.serving import note_unserved_forgetting
    from streams.kafka_edge.topics import ensure_topics
    from streams.worker.model_choice import starting_model

    settings = load_settings(
        bootstrap=bootstrap,
        partitions=partitions,
        model_path=model_path,
        state_dir=state_dir,
        web_port=web_port,
    )
    torch.set_num_threads(settings.torch_threads)
    with user_errors():
        recommender = load_recommender(settings.model_path, settings.blend)
        ensure_topics(settings)
        note_unserved_forgetting(settings.model_path, recommender.version, settings.interest)
        recommender = starting_model(settings, recommender)  # the newest announced, if any
        settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    if settings.seal is None:
        console.print("[yellow]no STREAMREC_INTERNAL_KEY:[/] records on the internal topics are "
                      "believed from whoever the broker lets write them (docs/operations.md: "
                      "Secured Kafka)")
    faust_app = create_app(settings, recommender)
    faust_worker = Worker(faust_app, loglevel=loglevel)
    # Faust's terminal spinner sets the root logger to DEBUG at --loglevel warn and above, so
    # every aiokafka debug call builds a LogRecord (a visible share of a busy worker's py-spy profile).
    faust_worker.spinner = None
    settle_gc()
    faust_worker.execute_from_commandline()


def health(
    web_port: Annotated[
        Optional[int], typer.Option(envvar="STREAMREC_WEB_PORT", help="The worker's web port.")
    ] = None,
) -> None:
    """Exit 0 when the worker on this machine answers /stats/, 1 otherwise (the image's
    HEALTHCHECK). A worker that owns no partition (more workers than partitions) is healthy.
    Sends STREAMREC_API_TOKEN when set: the container's env is the worker's."""
    from streams.tools.cluster import WorkerError, worker_stats

    settings = load_settings(web_port=web_port)
    port = settings.web_port
    try:
        stats = worker_stats(port, settings.api_token)
    except WorkerError as exc:  # up, but refused our token
        console.print(str(exc))
        raise typer.Exit(1) from None
    if stats is None:
        console.print(f"no worker answers on 127.0.0.1:{port}")
        raise typer.Exit(1)
    print(f"ok: partitions {stats['assigned']}, {stats['events_in']} events in")


def up(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes to start.")] = 2,
    bootstrap: Annotated[
        Optional[str],
        typer.Option(
            envvar="STREAMREC_BOOTSTRAP",
            help="Use this broker; without it a local one is started (see --engine).",
        ),
    ] = None,
    engine: Engine = "auto",
    partitions: Partitions = None,
    model_path: ModelPath = None,
    workdir: Annotated[
        Path, typer.Option(help="Worker state dirs, logs and cluster.json go here.")
    ] = Path(".cluster"),
) -> None:
    """A local cluster without Docker: broker, topics and N workers, each with its own state
    dir and web port, until Ctrl-C. Prints who owns which partition and writes it to
    <workdir>/cluster.json. Without an artifact at --model-path a small MF model is trained on
    generated events first. Workers run exactly-once on Apache Kafka (unless
    STREAMREC_PROCESSING_GUARANTEE=at_least_once) and at-least-once on Tansu."""
    import shutil

    from models.artifact import verify_artifact
    from streams.tools.broker import start_local_broker, stop_process
    from streams.tools.cluster import WorkerError, exited, start_cluster, wait_for

    settings = load_settings(bootstrap=bootstrap, partitions=partitions, model_path=model_path)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("worker-*"):  # state is rebuilt from the changelog (or is stale)
        shutil.rmtree(old)
    (workdir / "cluster.json").unlink(missing_ok=True)
    processes = []
    stop_on_signals()
    try:
        with user_errors():
            broker_pid = None
            if bootstrap is None:
                shutil.rmtree(workdir / "broker-data", ignore_errors=True)  # as the state is
                local = start_local_broker(engine, workdir)
                processes.append(local.process)
                broker_pid = local.process.pid
                settings = settings.model_copy(update={
                    "bootstrap": local.bootstrap,
                    "processing_guarantee": local.guarantee(settings.processing_guarantee)})
                console.print(f"broker   {local.describe()} at {settings.bootstrap}; "
                              f"{settings.processing_guarantee}", soft_wrap=True)
            if not (settings.model_path / "config.json").is_file():
                settings = settings.model_copy(update={"model_path": workdir / "model"})
                _train_small_model(settings)
            verify_artifact(settings.model_path)  # each worker would refuse it, in its own log
            cluster = start_cluster(settings, workers, workdir, processes)
            cluster.broker_pid = broker_pid
            cluster.write(workdir / "cluster.json")
        for n, member in enumerate(cluster.workers):
            console.print(
                f"worker {n} pid {member['pid']}  console {member['url']}{CONSOLE_PATH}  "
                f"partitions {member['partitions']}  log {member['log']}",
                soft_wrap=True,
            )
        console.print(
            f"[bold]up[/]: produce to {settings.events_topic!r} at {settings.bootstrap}, "
            f"read {settings.recs_topic!r}; Ctrl-C stops everything",
            soft_wrap=True,
        )
        raise WorkerError(wait_for(lambda: exited(processes), math.inf, "", interval=1.0))
    except KeyboardInterrupt:
        console.print("stopping")
    except WorkerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        for process in reversed(processes):
            stop_process(process)


def _train_small_model(settings: Settings) -> None:
    from core.generator import GeneratorConfig, generate
    from models.train import TrainConfig, train

    console.print("model    none at the model path; training a small MF on generated events")
    events = generate(GeneratorConfig(n_users=200, events_per_user=50, seed=1))
    config = TrainConfig(model="mf", dim=settings.dim, epochs=10)
    train(
        events,
        settings.interest,
        settings.blend,
        config,
        settings.model_path,
        show_progress=console.is_terminal,
    )
