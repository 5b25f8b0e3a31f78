"""``streamrec evaluate``: prequential (test-then-train) evaluation of the product and baselines.

The command reads and checks its options; the steps it runs are streams/cli/evaluate_steps.py's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from core.log_formats import ReadOptions
from streams.cli.options import (
    Bootstrap,
    CatalogFile,
    Dim,
    Encoder,
    EventLog,
    GenEventsPerUser,
    GenItems,
    GenUsers,
    RecentEvents,
    Seed,
    catalog_items,
    TorchThreads,
    chosen_generator,
    console,
    load_settings,
    model_option,
    reader_options,
    usage_errors,
    user_errors,
)

from streams.cli.evaluate_policies import DEFAULT_POLICIES, POLICIES, RETRAINED

if TYPE_CHECKING:
    from models.prequential import Policy

DEFAULT_HALF_LIVES = ("1h", "1d", "7d", "30d", "inf")


@reader_options
def evaluate_command(
    data: EventLog = None,
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
    read: ReadOptions = ReadOptions(),
    policy: Annotated[
        Optional[list[str]],
        typer.Option(help=f"Policies to run (repeat; listed above); default all but "
                     f"{', '.join(RETRAINED)}."),
    ] = None,
    half_life: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Half-lives of the interest vector to sweep (repeat): 3600, 6h, 7d, inf in "
            "event time, or 20ev for 20 of the user's own events. "
            f"Default {', '.join(DEFAULT_HALF_LIVES)}."
        ),
    ] = None,
    forgetting: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Also run the interest policy under this forgetting function (repeat): "
            "exp:2ev, exp:6h, power:tau=1d,alpha=0.7, window:30ev, growth:tau=20ev "
            "(core/forgetting.py); the vector recomputed exactly from each user's newest "
            "max(history-len, 50) events."
        ),
    ] = None,
    fit_forgetting: Annotated[
        bool,
        typer.Option(
            help="First fit the forgetting function on the warm-up: a model trained on its "
            "first 75% serves its last 25%, where every family over a grid on both clocks is "
            "scored by NDCG@K; writes OUT/forgetting_fit.json and also runs each family's "
            "best function."
        ),
    ] = False,
    true_forgetting: Annotated[
        Optional[str],
        typer.Option(help="Generator: users return to past topics by this forgetting function "
                     "(a --forgetting spec), so the fit has a known answer."),
    ] = None,
    trending_half_life: Annotated[
        str, typer.Option(help="Half-life of the trending-popularity baseline.")
    ] = "1d",
    sources_half_life: Annotated[
        str, typer.Option(help="Half-life of the interest vector among the sources policy's "
                          "candidate sources (20ev, 6h, ...).")
    ] = "2ev",
    ablate_sources: Annotated[
        bool, typer.Option(help="With --policy sources: also run it without each source "
                           "in turn, to measure what each adds.")
    ] = False,
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
        str, model_option("Model kind the product trains: mf, interest-mf, gru, sasrec.")
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
    catalog: CatalogFile = None,
    encoder: Encoder = "minilm",
    replay: Annotated[int, typer.Option(
        min=0, help="With --warm-start: each update also replays N older examples drawn at "
        "random, as `streamrec trainer --replay` does (0 = none).")] = 0,
    item_learning: Annotated[bool, typer.Option(
        help="Also run each product policy with online item learning, as workers with "
        "STREAMREC_ITEM_LEARNING do (STREAMREC_ITEM_LEARNING_RATE, STREAMREC_ITEM_NEGATIVES).")] = False,
    explore: Annotated[Optional[list[str]], typer.Option(
        help="Also run each product policy exploring with this policy (repeat): epsilon, ucb, "
        "thompson (models/exploration.py), over --explore-budget of the K slots.")] = None,
    explore_budget: Annotated[int, typer.Option(min=1, help="Slots that may explore.")] = 1,
    mmr: Annotated[Optional[list[float]], typer.Option(
        min=0, max=1, help="Also run each product policy with its lists re-ranked by MMR at this "
        "lambda (repeat; models/diversity.py). Every row reports intra-list diversity (ILD) "
        "in the first model version's item space.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Max epochs per training.")] = 30,
    patience: Annotated[int, typer.Option(min=1, help="Early-stopping patience.")] = 3,
    dim: Dim = 64,
    history_len: Annotated[
        Optional[int],
        typer.Option(
            help="Recent items per user (STREAMREC_HISTORY_LEN): the model's input, "
            "and never recommended again."
        ),
    ] = None,
    seed: Seed = 0,
    threads: TorchThreads = 2,
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

    from core.durations import parse_duration
    from core.forgetting import Forgetting
    from models.content_knn import ContentKNN
    from models.prequential import baselines
    from models.prequential_report import write_results
    from models.half_life import HalfLife
    from models.train import TrainConfig

    from streams.cli.evaluate_steps import (
        catalog_content_of, check_kafka_path, chosen_policies, fitted_forgetting,
        forgetting_policies_of,
        model_versions, product_policies_chosen, retrained_policies, run_policies,
        source_rankers, stream_of)

    chosen = chosen_policies(policy, POLICIES) if policy else list(DEFAULT_POLICIES)
    if through_kafka and not {"interest", "neighbours", "product"} & set(chosen):
        raise typer.BadParameter("--through-kafka needs the interest, neighbours or product "
                                 "policy")
    if replay and not warm_start:
        raise typer.BadParameter("--replay is part of a --warm-start update")
    if "content-knn" in chosen and catalog is None:
        raise typer.BadParameter("--policy content-knn needs --catalog FILE")
    if ablate_sources and "sources" not in chosen:
        raise typer.BadParameter("--ablate-sources needs --policy sources")
    if warm_start and (not retrain_every or artifact is not None):
        raise typer.BadParameter("--warm-start updates trained versions: give --retrain-every N "
                                 "and no --artifact")
    with usage_errors():
        half_lives = [HalfLife.parse(h) for h in half_life or DEFAULT_HALF_LIVES]
        trending_s = parse_duration(trending_half_life)
        true_half_life_s = parse_duration(true_half_life) if true_half_life else None
        forgettings = [Forgetting.parse(spec) for spec in forgetting or []]
        true_g = Forgetting.parse(true_forgetting) if true_forgetting else None
        sources_h = HalfLife.parse(sources_half_life)
    generator = chosen_generator(
        data, generate, "--data PATH",
        n_users=users, n_items=items, events_per_user=events_per_user, seed=seed,
        drift=drift, half_life_s=true_half_life_s, forgetting=true_g,
    )
    settings = load_settings(history_len=history_len, bootstrap=bootstrap)
    torch.set_num_threads(threads)
    config = TrainConfig(
        model=model, dim=dim, epochs=epochs, patience=patience, seed=seed,
        recent_events=recent_events, replay_examples=replay,
    )
    # model versions and the Kafka check's state live in a directory removed at the end
    with user_errors(), tempfile.TemporaryDirectory(prefix="streamrec-evaluate-") as tmp:
        workdir = Path(tmp)
        stream = stream_of(data, read, generator, min_rating, warmup)
        catalog_rows = catalog_items(catalog) if catalog else ()
        policies: list[Policy] = list(baselines(stream, chosen, trending_s, seed))
        policies += retrained_policies(chosen, settings.interest, config)
        content = catalog_content_of(stream, catalog_rows, encoder) \
            if catalog and {"content-knn", "sources"} & set(chosen) else None  # fmt: skip
        if "content-knn" in chosen:
            policies.append(ContentKNN(stream.n_users, *content))
        versions = None
        if fit_forgetting:
            forgettings += fitted_forgetting(stream, artifact, settings, config, workdir, k, out)
        if {"interest", "neighbours", "live-neighbours", "product", "sources"} & set(chosen) \
                or forgettings:
            versions = model_versions(stream, artifact, settings, config, workdir, warm_start,
                                      retrain_every, catalog_rows, encoder)  # fmt: skip
            kind = model if artifact is None else "model"
            policies += product_policies_chosen(chosen, versions, settings, half_lives, kind,
                                                item_learning, explore or [], explore_budget,
                                                mmr or [])  # fmt: skip
            policies += forgetting_policies_of(versions, settings, forgettings)
            if "sources" in chosen:
                policies += source_rankers(stream, versions, settings, sources_h, trending_s,
                                           ablate_sources, content)
        rows = run_policies(stream, policies, k, windows, versions)
        source = f"{data.parent.name}/{data.name}" if data else "generated events"
        plot = write_results(rows, out, f"{source}: NDCG@{k} over time (prequential)", k)
        if versions is not None:
            console.print(
                f"model versions: {len(versions.starts)}, training {versions.train_seconds:.1f} s"
            )
        console.print(f"wrote {out}/prequential.json, .md and {plot}")
        if through_kafka and versions is not None:
            check_kafka_path(
                stream, versions, artifact, workdir, settings, through_kafka, out, bootstrap
            )


# one line per policy, indented as the docstring is so that it dedents as one
evaluate_command.__doc__ = (evaluate_command.__doc__ or "") + "\n    Policies (--policy):\n\n" + \
    "".join(f"    {name}: {what}\n\n" for name, what in POLICIES.items())  # fmt: skip
