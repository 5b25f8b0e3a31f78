"""Train any model kind from an event log: next-item prediction, early stopping on time.

Positives are events with weight > 0 under the interest config (a click, a purchase, a rating above
``rating_center``). Each user's positives, in event-time order, are split leave-one-out: the
second-to-last item validates (early stopping on NDCG@10, best epoch kept), the last one is the
test reported in the artifact's metrics, the rest trains.

The online path, a new version continuing from the previous one on the newest events only, is
models/update.py.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from rich.progress import Progress

from core.events import Event
from core.items import Item
from core.interest import InterestConfig
from core.forgetting import Forgetting
from models.artifact import forgetting_entry, save_artifact
from models.base import SequenceModel
from models.blend import Blend
from models.content import PACKAGED_ENCODER, content_vectors, load_encoder
from models.data import Interactions, interactions, training_windows
from models.fusion_fit import HELD_OUT, item_vectors, last_of_each, version_neighbours
from models.evaluation import HeldOut, held_out_metrics, leave_one_out, metrics_at
from models.ranker_training import fit_ranker, reranked_ranks
from models.registry import model_kind


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
    replay_examples: int = 0  # plus this many older examples drawn at random (no forgetting)
    neighbours: int = 100  # each item's co-visits and rules kept in the artifact (0: none)
    neighbour_events: int = 200_000  # the newest positives they are counted over


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
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = model_kind(config.model)(n_items=n_items, dim=config.dim, max_len=config.max_len)
    model.to(config.device)
    inputs, targets = training_windows(train, config.max_len, model.pad)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best, best_epoch, best_state, history = -1.0, 0, None, []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"training {config.model}", total=config.epochs)
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            loss = train_epoch(model, optimizer, inputs, targets, config, generator)
            scores = held_out_metrics(model, val)
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
    interest: InterestConfig,
    blend: Blend,
    config: TrainConfig,
    out: Path,
    show_progress: bool = True,
    forgetting: Forgetting | None = None,
    catalog: Sequence[Item] = (),
    encoder: str = PACKAGED_ENCODER,
) -> tuple[str, dict[str, Any]]:
    """Fit on an event log, save the artifact to ``out``, return (version, metrics). ``interest``
    says which events are positives and how the ranker's interest vectors decay (as served);
    ``blend`` is the query the ranker re-ranks. ``forgetting``: the function the artifact names
    as fit for (a forgetting fit's winner); default the exponential decay of ``interest``.
    ``catalog``: what the items are; their content vectors (from ``encoder``,
    models/content.py) go into the artifact, projected into the trained model's space."""
    data = positive_interactions(events, interest, config.min_count)
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
        ranker = fit_ranker(model, train_data, val, blend, interest, seed=config.seed)
        rank = reranked_ranks(model, ranker, test, blend, interest)
        reranked = {f"test_reranked_{k}": v for k, v in metrics_at(rank).items()}
    seconds = time.perf_counter() - started
    metrics = {
        **{k: v for k, v in best.items() if k.startswith("val_")},
        **{f"test_{k}": v for k, v in held_out_metrics(model, test).items()},
        **reranked,
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "train_seconds": round(seconds, 2),
        "n_users": len(data.users),
        "n_items": data.n_items,
        "n_interactions": len(data),
        "history": history,
    }
    trained_for = forgetting or Forgetting.exponential(interest.half_life_ms,
                                                       interest.half_life_events)
    config_out = {"train": asdict(config), **forgetting_entry(trained_for)}
    content = None
    if catalog:
        started = time.perf_counter()
        with torch.inference_mode():
            vectors = model.item_embeddings().detach().float().numpy()
        content = content_vectors(catalog, data.item_ids, vectors, load_encoder(encoder), encoder)
        metrics["content_items"] = len(catalog)
        metrics["content_seconds"] = round(time.perf_counter() - started, 2)
    neighbours, config_out = version_neighbours(
        item_vectors(model, data.item_ids, data.item_ids), data, last_of_each(data, HELD_OUT),
        interest, config.neighbours, config.neighbour_events, config_out, metrics, None, content)
    version = save_artifact(out, model, data.item_ids, config_out, metrics, ranker,
                            config.ann_min_items, content, neighbours)  # fmt: skip
    return version, metrics


def positive_interactions(
    events: Sequence[Event], interest: InterestConfig, min_count: int = 1
) -> Interactions:
    """The events a model learns from: weight > 0 under the interest's event weights."""
    return interactions(
        events,
        keep=lambda e: interest.weight(e) > 0,
        weight=interest.weight,
        min_count=min_count,
    )
