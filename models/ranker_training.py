"""The re-ranking MLP's training: listwise on the blended query's candidates, as served.

Each held-out user's interest vector is the closed form of the worker's state right after the
user's last history item (:meth:`core.interest.InterestConfig.decays`), with the decay the
worker serves, so the ranker learns on the inputs it will see. Exact over the positives the
models train on; the worker also applies non-positive events (skips, low ratings), which the
training histories leave out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from core.interest import InterestConfig
from models.base import SequenceModel
from models.blend import Blend
from models.data import Interactions, left_pad, popularity
from models.evaluation import HeldOut
from models.ranker import Ranker
from models.retrieval import ExactIndex


def decayed_interest(
    items: torch.Tensor, held_out: HeldOut, interest: InterestConfig
) -> torch.Tensor:
    """(C, D): each user's interest vector right after their last history item, what the
    worker's state holds at that point (in event time, or counted in the user's own events)."""
    vectors = items.detach().numpy()
    rows = [
        (weights * interest.decays(times)).astype(np.float32) @ vectors[hist]
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
    model: SequenceModel, held_out: HeldOut, blend: Blend, interest: InterestConfig
) -> Candidates:
    """The blended query's top ``blend.rerank_candidates`` per user, history excluded."""
    with torch.inference_mode():
        unit_interest = F.normalize(
            decayed_interest(model.item_embeddings(), held_out, interest)
        )
        padded = torch.tensor(
            [left_pad(h.tolist(), model.max_len, model.pad) for h in held_out.histories]
        )
        user = model.encode_user(padded)
        query = blend.interest_weight * unit_interest + blend.sequence_weight * user
        index = ExactIndex(model.item_embeddings(), model.item_biases())
        exclude = [h.tolist() for h in held_out.histories]
        scores, indices = index.search(query, blend.rerank_candidates, exclude)
    return Candidates(unit_interest, user, indices, scores)


def fit_ranker(
    model: SequenceModel,
    train: Interactions,
    val: HeldOut,
    blend: Blend,
    interest: InterestConfig,
    steps: int = 300,
    seed: int = 0,
) -> Ranker:
    """Train the ranker listwise on validation targets that are among the candidates."""
    torch.manual_seed(seed)
    ranker = Ranker(model.n_items, model.dim)
    ranker.item_features.copy_(item_features(train))
    cands = candidates(model, val, blend, interest)
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
    model: SequenceModel, ranker: Ranker, held_out: HeldOut, blend: Blend, interest: InterestConfig
) -> np.ndarray:
    """Rank of each target after re-ranking; targets outside the candidates rank last."""
    cands = candidates(model, held_out, blend, interest)
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
