"""Item neighbours a worker serves beside the model: co-visits and sequential rules.

Off MovieLens the cheap neighbourhood methods beat the interest vector (docs/evaluation.md):
items seen near each other in users' streams (item-kNN's co-occurrence) and items that followed
an item (sequential rules, Ludewig & Jannach 2018). Both come from the trainer, with every
model version, over the newest ``events`` positives it trains on, so a worker gets them by the
same verified, hot-swapped artifact as the model and keeps no pair counts of its own; between
versions they are as fresh as the model is.

- **co-visits**: each positive adds 1 to the pair it makes with each of the user's ``window``
  items before it, in both directions (models/baselines.py ``ItemKNN``).
- **rules**: each positive adds ``1 - 0.1 b`` to the rule from the item ``b`` steps before it,
  ``b`` < 10 (models/sequential_rules.py).

Each item keeps its ``keep`` strongest of each, by weight (ties: the lower index), as rows of a
sparse matrix over the artifact's items. :func:`models.fusion.fuse` ranks a user's candidates
(:func:`candidates`): the model's list by its rank, plus the co-visits of the user's last
``window`` items and the rules out of their newest item, each normalised by the user's best,
summed with the blend's weights or those fitted for the version (models/fusion_fit.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np

NEIGHBOURS_FILE = "neighbours.npz"
WINDOW = 20  # item-kNN's window: the user's items a co-visit is counted with, and scored from
RULE_STEPS = 9  # sequential rules reach this many steps back (weight 1 - 0.1 b, zero at 10)
RULES_SHOWN = 20  # the strongest rules out of the newest item that score (SR's pruning)
NEIGHBOUR_POOL = 50  # the model's candidates fused with the neighbours


@dataclass(frozen=True)
class Rows:
    """A sparse (N, N) matrix by rows: row i's targets and weights, strongest first."""

    indptr: np.ndarray  # (N + 1,) int64
    targets: np.ndarray  # (nnz,) int32
    weights: np.ndarray  # (nnz,) float32

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.indptr[i], self.indptr[i + 1]
        return self.targets[start:end], self.weights[start:end]


@dataclass(frozen=True)
class Neighbours:
    """Each item's strongest co-visits and rules, over the item ids of the artifact."""

    n_items: int
    covisits: Rows
    rules: Rows
    live: Neighbours | None = None  # counted since the version (models/live_neighbours.py)

    def with_live(self, live: Neighbours) -> Neighbours:
        """These rows with ``live``'s laid on them, over its catalog (which extends this one:
        the items after ours have empty rows here): a pair's weight is the sum of the two."""
        if live.n_items < self.n_items:
            raise ValueError(f"live neighbours over {live.n_items} items, not {self.n_items}+")
        extra = live.n_items - self.n_items
        padded = [Rows(np.concatenate([r.indptr, np.full(extra, r.indptr[-1])]), r.targets,
                       r.weights) for r in (self.covisits, self.rules)]  # fmt: skip
        return Neighbours(live.n_items, *padded, live=live)

    def expand(self, name: str, owner: np.ndarray, sources: np.ndarray, most: int | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """:func:`expanded` over the ``name`` rows ("covisits" or "rules"), and the live
        layer's too: a pair in both is two entries, which the callers sum (``most`` bounds
        each layer's row on its own)."""
        parts = [expanded(getattr(self, name), owner, sources, most)]
        if self.live is not None:
            parts.append(expanded(getattr(self.live, name), owner, sources, most))
        return tuple(np.concatenate(p) for p in zip(*parts)) if len(parts) > 1 else parts[0]

    def save(self, path: Path) -> None:
        with path.open("wb") as f:  # np.savez would add ".npz" to a name without it
            np.savez(f, n_items=np.int64(self.n_items),
                     **{f"{name}_{part}": getattr(getattr(self, name), part)
                        for name in ("covisits", "rules")
                        for part in ("indptr", "targets", "weights")})  # fmt: skip

    @classmethod
    def load(cls, path: Path, n_items: int | None = None) -> Neighbours:
        """The neighbours at ``path``; ValueError unless they are a matrix (over ``n_items``,
        the catalog they serve, when given)."""
        with np.load(path, allow_pickle=False) as f:
            n = int(f["n_items"])
            rows = {name: Rows(f[f"{name}_indptr"], f[f"{name}_targets"], f[f"{name}_weights"])
                    for name in ("covisits", "rules")}  # fmt: skip
        for name, r in rows.items():
            if (len(r.indptr) != n + 1 or r.indptr[-1] != len(r.targets)
                    or len(r.targets) != len(r.weights)
                    or (len(r.targets) and (r.targets.min() < 0 or r.targets.max() >= n))
                    or not np.isfinite(r.weights).all()):  # fmt: skip
                raise ValueError(f"{path}: {name} is not a matrix over {n} items")
        if n_items is not None and n != n_items:
            raise ValueError(f"neighbours over {n} items, not {n_items}")
        return cls(n, rows["covisits"], rows["rules"])


def build(
    items: Sequence[np.ndarray], times: Sequence[np.ndarray], n_items: int,
    keep: int = 100, events: int = 200_000,
) -> Neighbours:
    """Count co-visits and rules over each user's item sequence (indices in time order, with
    their times), counting only pairs whose later event is among the newest ``events`` of all
    users (its earlier items may be older: they are its context)."""
    lengths = np.array([len(s) for s in items], dtype=np.int64)
    flat = np.concatenate(list(items)).astype(np.int64) if len(items) else np.zeros(0, np.int64)
    when = np.concatenate(list(times)) if len(times) else np.zeros(0, np.int64)
    user = np.repeat(np.arange(len(items)), lengths)
    newest = np.zeros(len(flat), dtype=bool)
    if len(flat) and events > 0:
        order = np.argsort(when, kind="stable")
        newest[order[-events:]] = True
    covisit_keys, covisit_weights, rule_keys, rule_weights = [], [], [], []
    for back in range(1, WINDOW + 1):
        earlier, later = flat[:-back], flat[back:]
        valid = (user[:-back] == user[back:]) & (earlier != later) & newest[back:]
        a, b = earlier[valid], later[valid]
        covisit_keys += [a * n_items + b, b * n_items + a]
        covisit_weights.append(np.ones(2 * len(a), dtype=np.float64))
        if back <= RULE_STEPS:
            rule_keys.append(a * n_items + b)
            rule_weights.append(np.full(len(a), 1.0 - 0.1 * back))
    return Neighbours(n_items, strongest(covisit_keys, covisit_weights, n_items, keep),
                      strongest(rule_keys, rule_weights, n_items, keep))  # fmt: skip


def strongest(keys: list[np.ndarray], weights: list[np.ndarray], n: int, keep: int) -> Rows:
    keys_all = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    unique, inverse = np.unique(keys_all, return_inverse=True)
    summed = np.bincount(inverse, np.concatenate(weights) if weights else None, len(unique))
    source, target = np.divmod(unique, n)
    order = np.lexsort((target, -summed, source))  # by row, strongest first, ties: lower index
    source, target, summed = source[order], target[order], summed[order]
    place = np.arange(len(source)) - np.searchsorted(source, source)
    kept = place < keep
    source, target, summed = source[kept], target[kept], summed[kept]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(source, minlength=n), out=indptr[1:])
    return Rows(indptr, target.astype(np.int32), summed.astype(np.float32))


class Candidates(NamedTuple):
    """Every user's candidates as flat entries, by user then item: the model's feature
    ``(NEIGHBOUR_POOL - rank) / NEIGHBOUR_POOL`` (0 from that rank on, and for an item not in
    its list: a longer list, asked for an exploration pool, starts the same) and its rank (inf:
    not in its list; what breaks ties), the co-visit and rule scores over the user's best, and
    (2, B) those bests. No recent item of the user's and no item the neighbours do not cover
    is an entry. Flat, so a batch costs its candidates, whatever the catalog's size."""

    row: np.ndarray
    item: np.ndarray
    model: np.ndarray
    rank: np.ndarray
    covisit: np.ndarray
    rules: np.ndarray
    best: np.ndarray

    def scores(self, weights: tuple[float, float, float]) -> np.ndarray:
        """Each entry's fused score; -inf where it is no candidate at these weights (only a
        source that weighs brings one)."""
        w_model, w_covisit, w_rules = weights
        score = w_model * self.model + w_covisit * self.covisit + w_rules * self.rules
        candidate = np.isfinite(self.rank)
        if w_covisit > 0:
            candidate |= self.covisit > 0
        if w_rules > 0:
            candidate |= self.rules > 0
        return np.where(candidate, score, -np.inf)


def candidates(
    neighbours: Neighbours, model_indices: np.ndarray, known: Sequence[Sequence[int]]
) -> Candidates:
    """The candidates of each user: ``model_indices`` (B, C) is the model's list, best first
    (-1: none), ``known[b]`` user b's recent items, oldest first."""
    batch = model_indices.shape[0]
    n = neighbours.n_items
    r, c = np.nonzero((model_indices >= 0) & (model_indices < n))
    windows = [[i for i in history[-WINDOW:] if i < n] for history in known]
    owner = np.repeat(np.arange(batch), [len(w) for w in windows])
    recent = np.fromiter((i for w in windows for i in w), np.int64, len(owner))
    has = np.array([b for b, w in enumerate(windows) if w], dtype=np.int64)
    last = np.array([w[-1] for w in windows if w], dtype=np.int64)
    cov_row, cov_item, cov_weight, _ = neighbours.expand("covisits", owner, recent, None)
    rule_row, rule_item, rule_weight, _ = neighbours.expand("rules", has, last, RULES_SHOWN)
    sizes = (len(r), len(cov_row), len(rule_row))
    rows = np.concatenate([r, cov_row, rule_row])
    keys, inverse = np.unique(rows * n + np.concatenate([model_indices[r, c], cov_item,
                                                          rule_item]), return_inverse=True)
    def summed(values: np.ndarray, part: int) -> np.ndarray:
        weights = np.zeros(len(rows))
        start = sum(sizes[:part])
        weights[start:start + sizes[part]] = values
        return np.bincount(inverse, weights, len(keys))

    key_row, key_item = np.divmod(keys, n)
    model = summed(np.maximum(NEIGHBOUR_POOL - c, 0) / NEIGHBOUR_POOL, 0)
    rank = np.full(len(keys), np.inf)
    np.minimum.at(rank, inverse[:sizes[0]], c.astype(np.float64))
    best = np.zeros((2, batch))
    scores = []
    for part, values, source in ((1, cov_weight, 0), (2, rule_weight, 1)):
        total = summed(values, part)
        np.maximum.at(best[source], key_row, total)
        scores.append(total / np.where(best[source] > 0, best[source], 1.0)[key_row])
    seen = np.fromiter((b * n + i for b, history in enumerate(known) for i in history if i < n),
                       np.int64)  # fmt: skip
    kept = ~np.isin(keys, seen)
    return Candidates(key_row[kept], key_item[kept], model[kept], rank[kept], scores[0][kept],
                      scores[1][kept], best)  # fmt: skip


def expanded(matrix: Rows, owner: np.ndarray, sources: np.ndarray, most: int | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(owner, target, weight, source) of every entry of the ``sources``' rows (``most``: each
    row's first), each source its ``owner``'s."""
    starts = matrix.indptr[sources]
    lengths = matrix.indptr[sources + 1] - starts
    if most is not None:
        lengths = np.minimum(lengths, most)
    at = np.repeat(starts, lengths) + np.arange(int(lengths.sum())) - np.repeat(
        np.cumsum(lengths) - lengths, lengths)
    return (np.repeat(owner, lengths), matrix.targets[at].astype(np.int64),
            matrix.weights[at].astype(np.float64), np.repeat(sources, lengths))  # fmt: skip
