"""Each user's candidates from the model's list and every kind of item neighbours
(models/neighbours.py), as flat entries: what :func:`models.fusion.fuse` ranks and
models/fusion_fit.py fits the weights on."""

from __future__ import annotations

import itertools
from typing import NamedTuple, Sequence

import numpy as np

from models.neighbours import CONTENT_WINDOW, KINDS, NEIGHBOUR_POOL, RULES_SHOWN, WINDOW, Neighbours


class Candidates(NamedTuple):
    """Every user's candidates as flat entries, by user then item: the model's feature
    ``(NEIGHBOUR_POOL - rank) / NEIGHBOUR_POOL`` (0 from that rank on, and for an item not in
    its list: a longer list, asked for an exploration pool, starts the same) and its rank (inf:
    not in its list; what breaks ties), (S, E) each kind of neighbours' score over the user's
    best (``KINDS`` order: co-visits, rules, content, sessions; a kind the neighbours lack
    scores 0), (S, B) those bests, and each kind's entries as its rows gave them (owner, target,
    score, source: what explains a slot, models/neighbour_reasons.py). No
    recent item of the user's and no item the neighbours do not cover is an entry. Flat, so a
    batch costs its candidates, whatever the catalog's size."""

    row: np.ndarray
    item: np.ndarray
    model: np.ndarray
    rank: np.ndarray
    parts: np.ndarray
    best: np.ndarray
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]

    def scores(self, weights: Sequence[float]) -> np.ndarray:
        """Each entry's fused score at ``weights`` (the model's, then one per kind; a kind
        without one weighs 0); -inf where it is no candidate at these weights (only a source
        that weighs brings one)."""
        score = weights[0] * self.model
        candidate = np.isfinite(self.rank)
        for part, weight in zip(self.parts, weights[1:]):
            if weight > 0:
                score = score + weight * part
                candidate |= part > 0
        return np.where(candidate, score, -np.inf)


def windows(neighbours: Neighbours, kind: str, known: Sequence[Sequence[int]]) -> list[list[int]]:
    """Of each user's last ``WINDOW`` recent items, those a ``kind`` of neighbours scores from
    (:func:`window_end`): counts only the items before ``covered`` (so the rules come out of the
    newest item that has counts), content and sessions every item."""
    end = window_end(neighbours, kind)
    return [[i for i in history[-WINDOW:] if i < end] for history in known]


def window_end(neighbours: Neighbours, kind: str) -> int:
    """A ``kind`` of neighbours scores from the user's recent items below this: counts only
    from the items they cover; content and sessions from every item (a session's positions
    count an item without holders too, as the streamed V-SKNN's do)."""
    return neighbours.covered if kind in ("covisits", "rules") else neighbours.n_items


def recent_sources(kind: str, windows: Sequence[Sequence[int]]
                   ) -> tuple[np.ndarray, np.ndarray, int | None]:  # fmt: skip
    """(owner, source, most) of a kind of neighbours for users' recent items (``windows[b]``,
    oldest first): co-visits of the last ``WINDOW``, the ``RULES_SHOWN`` strongest rules out of
    the newest, the content neighbours of the last ``CONTENT_WINDOW``, the sessions that share
    any of the last ``WINDOW``."""
    if kind == "rules":
        owner = np.array([b for b, w in enumerate(windows) if w], dtype=np.int64)
        return owner, np.array([w[-1] for w in windows if w], dtype=np.int64), RULES_SHOWN
    width = CONTENT_WINDOW if kind == "content" else WINDOW
    tails = [w[-width:] for w in windows]
    owner = np.repeat(np.arange(len(windows)), [len(t) for t in tails])
    return owner, np.fromiter((i for t in tails for i in t), np.int64, len(owner)), None


def candidates(
    neighbours: Neighbours, model_indices: np.ndarray, known: Sequence[Sequence[int]]
) -> Candidates:
    """The candidates of each user: ``model_indices`` (B, C) is the model's list, best first
    (-1: none), ``known[b]`` user b's recent items, oldest first."""
    batch = model_indices.shape[0]
    n = neighbours.n_items
    r, c = np.nonzero((model_indices >= 0) & (model_indices < neighbours.covered))
    recent = {}  # each kind's windows; co-visits, rules and sessions share theirs
    recent_kinds = neighbours.kinds()
    for kind in recent_kinds:
        end = window_end(neighbours, kind)
        if end not in recent:
            recent[end] = windows(neighbours, kind, known)
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
    found = [neighbours.expand(kind, *recent_sources(kind, recent[window_end(neighbours, kind)]))
             if kind in recent_kinds else none for kind in KINDS]  # fmt: skip
    sizes = [len(r)] + [len(f[0]) for f in found]
    rows = np.concatenate([r] + [f[0] for f in found])
    keys, inverse = grouped(rows * n + np.concatenate([model_indices[r, c]] + [f[1] for f in found]),
                            batch * n)  # fmt: skip

    def summed(values: np.ndarray, part: int) -> np.ndarray:
        start = sum(sizes[:part])
        return np.bincount(inverse[start:start + sizes[part]], values, len(keys))

    lengths = [len(history) for history in known]
    flat = np.fromiter(itertools.chain.from_iterable(known), np.int64, sum(lengths))
    seen = (np.repeat(np.arange(batch, dtype=np.int64) * n, lengths) + flat)[flat < n]
    kept = positions_in(seen, keys, batch * n) < 0  # a recent item is no candidate, but counts in a best
    starts = np.searchsorted(keys, np.arange(batch) * n)  # keys are sorted: by user, then item
    users = np.flatnonzero(np.diff(np.r_[starts, len(keys)]) > 0)
    key_row, key_item = np.divmod(keys[kept], n)
    model = summed(np.maximum(NEIGHBOUR_POOL - c, 0) / NEIGHBOUR_POOL, 0)[kept]
    rank = np.full(len(keys), np.inf)
    np.minimum.at(rank, inverse[:sizes[0]], c.astype(np.float64))
    best = np.zeros((len(found), batch))
    parts = np.zeros((len(found), len(key_row)))
    for source, (_, _, values, _) in enumerate(found):
        if not len(values):  # a kind with no entry leaves its part and best at 0
            continue
        total = summed(values, source + 1)
        if len(users):
            best[source, users] = np.maximum(np.maximum.reduceat(total, starts[users]), 0.0)
        parts[source] = total[kept] / np.where(best[source] > 0, best[source], 1.0)[key_row]
    return Candidates(key_row, key_item, model, rank[kept], parts, best, found)


DENSE_KEYS = 1 << 22  # a key space at most this large (16 MB of int32) is grouped by marking


def grouped(keys: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for keys in ``range(space)``: in a small space
    by marking an array as long as it (linear in the keys), in a large one by sorting them."""
    if space > DENSE_KEYS:
        return np.unique(keys, return_inverse=True)
    slot = np.zeros(space, dtype=np.int32)
    slot[keys] = 1
    unique = np.flatnonzero(slot)
    slot[unique] = np.arange(len(unique))
    return unique, slot[keys]


def positions_in(table: np.ndarray, queries: np.ndarray, space: int) -> np.ndarray:
    """Where each of ``queries`` is in ``table``, -1 where it is not (so ``>= 0``: whether it is
    one of them), for keys in ``range(space)``, as :func:`grouped` does it."""
    if space > DENSE_KEYS:
        if not len(table):
            return np.full(len(queries), -1, dtype=np.int64)
        order = np.argsort(table)
        found = order[np.searchsorted(table, queries, sorter=order).clip(0, len(table) - 1)]
        return np.where(table[found] == queries, found, -1)
    where = np.full(space, -1, dtype=np.int32)
    where[table] = np.arange(len(table))
    return where[queries].astype(np.int64)
