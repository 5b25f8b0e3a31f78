"""Train matrix factorisation (BPR) from an event log, with a time-based validation split.

Positives are events whose weight is > 0 (a 5-star rating, a click, a purchase). The last
``val_fraction`` of the log, by event time, is held out; training stops when HR@10 on it stops
improving, and the best epoch's weights are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from models.artifact import save_artifact
from models.mf import MatrixFactorization
from streams.events import Event
from streams.interest import event_weight
from streams.settings import Settings


@dataclass(frozen=True)
class TrainConfig:
    dim: int = 32
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 0.01
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    patience: int = 3
    seed: int = 0


def _positives(events: list[Event], settings: Settings) -> list[Event]:
    return [
        e for e in events if event_weight(e, settings.event_weights, settings.rating_center) > 0
    ]


def _hit_rate(
    model: MatrixFactorization, train: np.ndarray, val: np.ndarray, n_items: int, k: int = 10
) -> float:
    """HR@k of held-out (user, item) pairs, full ranking, items seen in training excluded."""
    if len(val) == 0:
        return 0.0
    seen: dict[int, set[int]] = {}
    for user, item in train:
        seen.setdefault(int(user), set()).add(int(item))
    hits = 0
    with torch.inference_mode():
        users = torch.from_numpy(val[:, 0])
        scores = model.users(users) @ model.item_embeddings().T + model.item_biases()  # (B, N)
        for row, (user, item) in enumerate(val):
            excluded = [i for i in seen.get(int(user), ()) if i != item]
            if excluded:
                scores[row, excluded] = float("-inf")
        top = torch.topk(scores, min(k, n_items), dim=1).indices
        hits = int((top == torch.from_numpy(val[:, 1:2])).any(dim=1).sum())
    return hits / len(val)


def train_mf(
    events: list[Event],
    settings: Settings,
    config: TrainConfig,
    out: Path,
    show_progress: bool = True,
) -> tuple[str, dict]:
    """Fit, save the artifact to ``out``, return (version, metrics)."""
    positives = _positives(events, settings)
    if len(positives) < 10:
        raise ValueError(f"need at least 10 positive events to train, got {len(positives)}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    item_ids = sorted({e.item_id for e in events})
    user_ids = sorted({e.user_id for e in events})
    item_index = {item: i for i, item in enumerate(item_ids)}
    user_index = {user: i for i, user in enumerate(user_ids)}
    pairs = np.array([(user_index[e.user_id], item_index[e.item_id]) for e in positives])
    split = int(len(pairs) * (1 - config.val_fraction))
    train, val = pairs[:split], pairs[split:]
    # Users unseen in training have no embedding worth ranking with.
    val = val[np.isin(val[:, 0], np.unique(train[:, 0]))]

    model = MatrixFactorization(len(user_ids), len(item_ids), config.dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best_hr, best_epoch, best_state, history = -1.0, 0, None, []
    started = time.perf_counter()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("training mf", total=config.epochs)
        for epoch in range(1, config.epochs + 1):
            order = rng.permutation(len(train))
            users = torch.from_numpy(train[order, 0])
            items = torch.from_numpy(train[order, 1])
            negatives = torch.from_numpy(rng.integers(len(item_ids), size=len(train)))
            total = 0.0
            for start in range(0, len(train), config.batch_size):
                batch = slice(start, start + config.batch_size)
                margin = model(users[batch], items[batch]) - model(users[batch], negatives[batch])
                loss = -torch.nn.functional.logsigmoid(margin).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(margin)
            hr = _hit_rate(model, train, val, len(item_ids))
            history.append({"epoch": epoch, "loss": total / len(train), "val_hr@10": hr})
            progress.update(task, advance=1, description=f"training mf  val HR@10 {hr:.3f}")
            if hr > best_hr:
                best_hr, best_epoch = hr, epoch
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                break
    model.load_state_dict(best_state)
    metrics = {
        "val_hr@10": best_hr,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "train_seconds": round(time.perf_counter() - started, 2),
        "n_train": int(len(train)),
        "n_val": int(len(val)),
        "history": history,
    }
    init = {"n_users": len(user_ids), "n_items": len(item_ids), "dim": config.dim}
    version = save_artifact(out, model, item_ids, {"init": init, "train": config.__dict__}, metrics)
    return version, metrics
