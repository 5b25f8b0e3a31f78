"""``streamrec evaluate``: prequential (test-then-train) evaluation of the product and baselines."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from streams.cli import (
    Bootstrap,
    GenEventsPerUser,
    GenItems,
    GenUsers,
    LogFormat,
    RecentEvents,
    app,
    console,
    load_settings,
    user_errors,
)

if TYPE_CHECKING:
    from models.prequential import HalfLife, ModelVersions, Stream
    from streams.settings import Settings

POLICIES = ("popularity", "trending", "item-knn", "online-mf", "interest", "product")
DEFAULT_HALF_LIVES = ("1h", "1d", "7d", "30d", "inf")
_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def parse_half_life(text: str) -> HalfLife:
    """``20ev`` is 20 of the user's own events; anything else a duration (``6h``, ``inf``)."""
    from models.prequential import HalfLife

    text = text.strip().lower()
    if text.endswith("ev"):
        try:
            events = float(text[:-2])
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not a count of events like 20ev") from None
        if not events > 0:
            raise typer.BadParameter(f"a half-life must be positive, got {text!r}")
        return HalfLife(events=events)
    return HalfLife(seconds=parse_duration(text))


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15min``, ``6h``, ``7d`` or ``inf``."""
    text = text.strip().lower()
    if text in ("inf", "infinity"):
        return math.inf
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number, scale = text[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = text, 1
    try:
        seconds = float(number) * scale
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration like 3600, 6h, 7d or inf") from None
    if not seconds > 0:
        raise typer.BadParameter(f"a half-life must be positive, got {text!r}")
    return seconds


@app.command()
def evaluate(
    data: Annotated[
        Optional[Path],
        typer.Option(help="Event log: .jsonl, .csv, MovieLens u.data or ratings.dat[.gz]."),
    ] = None,
    generate: Annotated[
        bool, typer.Option(help="Evaluate on generated events with drifting interests.")
    ] = False,
    users: GenUsers = 200,
    items: GenItems = 500,
    events_per_user: GenEventsPerUser = 50,
    drift: Annotated[
        float, typer.Option(min=0, max=1, help="Generator: chance per event of a random topic.")
    ] = 0.08,
    true_half_life: Annotated[
        Optional[str],
        typer.Option(
            help="Generator: users return to past topics with this half-life (e.g. 6h), "
            "so the sweep has a known answer."
        ),
    ] = None,
    fmt: LogFormat = None,
    policy: Annotated[
        Optional[list[str]],
        typer.Option(help=f"Policies to run (repeat); default all: {', '.join(POLICIES)}."),
    ] = None,
    half_life: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Half-lives of the interest vector to sweep (repeat): 3600, 6h, 7d, inf in "
            "event time, or 20ev for 20 of the user's own events. "
            f"Default {', '.join(DEFAULT_HALF_LIVES)}."
        ),
    ] = None,
    trending_half_life: Annotated[
        str, typer.Option(help="Half-life of the trending-popularity baseline.")
    ] = "1d",
    min_rating: Annotated[
        Optional[float],
        typer.Option(help="Positive-only stream: drop ratings below this (other types kept)."),
    ] = 4.0,
    warmup: Annotated[
        float, typer.Option(min=0, max=0.99, help="Share of the stream that only trains.")
    ] = 0.2,
    k: Annotated[int, typer.Option(min=1, help="Length of each recommendation list.")] = 10,
    windows: Annotated[int, typer.Option(min=1, help="Time windows for the plot.")] = 10,
    model: Annotated[
        str, typer.Option(help="Model kind the product trains: mf, interest-mf, gru, sasrec.")
    ] = "mf",
    artifact: Annotated[
        Optional[Path],
        typer.Option(
            help="Serve this artifact instead of training (it must not have seen the log)."
        ),
    ] = None,
    retrain_every: Annotated[
        int, typer.Option(min=0, help="A new model version every N events (0 = never).")
    ] = 0,
    warm_start: Annotated[
        bool,
        typer.Option(
            help="New versions continue from the one before on the newest --recent-events "
            "events (seconds each), instead of retraining on everything from scratch."
        ),
    ] = False,
    recent_events: RecentEvents = 10_000,
    epochs: Annotated[int, typer.Option(min=1, help="Max epochs per training.")] = 30,
    patience: Annotated[int, typer.Option(min=1, help="Early-stopping patience.")] = 3,
    dim: Annotated[int, typer.Option(min=2, help="Embedding dimension.")] = 64,
    history_len: Annotated[
        Optional[int],
        typer.Option(
            help="Recent items per user (STREAMREC_HISTORY_LEN): the model's input, "
            "and never recommended again."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for data generation and training.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="Torch CPU threads.")] = 2,
    out: Annotated[Path, typer.Option(help="Directory for prequential.{json,md,png}.")] = Path(
        "evaluation"
    ),
    through_kafka: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also replay the first N events through the broker and a worker "
            "and check its records equal the library path's (0 = off).",
        ),
    ] = 0,
    bootstrap: Bootstrap = None,
) -> None:
    """Replay a time-ordered log test-then-train: before each event of a user with history, the
    top-K each policy would show; then the event is learned.

    The product policies run the worker's own update and scoring code; event weights, rating
    center and other worker settings come from STREAMREC_* env, as for a worker. The model is
    trained when a product policy first needs it (and again every --retrain-every events, or
    updated then with --warm-start).
    """
    import torch

    from models.prequential import (
        ModelVersions,
        Stream,
        baselines,
        positives,
        product_policies,
        trainer,
    )
    from models.prequential import (
        evaluate as run_policies,
    )
    from models.prequential_report import write_results
    from models.registry import MODEL_KINDS
    from models.train import TrainConfig
    from core.generator import GeneratorConfig
    from core.generator import generate as generate_events
    from core.sources import read_events

    chosen = policy or list(POLICIES)
    unknown = sorted(set(chosen) - set(POLICIES))
    if unknown:
        raise typer.BadParameter(f"unknown policy {unknown}; choose from {', '.join(POLICIES)}")
    if model not in MODEL_KINDS:
        raise typer.BadParameter(f"unknown model {model!r}; one of {sorted(MODEL_KINDS)}")
    if (data is None) == (not generate):
        raise typer.BadParameter("give --data PATH or --generate (not both)")
    if warm_start and (not retrain_every or artifact is not None):
        raise typer.BadParameter("--warm-start updates trained versions: give --retrain-every N "
                                 "and no --artifact")
    half_lives = [parse_half_life(h) for h in half_life or DEFAULT_HALF_LIVES]
    trending_s = parse_duration(trending_half_life)
    settings = load_settings(history_len=history_len, bootstrap=bootstrap)
    torch.set_num_threads(threads)
    # model versions and the Kafka check's state live in a directory removed at the end
    with user_errors(), tempfile.TemporaryDirectory(prefix="streamrec-evaluate-") as tmp:
        if generate:
            events = generate_events(
                GeneratorConfig(
                    n_users=users,
                    n_items=items,
                    events_per_user=events_per_user,
                    seed=seed,
                    drift=drift,
                    half_life_s=parse_duration(true_half_life) if true_half_life else None,
                )
            )
        else:
            events = read_events(data, fmt)
        events = positives(events, min_rating)
        stream = Stream.of(events, warmup)
        policies = baselines(stream, chosen, trending_s, seed)
        workdir = Path(tmp)
        versions = None
        if {"interest", "product"} & set(chosen):
            if artifact is not None:
                from models.artifact import load_recommender

                fit = lambda _events: load_recommender(artifact)  # noqa: E731
            else:
                config = TrainConfig(
                    model=model,
                    dim=dim,
                    epochs=epochs,
                    patience=patience,
                    seed=seed,
                    recent_events=recent_events,
                )
                fit = trainer(settings, config, workdir, console.is_terminal, warm_start)
            versions = ModelVersions(fit, stream, retrain_every or None)
            kind = model if artifact is None else "model"
            policies += [
                p
                for p in product_policies(versions, settings, half_lives, kind)
                if ("interest" in chosen and p.name.startswith("interest h="))
                or ("product" in chosen and not p.name.startswith("interest h="))
            ]
        console.print(
            f"{len(stream.events):,} events, {stream.n_users:,} users, "
            f"{len(stream.item_ids):,} items; {int(stream.tested.sum()):,} tested after "
            f"{warmup:.0%} warm-up"
        )
        started = iter(range(1, len(policies) + 1))
        rows = run_policies(
            stream,
            policies,
            k,
            windows,
            on_policy=lambda name: console.print(f"[{next(started)}/{len(policies)}] {name}"),
        )
        source = f"{data.parent.name}/{data.name}" if data else "generated events"
        title = f"{source}: NDCG@{k} over time (prequential)"
        plot = write_results(rows, out, title, k)
        if versions is not None:
            console.print(
                f"model versions: {len(versions.starts)}, training {versions.train_seconds:.1f} s"
            )
        console.print(f"wrote {out}/prequential.json, .md and {plot}")
        if through_kafka:
            _check_through_kafka(
                stream, versions, artifact, workdir, settings, through_kafka, out, bootstrap
            )


def _check_through_kafka(
    stream: Stream,
    versions: ModelVersions | None,
    artifact: Path | None,
    workdir: Path,
    settings: Settings,
    n: int,
    out: Path,
    bootstrap: str | None,
) -> None:
    """Replay the first ``n`` events through a broker and worker; exit 1 unless every record
    equals the library path's."""
    import json

    from models.prequential import version_dir
    from streams.replay_check import check_through_kafka

    if versions is None:
        raise typer.BadParameter("--through-kafka needs the interest or product policy")
    model_path = artifact or version_dir(workdir, versions.starts[0])
    versions.at(versions.starts[0])  # trained already when a product policy ran
    events = stream.events[:n]
    console.print(f"through Kafka: {len(events):,} events, one worker serving {model_path}")
    result = check_through_kafka(events, settings, model_path, workdir / "kafka-check", bootstrap)
    report = vars(result) | {"passed": result.passed}
    (out / "prequential_kafka_check.json").write_text(json.dumps(report, indent=2))
    console.print(
        f"through Kafka: {result.records:,} records for {result.events:,} events; "
        f"{result.identical:,} of {result.compared:,} equal the evaluator's lists"
        + ("" if result.passed else f"; differing: {result.differing}")
    )
    if not result.passed:
        raise typer.Exit(1)
