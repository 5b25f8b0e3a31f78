"""``streamrec``: run the broker, workers, producers, consumers, training and the demo.

Every network command takes ``--bootstrap`` (env ``STREAMREC_BOOTSTRAP``), so it runs the same
against the embedded broker or Apache Kafka. Any setting can also come from ``STREAMREC_*`` env.
"""

from __future__ import annotations

import math
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from streams.settings import Settings

app = typer.Typer(
    help="Real-time recommendations on Kafka: events -> decayed interest -> Torch top-K.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)

Bootstrap = Annotated[
    Optional[str],
    typer.Option(envvar="STREAMREC_BOOTSTRAP", help="Kafka bootstrap address host:port[,...]."),
]
Partitions = Annotated[
    Optional[int], typer.Option(envvar="STREAMREC_PARTITIONS", help="Partitions per topic.")
]
# The generator's and the log reader's options, shared by produce, train and evaluate.
GenUsers = Annotated[int, typer.Option(help="Generator: number of users.")]
GenItems = Annotated[int, typer.Option(help="Generator: number of items.")]
GenEventsPerUser = Annotated[int, typer.Option(help="Generator: events per user.")]
LogFormat = Annotated[Optional[str], typer.Option("--format", help="Force the log format.")]
RecentEvents = Annotated[
    int, typer.Option(min=1, help="Newest positive events a warm-started version trains on.")
]
ModelPath = Annotated[
    Optional[Path], typer.Option(envvar="STREAMREC_MODEL_PATH", help="Model artifact directory.")
]


def load_settings(**given: object) -> Settings:
    """Settings from env, overridden by the CLI flags actually given."""
    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None


@contextmanager
def user_errors() -> Iterator[None]:
    """Known operational failures end with one clear line and exit code 2, not a traceback."""
    from kafka.errors import KafkaError

    from models.artifact import ArtifactError
    from streams.broker import BrokerError
    from streams.cluster import WorkerError

    try:
        yield
    except (ArtifactError, BrokerError, WorkerError, KafkaError, OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 9092,
    partitions: Partitions = None,
    create_topics: Annotated[bool, typer.Option(help="Create the pipeline's topics.")] = True,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) until Ctrl-C; print its address."""
    from streams.broker import ensure_topics, start_embedded_broker, stop_process

    bootstrap = f"127.0.0.1:{port}"
    process = start_embedded_broker(port)
    try:
        if create_topics:
            topics = ensure_topics(load_settings(bootstrap=bootstrap, partitions=partitions))
            console.print(f"topics: {topics}")
        print(bootstrap, flush=True)
        console.print(f"embedded broker at [bold]{bootstrap}[/] (pid {process.pid}); Ctrl-C stops")
        signal.signal(signal.SIGTERM, _interrupt)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(process)


@app.command()
def topics(bootstrap: Bootstrap = None, partitions: Partitions = None) -> None:
    """Create the pipeline's topics (or check their partition counts) on the broker."""
    from streams.broker import ensure_topics

    with user_errors():
        created = ensure_topics(load_settings(bootstrap=bootstrap, partitions=partitions))
    for name, count in created.items():
        print(f"{name}\t{count}")


@app.command()
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
    """Run a Faust worker: consume events, keep user state, emit top-K recommendations."""
    import torch
    from faust.worker import Worker

    from models.artifact import load_recommender
    from streams.app import create_app
    from streams.broker import ensure_topics

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
        settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    faust_app = create_app(settings, recommender)
    faust_worker = Worker(faust_app, loglevel=loglevel)
    # Faust's terminal spinner sets the root logger to DEBUG at --loglevel warn and above, so
    # every aiokafka debug call builds a LogRecord (7% of a busy worker's time, py-spy).
    faust_worker.spinner = None
    faust_worker.execute_from_commandline()


@app.command()
def health(
    web_port: Annotated[
        Optional[int], typer.Option(envvar="STREAMREC_WEB_PORT", help="The worker's web port.")
    ] = None,
) -> None:
    """Exit 0 when the worker on this machine answers /stats/, 1 otherwise (the image's
    HEALTHCHECK). A worker that owns no partition (more workers than partitions) is healthy."""
    from streams.cluster import worker_stats

    port = load_settings(web_port=web_port).web_port
    stats = worker_stats(port)
    if stats is None:
        console.print(f"no worker answers on 127.0.0.1:{port}")
        raise typer.Exit(1)
    print(f"ok: partitions {stats['assigned']}, {stats['events_in']} events in")


@app.command()
def up(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes to start.")] = 2,
    bootstrap: Annotated[
        Optional[str],
        typer.Option(
            envvar="STREAMREC_BOOTSTRAP",
            help="Use this broker; without it an embedded broker is started.",
        ),
    ] = None,
    partitions: Partitions = None,
    model_path: ModelPath = None,
    workdir: Annotated[
        Path, typer.Option(help="Worker state dirs, logs and cluster.json go here.")
    ] = Path(".cluster"),
) -> None:
    """A local cluster without Docker: broker, topics and N workers, each with its own state
    dir and web port, until Ctrl-C. Prints who owns which partition and writes it to
    <workdir>/cluster.json. Without an artifact at --model-path a small MF model is trained on
    generated events first."""
    import shutil

    from streams.broker import free_port, start_embedded_broker, stop_process
    from streams.cluster import WorkerError, exited, start_cluster, wait_for

    settings = load_settings(bootstrap=bootstrap, partitions=partitions, model_path=model_path)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("worker-*"):  # state is rebuilt from the changelog (or is stale)
        shutil.rmtree(old)
    (workdir / "cluster.json").unlink(missing_ok=True)
    processes = []
    for stop_signal in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background job ignores it
        signal.signal(stop_signal, _interrupt)
    try:
        with user_errors():
            broker_pid = None
            if bootstrap is None:
                port = free_port()
                processes.append(start_embedded_broker(port, workdir / "broker.log"))
                broker_pid = processes[0].pid
                settings = settings.model_copy(update={"bootstrap": f"127.0.0.1:{port}"})
                console.print(f"broker   embedded Tansu at {settings.bootstrap}")
            if not (settings.model_path / "config.json").is_file():
                settings = settings.model_copy(update={"model_path": workdir / "model"})
                _train_small_model(settings)
            cluster = start_cluster(settings, workers, workdir, processes)
            cluster.broker_pid = broker_pid
            cluster.write(workdir / "cluster.json")
        for n, member in enumerate(cluster.workers):
            console.print(
                f"worker {n} pid {member['pid']}  {member['url']}  "
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
    from models.train import TrainConfig, train
    from core.generator import GeneratorConfig, generate

    console.print("model    none at the model path; training a small MF on generated events")
    events = generate(GeneratorConfig(n_users=200, events_per_user=50, seed=1))
    config = TrainConfig(model="mf", dim=settings.dim, epochs=10)
    train(events, settings, config, settings.model_path, show_progress=console.is_terminal)


@app.command()
def produce(
    source: Annotated[
        Optional[Path],
        typer.Argument(help="Event log: .jsonl, .csv, MovieLens u.data or ratings.dat[.gz]."),
    ] = None,
    generate: Annotated[
        bool, typer.Option(help="Use the synthetic drifting-interest generator.")
    ] = False,
    users: GenUsers = 200,
    items: GenItems = 500,
    events_per_user: GenEventsPerUser = 50,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    fmt: LogFormat = None,
    rate: Annotated[
        float, typer.Option(min=0, help="Events per second; 0 = as fast as possible.")
    ] = 0.0,
    limit: Annotated[Optional[int], typer.Option(help="Send at most this many events.")] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Send events to the events topic, keyed by user_id, in event-time order."""
    from streams.producer import load_source, produce_events, progress_bar

    settings = load_settings(bootstrap=bootstrap)
    if (source is None) == (not generate):
        raise typer.BadParameter("give an event log path or --generate (not both)")
    with user_errors():
        messages = load_source(source, fmt, users, items, events_per_user, seed)
        if limit is not None:
            messages = messages[:limit]
        with progress_bar(console) as progress:
            sent = produce_events(settings, messages, rate, progress)
    console.print(f"sent {sent} events to {settings.events_topic} at {settings.bootstrap}")


@app.command()
def tail(
    bootstrap: Bootstrap = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = False,
    max_records: Annotated[Optional[int], typer.Option(help="Exit after this many.")] = None,
    idle_timeout: Annotated[
        Optional[float], typer.Option(help="Exit after this many seconds with no record.")
    ] = None,
    plain: Annotated[
        bool, typer.Option(help="One JSON record per line instead of a table.")
    ] = False,
) -> None:
    """Consume the recommendation topic and show it live."""
    from streams.consumer import tail_recommendations

    settings = load_settings(bootstrap=bootstrap)
    with user_errors():
        count = tail_recommendations(
            settings, from_beginning, max_records, idle_timeout, plain, console
        )
    console.print(f"{count} recommendation records")


@app.command()
def train(
    model: Annotated[
        str, typer.Option(
            help="Model kind: mf (two-tower), interest-mf (the decayed interest vector as the "
            "user), gru (GRU4Rec), sasrec (SASRec)."
        )
    ] = "sasrec",
    data: Annotated[
        Optional[Path],
        typer.Option(help="Event log: .jsonl, .csv, MovieLens u.data or ratings.dat[.gz]."),
    ] = None,
    generate: Annotated[bool, typer.Option(help="Train on generated events.")] = False,
    users: GenUsers = 200,
    items: GenItems = 500,
    events_per_user: GenEventsPerUser = 50,
    seed: Annotated[int, typer.Option(help="Seed for data generation and training.")] = 0,
    fmt: LogFormat = None,
    out: Annotated[Optional[Path], typer.Option(help="Artifact directory.")] = None,
    dim: Annotated[int, typer.Option(min=2, help="Embedding dimension.")] = 64,
    max_len: Annotated[int, typer.Option(min=1, help="Longest item history a model reads.")] = 50,
    epochs: Annotated[
        int, typer.Option(min=1, help="Maximum epochs (early stopping on validation NDCG@10).")
    ] = 200,
    patience: Annotated[int, typer.Option(min=1, help="Epochs without improvement.")] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Training windows per step.")] = 128,
    lr: Annotated[float, typer.Option(min=0, help="Adam learning rate.")] = 3e-3,
    min_count: Annotated[
        int, typer.Option(min=1, help="k-core: drop users and items with fewer positives.")
    ] = 1,
    ranker: Annotated[bool, typer.Option(help="Also train the re-ranking MLP.")] = True,
    ann_min_items: Annotated[
        int, typer.Option(min=1, help="Build an HNSW index (ann.faiss) from this catalog size.")
    ] = 100_000,
    threads: Annotated[int, typer.Option(min=1, help="Torch CPU threads.")] = 2,
    warm_start: Annotated[
        Optional[Path],
        typer.Option(
            help="Continue from this artifact (same --model) on the newest --recent-events "
            "events instead of training from scratch: a new version in seconds."
        ),
    ] = None,
    recent_events: RecentEvents = 10_000,
) -> None:
    """Train a model on an event log and write a versioned artifact.

    Positives are events with weight > 0 (see the settings' event weights; a MovieLens rating
    counts above STREAMREC_RATING_CENTER). Each user's last positive is the test item, the one
    before it validates; both are reported in the artifact's metrics.json. With --warm-start
    the log is everything so far (the users' context), one pass over its newest events trains,
    and there is no validation, test or ranker.
    """
    import torch

    from models.registry import MODEL_KINDS
    from models.train import TrainConfig
    from models.train import train as train_model
    from models.train import update
    from streams.producer import load_events

    if model not in MODEL_KINDS:
        raise typer.BadParameter(f"unknown model {model!r}; one of {sorted(MODEL_KINDS)}")
    settings = load_settings(model_path=out)
    if (data is None) == (not generate):
        raise typer.BadParameter("give --data PATH or --generate (not both)")
    torch.set_num_threads(threads)
    config = TrainConfig(
        model=model, dim=dim, max_len=max_len, epochs=epochs, patience=patience,
        batch_size=batch_size, lr=lr, seed=seed, min_count=min_count, ranker=ranker,
        ann_min_items=ann_min_items, recent_events=recent_events,
    )
    with user_errors():
        events = load_events(data, fmt, users, items, events_per_user, seed)
        if warm_start is not None:
            version, metrics = update(warm_start, events, settings, config, settings.model_path)
            console.print(
                f"{model} {version} -> {settings.model_path}  from {metrics['warm_start_from']}: "
                f"{metrics['examples']:,} events, loss {metrics['losses'][-1]:.3f}  "
                f"({metrics['train_seconds']} s)"
            )
            return
        version, metrics = train_model(events, settings, config, settings.model_path)
    console.print(
        f"{model} {version} -> {settings.model_path}  test HR@10 {metrics['test_hr@10']:.4f}  "
        f"NDCG@10 {metrics['test_ndcg@10']:.4f}  ({metrics['epochs_run']} epochs, "
        f"{metrics['train_seconds']} s)"
    )


models_app = typer.Typer(help="Inspect model artifacts.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    root: Annotated[Path, typer.Argument(help="Directory searched for artifacts.")] = Path(
        "artifacts"
    ),
) -> None:
    """Every artifact under ROOT: path, kind, version, items, test metrics."""
    from models.artifact import list_artifacts

    with user_errors():
        found = list_artifacts(root)
    print("path\tkind\tversion\titems\ttest_hr@10\ttest_ndcg@10")
    for path, config, metrics in found:
        print(
            f"{path}\t{config['kind']}\t{config['version']}\t{config['init']['n_items']}\t"
            f"{metrics.get('test_hr@10', float('nan')):.4f}\t"
            f"{metrics.get('test_ndcg@10', float('nan')):.4f}"
        )


@models_app.command("show")
def models_show(path: Annotated[Path, typer.Argument(help="Artifact directory.")]) -> None:
    """One artifact's config and metrics (without the per-epoch history), as JSON."""
    import json

    from models.artifact import read_config, read_metrics

    with user_errors():
        config = read_config(path)
        metrics = {k: v for k, v in read_metrics(path).items() if k != "history"}
    print(json.dumps({"path": str(path), **config, "metrics": metrics}, indent=2))


@app.command()
def demo(
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 200,
    events_per_user: Annotated[int, typer.Option(help="Events per user.")] = 50,
    rate: Annotated[
        float, typer.Option(min=0, help="Replay rate, events/s (0 = flat out).")
    ] = 1000.0,
    workdir: Annotated[Path, typer.Option(help="Where state, model and logs go.")] = Path(".demo"),
    bootstrap: Annotated[
        Optional[str], typer.Option(help="Use this broker instead of starting the embedded one.")
    ] = None,
    model: Annotated[str, typer.Option(help="Model kind to train and serve.")] = "sasrec",
) -> None:
    """Broker, topics, model, worker, replay, live recommendations; all shut down at the end."""
    from models.registry import MODEL_KINDS
    from streams.demo import run_demo

    if model not in MODEL_KINDS:
        raise typer.BadParameter(f"unknown model {model!r}; one of {sorted(MODEL_KINDS)}")
    with user_errors():
        code = run_demo(users, events_per_user, rate, workdir, bootstrap, console, model)
    raise typer.Exit(code)


from streams import cli_evaluate  # noqa: E402, F401  (registers `evaluate` on this app)

if __name__ == "__main__":
    app()
