"""The steps ``streamrec evaluate`` runs (streams/cli/evaluate.py reads and checks the options)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import typer

from streams.cli.options import console, note

if TYPE_CHECKING:
    import numpy as np

    from core.forgetting import Forgetting
    from core.generator import GeneratorConfig
    from core.interest import InterestConfig
    from core.items import Item
    from core.log_formats import ReadOptions
    from models.half_life import HalfLife
    from models.periodic import Retrained
    from models.prequential import Policy
    from models.forgetting_policy import ForgettingPolicy
    from models.product import ModelVersions, ProductPolicy
    from models.source_ranker import SourceRanker
    from models.stream import Stream
    from models.train import TrainConfig
    from streams.settings import Settings


def chosen_policies(named: list[str] | None, known: Sequence[str]) -> list[str]:
    """The --policy names given (all by default), each one a known policy."""
    chosen = named or list(known)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown policy {unknown}; choose from {', '.join(known)}")
    return chosen


def stream_of(
    data: Path | None,
    read: ReadOptions,
    generator: GeneratorConfig | None,
    min_rating: float | None,
    warmup: float,
) -> Stream:
    """The positive-only, time-ordered stream every policy replays, and a line describing it."""
    from core.sources import load_events
    from models.stream import Stream, positives

    stream = Stream.of(positives(load_events(data, read, generator, note), min_rating), warmup)
    console.print(
        f"{len(stream.events):,} events, {stream.n_users:,} users, "
        f"{len(stream.item_ids):,} items; {int(stream.tested.sum()):,} tested after "
        f"{warmup:.0%} warm-up"
    )
    return stream


def model_versions(
    stream: Stream,
    artifact: Path | None,
    settings: Settings,
    config: TrainConfig,
    workdir: Path,
    warm_start: bool,
    retrain_every: int,
    catalog: Sequence[Item] = (),
    encoder: str = "minilm",
) -> ModelVersions:
    """The model the product serves along the stream: the given artifact, or versions trained
    on the events so far (from scratch, or warm-started from the version before), with the
    ``catalog``'s content vectors when one is given."""
    from models.artifact import load_recommender
    from models.product import ModelVersions
    from models.version_trainer import trainer

    if artifact is not None:
        fit = lambda _events: load_recommender(artifact)  # noqa: E731
    else:
        fit = trainer(settings.interest, settings.blend, config, workdir, console.is_terminal,
                      warm_start, catalog, encoder)  # fmt: skip
    return ModelVersions(fit, stream, retrain_every or None, warm_started=warm_start,
                         on_version=version_progress("model"))


def version_progress(label: str, every_s: float = 30.0):
    """A line on the console for a policy's model versions as they are made: the first, the
    last, and one at most every ``every_s`` seconds between (a long log takes hours)."""
    import time

    began = last = time.monotonic()

    def shown(done: int, total: int, at: int, seconds: float) -> None:
        nonlocal last
        now = time.monotonic()
        if done in (1, total) or now - last >= every_s:
            last = now
            console.print(f"  {label}: version {done} of {total} made at event {at:,} "
                          f"in {seconds:.1f} s; {now - began:.0f} s so far")  # fmt: skip

    return shown


def product_policies_chosen(
    chosen: Sequence[str],
    versions: ModelVersions,
    settings: Settings,
    half_lives: Sequence[HalfLife],
    kind: str,
    item_learning: bool = False,
    explore: Sequence[str] = (),
    explore_budget: int = 1,
    mmr: Sequence[float] = (),
) -> list[ProductPolicy]:
    """``interest`` picks the interest vector alone at each half-life, ``product`` its blends
    with the model; each also with online item learning, each exploration policy asked and
    each MMR lambda."""
    from models.exploration import Exploration
    from models.product import product_policies

    items = settings.item_learning_config if item_learning else None
    try:
        explorations = [Exploration(name, explore_budget) for name in explore]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    every = product_policies(versions, settings.interest, settings.blend, half_lives, kind,
                             items, explorations, mmr)  # fmt: skip
    return [
        p for p in every
        if _family(p.name) in chosen
    ]


def _family(name: str) -> str:
    """The --policy that names a product policy's row."""
    if name.startswith("interest h="):
        return "interest"
    if name.startswith("interest + live neighbours h="):
        return "live-neighbours"
    return "neighbours" if name.startswith("interest + neighbours h=") else "product"


def forgetting_policies_of(
    versions: ModelVersions, settings: Settings, functions: Sequence[Forgetting]
) -> list[ForgettingPolicy]:
    """The interest policy under each forgetting function (each once), from one replay."""
    from models.forgetting_policy import forgetting_policies

    unique = list(dict.fromkeys(functions))
    return forgetting_policies(versions, settings.interest, settings.blend, unique) if unique \
        else []  # fmt: skip


def fitted_forgetting(
    stream: Stream,
    artifact: Path | None,
    settings: Settings,
    config: TrainConfig,
    workdir: Path,
    k: int,
    out: Path,
) -> list[Forgetting]:
    """Fit the forgetting function on the warm-up's last quarter (a model trained on the rest
    serves it), write OUT/forgetting_fit.json, and return each family's best function."""
    import json

    from models.forgetting_fit import default_grid, fit_forgetting, holdout_of

    held_out = holdout_of(stream)
    console.print(f"forgetting fit on the warm-up: {len(held_out.events):,} events, "
                  f"{int(held_out.tested.sum()):,} tested in its last 25%")  # fmt: skip
    versions = model_versions(held_out, artifact, settings, config, workdir / "fit", False, 0)
    result = fit_forgetting(held_out, versions, settings.interest, settings.blend,
                            default_grid(), k, on_progress=console.print)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "forgetting_fit.json").write_text(json.dumps(result.to_dict(), indent=2))
    console.print(result.table())
    console.print(f"forgetting fit: {result.winner.label} wins; wrote {out}/forgetting_fit.json")
    best: dict[str, Forgetting] = {}
    for forgetting, _ in result.best_of_each():  # best first: each family's best on any clock
        best.setdefault(forgetting.family, forgetting)
    return list(best.values())


def source_rankers(
    stream: Stream, versions: ModelVersions, settings: Settings, half_life: HalfLife,
    trending_half_life_s: float, ablation: bool, content: tuple | None = None,
) -> list[SourceRanker]:  # fmt: skip
    """``sources``: candidates from every source and the product's interest vector at
    ``half_life``, and content neighbours when ``content`` (:func:`catalog_content_of`) is
    given, ranked by the online ranker; with ``ablation`` also once without each."""
    from models.content_knn import ContentKNN
    from models.interest_source import InterestSource
    from models.source_ranker import SOURCES, SourceRanker

    interest = half_life.applied_to(settings.interest)

    def ranker(sources: Sequence[str], with_interest: bool = True, name: str | None = None,
               with_content: bool = True):  # fmt: skip
        extras = [InterestSource(stream, versions, interest, settings.blend)] if with_interest \
            else []  # fmt: skip
        if content is not None and with_content:
            extras.append(ContentKNN(stream.n_users, *content))
        return SourceRanker(stream.n_users, len(stream.item_ids), sources, name=name,
                            extras=extras, trending_half_life_ms=trending_half_life_s * 1000.0)

    rankers = [ranker(SOURCES)]
    if ablation:
        rankers.append(ranker(SOURCES, with_interest=False, name="sources - interest"))
        if content is not None:
            rankers.append(ranker(SOURCES, with_content=False, name="sources - content-knn"))
        rankers += [ranker([s for s in SOURCES if s != left_out], name=f"sources - {left_out}")
                    for left_out in SOURCES]  # fmt: skip
    return rankers


def retrained_policies(
    chosen: Sequence[str], interest: InterestConfig, config: TrainConfig
) -> list[Retrained]:
    """``sasrec-60min`` and the like: that model kind retrained from scratch every period."""
    from core.durations import parse_duration
    from models.periodic import Retrained

    kinds = {"sasrec": "sasrec", "gru4rec": "gru"}
    return [
        Retrained(name, parse_duration(every), interest, replace(config, model=kinds[kind]),
                  on_version=version_progress(name))
        for name in chosen
        for kind, _, every in [name.partition("-")]
        if kind in kinds
    ]


def catalog_content_of(stream: Stream, catalog: Sequence[Item], encoder: str
                       ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The stream's items' content vectors and announcement times from ``catalog``, encoded
    once for every content policy (models/content_knn.py)."""
    from models.content import encode_items, load_encoder
    from models.content_knn import catalog_content

    note(f"encoding {len(catalog):,} catalog items with {encoder} for the content neighbours")
    return catalog_content(stream, catalog, encode_items(load_encoder(encoder), catalog))


def run_policies(stream: Stream, policies: Sequence[Policy], k: int, windows: int,
                 versions: ModelVersions | None) -> list[dict]:  # fmt: skip
    """The result rows, saying which policy runs as it starts (a sweep takes minutes); the
    lists' diversity is measured in the first model version's item space, when there is one."""
    from models.prequential import reference_vectors, run_prequential

    space = None
    if versions is not None:
        space = reference_vectors(versions.at(versions.starts[0]), stream.item_ids)
    started = iter(range(1, len(policies) + 1))
    announce = lambda name: console.print(f"[{next(started)}/{len(policies)}] {name}")  # noqa: E731
    return run_prequential(stream, policies, k, windows, on_policy=announce, item_vectors=space)


def check_kafka_path(
    stream: Stream,
    versions: ModelVersions,
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

    from models.version_trainer import version_dir
    from streams.tools.replay_check import check_through_kafka

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
