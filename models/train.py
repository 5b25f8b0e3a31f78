"""Train any model kind from an event log: next-item prediction, early stopping on time.

Positives are events with weight > 0 under the settings (a click, a purchase, a rating above
``rating_center``). Each user's positives, in event-time order, are split leave-one-out: the
second-to-last item validates (early stopping on NDCG@10, best epoch kept), the last one is the
test reported in the artifact's metrics, the rest trains.

:func:`update` is the online path: a new version continues from the previous one on the newest
events only, in seconds, so versions can follow the stream (see docs/evaluation.md).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from rich.progress import Progress

from torch.nn import functional as F

from models.artifact import load_model, save_artifact
from models.base import SequenceModel
from models.data import (
    Interactions,
    interactions,
    left_pad,
    popularity,
    recent_examples,
    training_windows,
)
from models.evaluation import HeldOut, leave_one_out, metrics_at, ranks
from models.ranker import Ranker
from models.registry import MODEL_KINDS
from models.retrieval import ExactIndex
from models.scoring import Blend
from core.events import Event
from core.interest import event_weight
from streams.settings import Settings


@dataclass(frozen=True)
class TrainConfig:
    model: str = "sasrec"
    dim: int = 64
    max_len: int = 50
    epochs: int = 200
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0
    min_count: int = 1  # k-core filter on users and items
    ranker: bool = True
    device: str = "cpu"  # where training runs; the artifact is always saved for CPU
    ann_min_items: int = 100_000  # catalogs this large also get an HNSW index
    recent_events: int = 10_000  # an update trains on the targets among the newest this many
    update_passes: int = 1  # passes of an update over those


def evaluate(model: SequenceModel, held_out: HeldOut, k: int = 10) -> dict[str, float]:
    model.eval()
    device = model.item_bias.device
    rank = ranks(
        lambda h: model.score(model.encode_user(h)),
        held_out,
        model.max_len,
        model.pad,
        device=device,
    )
    return metrics_at(rank, k)


def train_epoch(
    model: SequenceModel,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
) -> float:
    """One shuffled pass over the (inputs, targets) windows; the mean batch loss."""
    model.train()
    order = torch.randperm(len(inputs), generator=generator)
    total, batches = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        batch = order[start : start + config.batch_size]
        loss = model.loss(inputs[batch].to(config.device), targets[batch].to(config.device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    return total / batches


def fit(
    train: Sequence[np.ndarray],
    val: HeldOut,
    n_items: int,
    config: TrainConfig,
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[SequenceModel, list[dict[str, float]]]:
    """Train ``config.model`` on the sequences; return the best-on-validation model and history
    (each epoch's entry is also passed to ``on_epoch``)."""
    if config.model not in MODEL_KINDS:
        raise ValueError(f"unknown model {config.model!r}; one of {sorted(MODEL_KINDS)}")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = MODEL_KINDS[config.model](n_items=n_items, dim=config.dim, max_len=config.max_len)
    model.to(config.device)
    inputs, targets = training_windows(train, config.max_len, model.pad)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best, best_epoch, best_state, history = -1.0, 0, None, []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"training {config.model}", total=config.epochs)
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            loss = train_epoch(model, optimizer, inputs, targets, config, generator)
            scores = evaluate(model, val)
            history.append(
                {
                    "epoch": epoch,
                    "loss": loss,
                    **{f"val_{k}": v for k, v in scores.items()},
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
            if on_epoch is not None:
                on_epoch(history[-1])
            progress.update(
                task,
                advance=1,
                description=f"training {config.model}  loss {loss:.3f}  "
                f"val NDCG@10 {scores['ndcg@10']:.4f}",
            )
            if scores["ndcg@10"] > best:
                best, best_epoch = scores["ndcg@10"], epoch
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                break
    model.load_state_dict(best_state)
    return model.cpu().eval(), history


def train(
    events: Sequence[Event],
    settings: Settings,
    config: TrainConfig,
    out: Path,
    show_progress: bool = True,
) -> tuple[str, dict[str, Any]]:
    """Fit on an event log, save the artifact to ``out``, return (version, metrics)."""
    data = positive_interactions(events, settings, config.min_count)
    if len(data) < 10:
        raise ValueError(f"need at least 10 positive events to train, got {len(data)}")
    train_data, val, test = leave_one_out(data)
    if len(val.targets) == 0:
        raise ValueError("no user has 3 or more positive events: nothing to validate on")
    started = time.perf_counter()
    model, history = fit(train_data.items, val, data.n_items, config, show_progress)
    best = max(history, key=lambda h: h["val_ndcg@10"])
    ranker, reranked = None, {}
    if config.ranker:
        blend = settings.blend
        ranker = fit_ranker(model, train_data, val, blend, settings.half_life_ms, seed=config.seed)
        rank = reranked_ranks(model, ranker, test, blend, settings.half_life_ms)
        reranked = {f"test_reranked_{k}": v for k, v in metrics_at(rank).items()}
    seconds = time.perf_counter() - started
    metrics = {
        **{k: v for k, v in best.items() if k.startswith("val_")},
        **{f"test_{k}": v for k, v in evaluate(model, test).items()},
        **reranked,
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "train_seconds": round(seconds, 2),
        "n_users": len(data.users),
        "n_items": data.n_items,
        "n_interactions": len(data),
        "history": history,
    }
    version = save_artifact(
        out, model, data.item_ids, {"train": asdict(config)}, metrics, ranker, config.ann_min_items
    )
    return version, metrics


def positive_interactions(
    events: Sequence[Event], settings: Settings, min_count: int = 1
) -> Interactions:
    """The events a model learns from: weight > 0 under the settings' event weights."""
    return interactions(
        events,
        keep=lambda e: event_weight(e, settings.event_weights, settings.rating_center) > 0,
        weight=lambda e: event_weight(e, settings.event_weights, settings.rating_center),
        min_count=min_count,
    )


def update(
    previous: Path,
    events: Sequence[Event],
    settings: Settings,
    config: TrainConfig,
    out: Path,
) -> tuple[str, dict[str, Any]]:
    """A new version continuing from the artifact at ``previous``: its weights carried over
    (item rows matched by item id, new items initialised fresh), then ``config.update_passes``
    passes over the newest ``config.recent_events`` positives of ``events`` (the whole log so
    far, for their users' context). No early stopping and no ranker: an update is seconds where
    a retrain is minutes, so versions can follow the stream. Save to ``out``, return (version,
    metrics)."""
    old, old_ids, old_config = load_model(previous)
    if config.model != old.kind:
        raise ValueError(f"cannot update a {old.kind} artifact as {config.model!r}")
    data = positive_interactions(events, settings, config.min_count)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = warm_started(old, old_ids, data.item_ids).to(config.device)
    inputs, targets = recent_examples(data, config.recent_events, model.max_len, model.pad)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed + len(data))
    losses = [
        train_epoch(model, optimizer, inputs, targets, config, generator)
        for _ in range(config.update_passes)
    ]
    model = model.cpu().eval()
    metrics = {
        "warm_start_from": old_config["version"],
        "examples": len(inputs),
        "losses": losses,
        "train_seconds": round(time.perf_counter() - started, 2),
        "n_users": len(data.users),
        "n_items": data.n_items,
        "n_interactions": len(data),
    }
    config_out = {"train": asdict(config), "warm_start_from": old_config["version"]}
    version = save_artifact(
        out, model, data.item_ids, config_out, metrics, None, config.ann_min_items
    )
    return version, metrics


def warm_started(
    previous: SequenceModel, previous_ids: Sequence[str], item_ids: Sequence[str]
) -> SequenceModel:
    """A model of ``previous``'s kind over the catalog ``item_ids``: every weight of
    ``previous``, item embeddings and biases by item id; items it lacks keep a fresh init."""
    model = type(previous)(**{**previous.init_args(), "n_items": len(item_ids)})
    per_item = {"items.weight", "item_bias"}
    shared = {k: v for k, v in previous.state_dict().items() if k not in per_item}
    missing, unexpected = model.load_state_dict(shared, strict=False)
    if set(missing) != per_item or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing}, extra {unexpected}")
    old_row = {item: row for row, item in enumerate(previous_ids)}
    pairs = [(row, old_row[item]) for row, item in enumerate(item_ids) if item in old_row]
    if pairs:
        new_rows, old_rows = (torch.tensor(rows) for rows in zip(*pairs))
        with torch.no_grad():
            model.items.weight[new_rows] = previous.items.weight[old_rows]
            model.item_bias[new_rows] = previous.item_bias[old_rows]
    return model


def decayed_interest(items: torch.Tensor, held_out: HeldOut, half_life_ms: float) -> torch.Tensor:
    """(C, D): each user's interest vector right after their last history item, exactly what
    the worker's state holds at that point (the closed form in ``core.interest``)."""
    vectors = items.detach().numpy()
    rows = [
        (weights * 2.0 ** (-(times[-1] - times) / half_life_ms)).astype(np.float32) @ vectors[hist]
        for hist, times, weights in zip(held_out.histories, held_out.times, held_out.weights)
    ]
    return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, items.shape[1])


def item_features(train: Interactions) -> torch.Tensor:
    """(N, 2): log1p of training interactions, overall and in the last tenth of the time span."""
    times = np.concatenate(train.times)
    cutoff = times.max() - 0.1 * (times.max() - times.min())
    overall = popularity(train.items, train.n_items)
    recent = popularity([s[t >= cutoff] for s, t in zip(train.items, train.times)], train.n_items)
    return torch.from_numpy(np.log1p(np.stack([overall, recent], axis=1)))


@dataclass(frozen=True)
class Candidates:
    interest: torch.Tensor  # (C, D) normalised
    user: torch.Tensor  # (C, D)
    indices: torch.Tensor  # (C, K) best first
    scores: torch.Tensor  # (C, K)


def candidates(
    model: SequenceModel, held_out: HeldOut, blend: Blend, half_life_ms: float
) -> Candidates:
    """The blended query's top ``blend.rerank_candidates`` per user, history excluded."""
    with torch.inference_mode():
        interest = F.normalize(decayed_interest(model.item_embeddings(), held_out, half_life_ms))
        padded = torch.tensor(
            [left_pad(h.tolist(), model.max_len, model.pad) for h in held_out.histories]
        )
        user = model.encode_user(padded)
        query = blend.interest_weight * interest + blend.sequence_weight * user
        index = ExactIndex(model.item_embeddings(), model.item_biases())
        exclude = [h.tolist() for h in held_out.histories]
        scores, indices = index.search(query, blend.rerank_candidates, exclude)
    return Candidates(interest, user, indices, scores)


def fit_ranker(
    model: SequenceModel,
    train: Interactions,
    val: HeldOut,
    blend: Blend,
    half_life_ms: float,
    steps: int = 300,
    seed: int = 0,
) -> Ranker:
    """Train the ranker listwise on validation targets that are among the candidates."""
    torch.manual_seed(seed)
    ranker = Ranker(model.n_items, model.dim)
    ranker.item_features.copy_(item_features(train))
    cands = candidates(model, val, blend, half_life_ms)
    found = cands.indices == torch.from_numpy(val.targets)[:, None]  # (C, K)
    rows = torch.nonzero(found.any(dim=1)).squeeze(1)
    labels = found[rows].float().argmax(dim=1)
    with torch.no_grad():
        x = ranker.features(
            cands.interest[rows],
            cands.user[rows],
            model.item_embeddings(),
            model.item_biases(),
            cands.indices[rows],
        )
    base = cands.scores[rows]
    # A fifth of the examples decides when to stop: the rest are too few to trust blindly.
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    held, fit_rows = order[: len(order) // 5], order[len(order) // 5 :]
    optimizer = torch.optim.Adam(ranker.parameters(), lr=3e-3, weight_decay=1e-4)
    with torch.no_grad():
        best = F.cross_entropy(ranker(x[held], base[held]), labels[held]).item()
    best_state = {k: v.clone() for k, v in ranker.state_dict().items()}
    for step in range(steps):
        loss = F.cross_entropy(ranker(x[fit_rows], base[fit_rows]), labels[fit_rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            held_loss = F.cross_entropy(ranker(x[held], base[held]), labels[held]).item()
        if held_loss < best:
            best, best_state = held_loss, {k: v.clone() for k, v in ranker.state_dict().items()}
    ranker.load_state_dict(best_state)
    return ranker.eval()


def reranked_ranks(
    model: SequenceModel, ranker: Ranker, held_out: HeldOut, blend: Blend, half_life_ms: float
) -> np.ndarray:
    """Rank of each target after re-ranking; targets outside the candidates rank last."""
    cands = candidates(model, held_out, blend, half_life_ms)
    with torch.inference_mode():
        _, order = ranker.rerank(
            cands.interest,
            cands.user,
            model.item_embeddings(),
            model.item_biases(),
            cands.scores,
            cands.indices,
            cands.indices.shape[1],
        )
    found = order == torch.from_numpy(held_out.targets)[:, None]
    return torch.where(found.any(dim=1), found.float().argmax(dim=1), model.n_items).numpy()
