"""A user's list fused from the model's and the item neighbours' candidates
(models/candidates.py :func:`~models.candidates.candidates`): what a worker serves when the
fusion weights are on, and what explains each slot (models/neighbour_reasons.py)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from models.candidates import candidates
from models.neighbours import Neighbours

CHUNK = 64  # users fused at a time (fused_in_chunks)


def fused_in_chunks(neighbours: Neighbours, model_indices: np.ndarray,
                    known: Sequence[Sequence[int]], k: int,
                    weights: Sequence[float]) -> list[Fused]:  # fmt: skip
    """:func:`fuse` over ``CHUNK`` users at a time, in order: each user is fused alone, and a
    chunk's flat entries stay few enough for the processor's caches, which a whole batch's do
    not (docs/evaluation.md, "What fusing costs a worker")."""
    return [fuse(neighbours, model_indices[start:start + CHUNK], known[start:start + CHUNK], k,
                 weights) for start in range(0, len(model_indices), CHUNK)]  # fmt: skip


def fuse(
    neighbours: Neighbours,
    model_indices: np.ndarray,
    known: Sequence[Sequence[int]],
    k: int,
    weights: Sequence[float],
) -> Fused:
    """Each user's top ``k`` (see :func:`candidates`): a candidate scores ``w_model (50 - rank)
    / 50 + w_covisit c / max c + w_rules r / max r + w_content s / max s + w_sessions v / max
    v``, its co-visit score ``c`` summed over the user's last ``WINDOW`` items, its rule score
    ``r`` from the newest one's ``RULES_SHOWN`` strongest, its content score ``s`` over the last
    ``CONTENT_WINDOW`` (when the neighbours have content rows), its votes ``v`` from the
    sessions most like the user's last ``WINDOW`` (models/session_neighbours.py), each maximum
    the user's own; best first, ties to the model's order and then the lower index
    (:class:`Fused`)."""
    batch = model_indices.shape[0]
    out = np.full((batch, k), -1, dtype=np.int64)
    out_scores = np.full((batch, k), -np.inf, dtype=np.float32)
    by_neighbours = np.zeros((batch, k), dtype=bool)
    found = candidates(neighbours, model_indices, known)
    score = found.scores(weights)
    shown = np.isfinite(score)
    shown &= score >= _kth_best(found.row[shown], score[shown], batch, k)[found.row]
    row, item, rank, model, score = (a[shown] for a in (found.row, found.item, found.rank,
                                                        found.model, score))  # fmt: skip
    order = np.lexsort((item, rank, -score, row))
    row, item, model, score = row[order], item[order], model[order], score[order]
    place = np.arange(len(row)) - np.searchsorted(row, row)
    take = place < k
    out[row[take], place[take]] = item[take]
    out_scores[row[take], place[take]] = score[take]
    by_neighbours[row[take], place[take]] = score[take] > 2 * weights[0] * model[take]
    late = (model_indices[:, :k] >= neighbours.covered).any(axis=1)
    for user in np.flatnonzero(late).tolist():
        valid = out[user] >= 0
        items, scores = out[user, valid].tolist(), out_scores[user, valid].tolist()
        mostly = by_neighbours[user, valid].tolist()
        for at, new in _uncovered(model_indices[user], known[user], neighbours.covered, k):
            if new in items:  # brought by its content: at the better of the two places
                if items.index(new) <= at:
                    continue
                drop = items.index(new)
                del items[drop], scores[drop], mostly[drop]
            items.insert(at, new)
            scores.insert(at, scores[at] if at < len(scores) else
                          (scores[-1] if scores else 0.0))  # fmt: skip
            mostly.insert(at, False)
        out[user, :min(k, len(items))] = items[:k]
        out_scores[user, :min(k, len(items))] = scores[:k]
        by_neighbours[user, :min(k, len(items))] = mostly[:k]
    return Fused(out, out_scores, by_neighbours, found.best, found.found)


class Fused(NamedTuple):
    """Each user's fused list: (B, k) item indices (-1 padded) and scores, best first; whether
    the neighbours weigh more than the model in each slot's score (what explains it:
    models/neighbour_reasons.py); and (S, B) the users' best sums of each kind of neighbours,
    their scores' scale; and each kind's entries (models/candidates.py ``Candidates.found``)."""

    indices: np.ndarray
    scores: np.ndarray
    by_neighbours: np.ndarray
    best: np.ndarray
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _uncovered(model_row: np.ndarray, known: Sequence[int], n_items: int,
               k: int) -> list[tuple[int, int]]:  # fmt: skip
    """(rank, item) of the model's first ``k`` that the neighbours do not cover (added to the
    served catalog after the version, learned online or from its content; or a catalog item
    without interactions, which only content rows cover). No counts of theirs can speak for or
    against them, so each keeps at least the model's rank in the fused list: never buried under
    items with counts, lifted only by content neighbours (or counts laid on live)."""
    seen = set(known)
    return [(rank, int(item)) for rank, item in enumerate(model_row[:k].tolist())
            if item >= n_items and item not in seen]


def _kth_best(row: np.ndarray, score: np.ndarray, batch: int, k: int) -> np.ndarray:
    """Each row's ``k``-th best score (-inf for a row with fewer), ``row`` ascending: nothing
    scoring below it can be among the row's ``k``, so only the rest is sorted."""
    counts = np.bincount(row, minlength=batch)
    if not len(row) or counts.max() <= k:
        return np.full(batch, -np.inf)
    dense = np.full((batch, counts.max()), -np.inf)
    dense[row, np.arange(len(row)) - np.searchsorted(row, row)] = score
    return -np.partition(-dense, k - 1, axis=1)[:, k - 1]
