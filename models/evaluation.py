"""Offline metrics: full ranking over the catalog, the user's earlier items masked.

HR@k (= Recall@k with one target), NDCG@k and MRR@k of one held-out item per user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from models.base import SequenceModel
from models.data import Interactions, left_pad


@dataclass(frozen=True)
class HeldOut:
    """One target per user and everything the user had before it (items, times, weights)."""

    histories: list[np.ndarray]
    times: list[np.ndarray]
    weights: list[np.ndarray]
    targets: np.ndarray  # (C,)


def _held_out(data: Interactions, users: list[int], end: int) -> HeldOut:
    """Each user's item at ``len + end`` (end < 0) and the items before it."""
    return HeldOut(
        [data.items[u][:end] for u in users],
        [data.times[u][:end] for u in users],
        [data.weights[u][:end] for u in users],
        np.array([data.items[u][end] for u in users], dtype=np.int64),
    )


def leave_one_out(data: Interactions) -> tuple[Interactions, HeldOut, HeldOut]:
    """Chronological leave-one-out: train on all but the last two, validate on the second to
    last, test on the last. Users with fewer than three items only train."""
    users = [u for u, seq in enumerate(data.items) if len(seq) >= 3]
    cut = [-2 if len(seq) >= 3 else len(seq) for seq in data.items]
    train = Interactions(
        data.item_ids,
        data.users,
        [seq[:c] for seq, c in zip(data.items, cut)],
        [seq[:c] for seq, c in zip(data.times, cut)],
        [seq[:c] for seq, c in zip(data.weights, cut)],
    )
    return train, _held_out(data, users, -2), _held_out(data, users, -1)


def ranks(
    score: Callable[[torch.Tensor], torch.Tensor],
    held_out: HeldOut,
    max_len: int,
    pad: int,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """0-based rank of each target among all items, the user's history excluded.

    ``score`` maps padded histories (B, max_len) on ``device`` to scores (B, N).
    """
    out = []
    with torch.inference_mode():
        for start in range(0, len(held_out.targets), batch_size):
            hists = held_out.histories[start : start + batch_size]
            targets = torch.from_numpy(held_out.targets[start : start + batch_size]).to(device)
            padded = torch.tensor([left_pad(h.tolist(), max_len, pad) for h in hists])
            scores = score(padded.to(device)).clone()  # (B, N)
            target_scores = scores.gather(1, targets[:, None])  # (B, 1)
            rows = np.repeat(np.arange(len(hists)), [len(h) for h in hists])
            cols = np.concatenate(hists)
            scores[torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)] = float(
                "-inf"
            )
            out.append((scores > target_scores).sum(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def gains_at(rank: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Per target at 0-based ``rank``: hit, NDCG and reciprocal rank within a top-``k`` list."""
    hit = rank < k
    return {
        f"hr@{k}": hit.astype(float),
        f"ndcg@{k}": hit / np.log2(rank + 2.0),
        f"mrr@{k}": hit / (rank + 1.0),
    }


def metrics_at(rank: np.ndarray, k: int = 10) -> dict[str, float]:
    return {name: float(v.mean()) if len(rank) else 0.0 for name, v in gains_at(rank, k).items()}


def held_out_metrics(model: SequenceModel, held_out: HeldOut, k: int = 10) -> dict[str, float]:
    """Leave-one-out HR/NDCG/MRR@k of ``model`` on ``held_out``, by full ranking."""
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
