"""The commands that make and inspect model artifacts: train, models list, models show."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from core.log_formats import ReadOptions
from streams.cli.options import (
    CatalogFile,
    Dim,
    Encoder,
    EventLog,
    GenEventsPerUser,
    GenItems,
    GenUsers,
    RecentEvents,
    Seed,
    TorchThreads,
    catalog_items,
    chosen_generator,
    console,
    load_settings,
    note,
    model_option,
    reader_options,
    user_errors,
)

if TYPE_CHECKING:
    from core.forgetting import Forgetting


@reader_options
def train(
    model: Annotated[
        str,
        model_option(
            "Model kind: mf (two-tower), interest-mf (the decayed interest vector as the "
            "user), gru (GRU4Rec), sasrec (SASRec)."
        ),
    ] = "sasrec",
    data: EventLog = None,
    generate: Annotated[bool, typer.Option(help="Train on generated events.")] = False,
    users: GenUsers = 200,
    items: GenItems = 500,
    events_per_user: GenEventsPerUser = 50,
    seed: Seed = 0,
    read: ReadOptions = ReadOptions(),
    out: Annotated[Optional[Path], typer.Option(help="Artifact directory.")] = None,
    dim: Dim = 64,
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
    neighbours: Annotated[
        int, typer.Option(min=0, help="Each item's strongest co-visits and sequential rules kept "
                          "in the artifact, with the users' last 20 items (session neighbours), "
                          "which workers fuse with the model's list at weights fitted on "
                          "held-out events (0: none of them).")
    ] = 100,
    threads: TorchThreads = 2,
    warm_start: Annotated[
        Optional[Path],
        typer.Option(
            help="Continue from this artifact (same --model) on the newest --recent-events "
            "events instead of training from scratch: a new version in seconds."
        ),
    ] = None,
    recent_events: RecentEvents = 10_000,
    forgetting_fit: Annotated[
        Optional[Path],
        typer.Option(
            help="Name the winner of this forgetting_fit.json (streamrec evaluate "
            "--fit-forgetting) in the artifact as the forgetting function it is fit for; "
            "default the exponential of STREAMREC_HALF_LIFE_*. Workers serve exponential "
            "decay only and log a non-exponential one."
        ),
    ] = None,
    catalog: CatalogFile = None,
    encoder: Encoder = "minilm",
) -> None:
    """Train a model on an event log and write a versioned artifact.

    Positives are events with weight > 0 (see the settings' event weights; a MovieLens rating
    counts above STREAMREC_RATING_CENTER). Each user's last positive is the test item, the one
    before it validates; both are reported in the artifact's metrics.json. With --warm-start
    the log is everything so far (the users' context), one pass over its newest events trains,
    and there is no validation, test or ranker. Every version carries item and session neighbours
    (--neighbours) and the weights workers fuse them with, fitted on the test events, or for an
    update on the events since its parent, scored with the parent.
    """
    import torch

    from core.sources import load_events
    from models.train import TrainConfig
    from models.update import update
    from models.train import train as train_model

    settings = load_settings(model_path=out)
    generator = chosen_generator(
        data, generate, "--data PATH",
        n_users=users, n_items=items, events_per_user=events_per_user, seed=seed,
    )
    torch.set_num_threads(threads)
    config = TrainConfig(
        model=model, dim=dim, max_len=max_len, epochs=epochs, patience=patience,
        batch_size=batch_size, lr=lr, seed=seed, min_count=min_count, ranker=ranker,
        ann_min_items=ann_min_items, recent_events=recent_events, neighbours=neighbours,
    )
    if forgetting_fit and warm_start is not None:
        raise typer.BadParameter("--forgetting-fit names the function of a new model; an "
                                 "update (--warm-start) keeps its parent's")
    if catalog and warm_start is not None:
        raise typer.BadParameter("--catalog goes with a new model; an update (--warm-start) "
                                 "carries its parent's content vectors, projected anew")
    with user_errors():
        forgetting = fitted_winner(forgetting_fit) if forgetting_fit else None
        events = load_events(data, read, generator, note)
        if warm_start is not None:
            version, metrics = update(
                warm_start, events, settings.interest, config, settings.model_path
            )
            console.print(
                f"{model} {version} -> {settings.model_path}  from {metrics['warm_start_from']}: "
                f"{metrics['examples']:,} events, loss {metrics['losses'][-1]:.3f}  "
                f"({metrics['train_seconds']} s)"
            )
            print_neighbours(metrics)
            return
        items = catalog_items(catalog) if catalog else ()
        version, metrics = train_model(events, settings.interest, settings.blend, config,
                                       settings.model_path, forgetting=forgetting,
                                       catalog=items, encoder=encoder)  # fmt: skip
    console.print(
        f"{model} {version} -> {settings.model_path}  test HR@10 {metrics['test_hr@10']:.4f}  "
        f"NDCG@10 {metrics['test_ndcg@10']:.4f}  ({metrics['epochs_run']} epochs, "
        f"{metrics['train_seconds']} s)"
    )
    print_neighbours(metrics)
    if "content_items" in metrics:
        console.print(f"content vectors: {metrics['content_items']:,} catalog items encoded with "
                      f"{encoder} and projected in {metrics['content_seconds']} s")  # fmt: skip


def print_neighbours(metrics: dict) -> None:
    """The item neighbours' fitted weights (models/fusion_fit.py), if the artifact has them."""
    fit = metrics.get("neighbours")
    if fit is None:
        return
    held = fit["held_out"]
    scored = (f" on {held:,} held-out events: NDCG@10 {fit['ndcg@10']:.4f}, the model alone "
              f"{fit['model_ndcg@10']:.4f}") if held and "ndcg@10" in fit else " (none held out)"
    others = "".join(f", {name} weight {fit[f'{name}_weight']:g}" for name in ("content", "sessions")
                     if fit.get(f"{name}_weight") is not None)  # fmt: skip
    console.print(f"item neighbours: co-visit weight {fit['covisit_weight']:g}, rules weight "
                  f"{fit['rules_weight']:g}{others}{scored} ({fit['seconds']} s)")  # fmt: skip


def fitted_winner(path: Path) -> Forgetting:
    """The winner a forgetting fit wrote (models/forgetting_fit.py ``ForgettingFit.to_dict``)."""
    import json

    from core.forgetting import Forgetting

    try:
        return Forgetting.from_dict(json.loads(path.read_text())["winner"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a forgetting fit's result ({exc})") from None


models_app = typer.Typer(help="Inspect model artifacts and choose the one workers serve.",
                         no_args_is_help=True)


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
