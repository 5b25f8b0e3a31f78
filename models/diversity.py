"""Diversity of a list: maximal marginal relevance (MMR) re-ranking of the model's candidates,
and intra-list diversity, the evaluator's measure of it.

MMR (Carbonell and Goldstein, 1998) fills a list one slot at a time with the candidate that
maximises ``lam * relevance - (1 - lam) * (its largest cosine similarity to the items already
chosen)``; relevance is the model's score scaled to [0, 1] over the row's candidates, so the two
terms are on one scale. ``lam = 1`` is the model's own order; lower trades relevance for lists
whose items are less alike in the item embedding. Batched: (B, C) candidates at once.
"""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def mmr(indices: np.ndarray, scores: np.ndarray, vectors: np.ndarray, k: int,
        lam: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The first ``k`` of each row of ``indices`` (B, C), catalog indices best first (-1:
    none), re-ranked by MMR over their ``scores`` (B, C) and item ``vectors`` (N, D); the rest
    of the row follows in its order. Returns the re-ordered (B, C) indices and scores."""
    if lam >= 1.0 or indices.shape[1] == 0:
        return indices, scores
    rows, width = indices.shape
    valid = indices >= 0
    unit = unit_rows(vectors[indices.clip(0)].astype(np.float64))  # (B, C, D)
    similar = unit @ unit.transpose(0, 2, 1)  # (B, C, C)
    rel = np.where(valid, scores, np.inf).astype(np.float64)
    low = rel.min(axis=1, keepdims=True)
    rel = np.where(valid, scores, -np.inf).astype(np.float64)
    high = rel.max(axis=1, keepdims=True)
    span = np.where(np.isfinite(high - low) & (high > low), high - low, 1.0)
    rel = np.where(valid, (rel - np.where(np.isfinite(low), low, 0.0)) / span, -1e18)
    chosen = np.zeros((rows, width), dtype=bool)
    closest = np.zeros((rows, width))  # each candidate's largest similarity to those chosen
    order = np.empty((rows, min(k, width)), dtype=np.int64)
    every = np.arange(rows)
    for slot in range(order.shape[1]):
        objective = np.where(chosen, -np.inf, lam * rel - (1.0 - lam) * closest)
        pick = objective.argmax(axis=1)  # an empty candidate (-1e18) only once none is left
        order[:, slot] = pick
        chosen[every, pick] = True
        closest = np.maximum(closest, similar[every, pick])
    rest = np.argsort(chosen, axis=1, kind="stable")[:, : width - order.shape[1]]
    full = np.concatenate([order, rest], axis=1)
    return (np.take_along_axis(indices, full, axis=1),
            np.take_along_axis(scores, full, axis=1))  # fmt: skip


def intra_list_diversity(lists: np.ndarray, vectors: np.ndarray, chunk: int = 4096) -> float:
    """Mean over lists (T, K) of item indices (-1: empty) of the mean pairwise cosine distance
    ``1 - cos`` between their items in ``vectors`` (N, D); lists of fewer than 2 items, and
    items with a zero vector, are left out."""
    unit = unit_rows(vectors.astype(np.float64))
    known = np.linalg.norm(vectors, axis=1) > 0
    total, counted = 0.0, 0
    for start in range(0, len(lists), chunk):
        part = lists[start : start + chunk]
        mask = (part >= 0) & known[part.clip(0)]
        v = unit[part.clip(0)] * mask[..., None]
        n = mask.sum(axis=1)
        pair_sum = ((v.sum(axis=1) ** 2).sum(axis=1) - mask.sum(axis=1)) / 2  # sum of cos, i<j
        pairs = n * (n - 1) / 2
        ok = pairs > 0
        total += float((1.0 - pair_sum[ok] / pairs[ok]).sum())
        counted += int(ok.sum())
    return total / counted if counted else float("nan")
