"""The weights a version fuses its item neighbours with, fitted on its own newest events.

Neighbours win on some logs and cost on others (docs/evaluation.md): co-visits carry session
logs, where the interest vector alone is far behind item-kNN, and pull a rating log's lists away
from what the interest vector knows better. So each version picks its own weights, the way the
source ranker of the evaluator learns them: events the model did not learn from are held out
(a first training's test events, each user's last; an update's new events, scored with the
version before it, as it served them), neighbours are counted over each user's events before
their held-out ones, and every pair of co-visit and rule weights on a grid ranks them by
:func:`models.fusion.fuse`, then each session weight beside the best pair (and, if one wins, the
pairs again beside it), then (with an item catalog) each content weight beside the others;
the weights with the best NDCG@10 go into the artifact, and the model's list alone (every
weight 0) is on the grid, so a version never picks a fusion that did worse than none on its
held-out events.

The user's query for a held-out event is the interest vector of their earlier positives, decayed
as served (:meth:`core.interest.InterestConfig.decays`): the worker's query without the sequence
model, cheap enough for every version.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from core.interest import InterestConfig
from models.base import SequenceModel
from models.data import Interactions
from models.content import ContentVectors
from models.content_neighbours import content_rows, served_ids
from models.candidates import Candidates, candidates
from models.neighbours import FUSION_WEIGHTS, NEIGHBOUR_POOL, Neighbours, Rows, build

GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
K = 10
HELD_OUT = 1_000  # the most events a fit holds out


def version_neighbours(
    vectors: tuple[np.ndarray, np.ndarray], data: Interactions, held: list[tuple[int, int]],
    interest: InterestConfig, keep: int, events: int, config: dict[str, Any],
    metrics: dict[str, Any], parent: Mapping[str, float] | None = None,
    content: ContentVectors | None = None,
) -> tuple[Neighbours | None, dict[str, Any]]:
    """The item neighbours a version serves beside its model, each item's ``keep`` strongest
    over the newest ``events`` positives of ``data`` (none when ``keep`` is 0), with the
    ``content`` catalog's content neighbours (models/content_neighbours.py) when given, and
    its ``config`` naming the weights fitted for them on the ``held`` events, which the model
    of ``vectors`` (items, biases over ``data``'s catalog) did not learn; the ``parent``'s
    weights when nothing is held out. The fit goes into ``metrics`` too."""
    if not keep:
        return None, config
    started = time.perf_counter()
    alike = _content_rows(data, content, data.items)
    neighbours = build(data.items, data.times, data.n_items, keep, events, alike)
    fusion = fit_fusion(*vectors, data, interest, keep, events, held, content)
    if not fusion["held_out"] and parent:
        fusion = {**fusion, **{name: parent.get(name, 0.0) for name in FUSION_WEIGHTS}}
    metrics["neighbours"] = {**fusion, "seconds": round(time.perf_counter() - started, 2)}
    return neighbours, {**config, "neighbours": {name: fusion[name] for name in FUSION_WEIGHTS}}


def item_vectors(model: SequenceModel, item_ids: Sequence[str],
                 catalog: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``model``'s (N, D) vectors and (N,) biases, its catalog ``item_ids``, over ``catalog``: an
    item it lacks has a zero vector and bias -inf, so the model's list never holds it (a worker
    without online item learning does not serve it either)."""
    with torch.inference_mode():
        vectors = model.item_embeddings().detach().float().numpy()
        bias = model.item_biases().detach().float().numpy()
    row = {item: n for n, item in enumerate(item_ids)}
    rows = np.array([row.get(item, -1) for item in catalog], dtype=np.int64)
    found = rows >= 0
    out_vectors = np.zeros((len(catalog), vectors.shape[1]), np.float32)
    out_bias = np.full(len(catalog), -np.inf, np.float32)  # never in the model's list
    out_vectors[found], out_bias[found] = vectors[rows[found]], bias[rows[found]]
    return out_vectors, out_bias


def fit_fusion(
    vectors: np.ndarray,
    bias: np.ndarray,
    data: Interactions,
    interest: InterestConfig,
    keep: int,
    neighbour_events: int,
    held: list[tuple[int, int]],
    content: ContentVectors | None = None,
) -> dict[str, Any]:
    """``vectors`` (N, D) and ``bias`` (N,) are the items of a model that did not learn the
    ``held`` events ((user, position) in ``data``, its positives; see :func:`newest` and
    :func:`last_of_each`). The chosen ``covisit_weight`` and ``rules_weight``, then
    ``sessions_weight`` given them (and the pair again given it, when it weighs), then, with a
    ``content`` catalog, ``content_weight`` given the others, with the held-out NDCG@10 they and the
    model alone reached, and how many events were held out (0: none; weights 0)."""
    held = [(u, p) for u, p in held if p > 0]
    if not held:
        return {**dict.fromkeys(FUSION_WEIGHTS, 0.0), "held_out": 0}
    before = [items[:start] for items, (start, _) in zip(data.items, _first_held(data, held))]
    times = [t[: len(s)] for t, s in zip(data.times, before)]
    alike = _content_rows(data, content, before)
    neighbours = build(before, times, data.n_items, keep, neighbour_events, alike)
    users, positions = zip(*held)
    known = [data.items[u][max(0, p - interest.history_len):p].tolist()
             for u, p in zip(users, positions)]  # fmt: skip
    targets = np.array([data.items[u][p] for u, p in zip(users, positions)])
    model = _model_lists(vectors, bias, data, interest, users, positions, known)
    ranked = Ranked.of(candidates(neighbours, model, known), targets, neighbours.n_items)
    scores: dict[tuple[float, ...], float] = {}

    def best_of(grid) -> tuple[float, ...]:
        scores.update({w: ranked.ndcg_sum((1.0, *w)) / len(held) for w in grid if w not in scores})
        return max(scores, key=lambda w: (scores[w], -sum(w)))  # ties: the lighter fusion

    best = best_of((c, r, 0.0, 0.0) for c, r in itertools.product(GRID, GRID))
    best = best_of((*best[:3], s) for s in GRID[1:])  # the sessions, given the pair
    if best[3]:  # then the pair again, given the sessions
        best = best_of((c, r, 0.0, best[3]) for c, r in itertools.product(GRID, GRID))
    if alike is not None:  # the content weight, given the others
        best = best_of((*best[:2], c, best[3]) for c in GRID[1:])
    return {**dict(zip(FUSION_WEIGHTS, best)), "held_out": len(held),
            "ndcg@10": round(float(scores[best]), 6),
            "model_ndcg@10": round(float(scores[0.0, 0.0, 0.0, 0.0]), 6)}


def _content_rows(data: Interactions, content: ContentVectors | None,
                  items: Sequence[np.ndarray]) -> Rows | None:  # fmt: skip
    """The content neighbours over ``data``'s catalog and ``content``'s other items, each
    item's coldness counted over ``items`` (the users' positives the version knows)."""
    if content is None:
        return None
    flat = np.concatenate(list(items)) if len(items) else np.zeros(0, np.int64)
    positives = np.bincount(flat.astype(np.int64), minlength=data.n_items)
    return content_rows(content, served_ids(data.item_ids, content), positives)


class Ranked(NamedTuple):
    """The held-out events' candidates (models/candidates.py :class:`Candidates`) and where
    each row's target is among them (-1: not a candidate of any source, or a recent item)."""

    found: Candidates
    target: np.ndarray  # (E_held,) item
    at: np.ndarray  # (E_held,) its entry, or -1

    @classmethod
    def of(cls, found: Candidates, target: np.ndarray, n: int) -> Ranked:
        keys = found.row * n + found.item  # sorted: candidates come by user then item
        wanted = np.arange(len(target)) * n + target
        at = np.searchsorted(keys, wanted).clip(0, max(0, len(keys) - 1))
        hit = (keys[at] == wanted) if len(keys) else np.zeros(len(target), dtype=bool)
        return cls(found, target, np.where(hit, at, -1))

    def ndcg_sum(self, weights: Sequence[float]) -> float:
        """The summed NDCG@K of the targets in :func:`models.fusion.fuse`'s order: ahead
        of a target, the better scores, then equal scores higher in the model's list, then
        equal ones outside it with a lower index."""
        found = self.found
        score = found.scores(weights)
        present = self.at >= 0
        mine = np.full(len(self.target), -np.inf)
        mine[present] = score[self.at[present]]
        my_rank = np.full(len(self.target), np.inf)
        my_rank[present] = found.rank[self.at[present]]
        row = found.row
        ahead = np.isfinite(score) & ((score > mine[row]) | ((score == mine[row]) & (
            (found.rank < my_rank[row]) | ((found.rank == my_rank[row])
                                           & (found.item < self.target[row])))))  # fmt: skip
        rank = np.bincount(row[ahead], minlength=len(mine))
        shown = np.isfinite(mine) & (rank < K)
        return float((1.0 / np.log2(rank[shown] + 2)).sum())


def newest(data: Interactions, events: int) -> list[tuple[int, int]]:
    """(user, position) of the newest ``events`` positives."""
    users = np.repeat(np.arange(len(data.items)), [len(s) for s in data.items])
    positions = np.concatenate([np.arange(len(s)) for s in data.items]) if data.items else users
    times = np.concatenate(data.times) if data.times else users
    order = np.argsort(times, kind="stable")[::-1][:max(0, events)]
    return [(int(users[n]), int(positions[n])) for n in order]


def last_of_each(data: Interactions, events: int) -> list[tuple[int, int]]:
    """(user, position) of the last positive of each user with three or more, which a first
    training holds out (models/evaluation.py ``leave_one_out``), the newest ``events`` of them."""
    last = [(int(t[-1]), u, len(t) - 1) for u, t in enumerate(data.times) if len(t) >= 3]
    return [(u, p) for _, u, p in sorted(last, reverse=True)[:events]]


def _first_held(data: Interactions, held: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Per user: (first held-out position, or the stream's length; its length)."""
    first = {}
    for u, p in held:
        first[u] = min(p, first.get(u, p))
    return [(first.get(u, len(s)), len(s)) for u, s in enumerate(data.items)]


def _model_lists(vectors, bias, data, interest, users, positions, known) -> np.ndarray:
    """(E, NEIGHBOUR_POOL) the model's list for each held-out event, its user's earlier items
    excluded, from the decayed interest of their earlier positives."""
    queries = np.zeros((len(users), vectors.shape[1]))
    for row, (u, p) in enumerate(zip(users, positions)):
        start = max(0, p - interest.history_len)
        weights = interest.decays(data.times[u][start:p]) * data.weights[u][start:p]
        queries[row] = weights @ vectors[data.items[u][start:p]]
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    pool = min(NEIGHBOUR_POOL, len(vectors))
    out = np.full((len(users), pool), -1, dtype=np.int64)
    for start in range(0, len(users), 256):  # a few MB at a time, whatever the catalog
        scores = (queries[start:start + 256] @ vectors.T + bias).astype(np.float32)
        for row, items in enumerate(known[start:start + 256]):
            scores[row, items] = -np.inf
        top = np.argpartition(-scores, pool - 1, axis=1)[:, :pool]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
        out[start:start + 256] = np.where(np.isfinite(np.take_along_axis(scores, top, 1)), top, -1)
    return out
