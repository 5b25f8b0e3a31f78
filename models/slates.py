"""What each served list shows, slot by slot: the model's items, items explored in their place
(models/exploration.py), or, for a user with no history yet, the trending items.

Every slot says where its item came from (``source``: :data:`SOURCES`) and with what
probability the policy put it there (``propensity``), so the records a worker sends are logs that
other policies can be evaluated on (IPS). With the greedy policy and no cold users this is the
model's top K exactly as :meth:`Recommender.top_k` gives it.

Diversity: with ``mmr_lambda`` below 1 the model's first ``mmr_candidates`` are re-ranked by
maximal marginal relevance over the item embedding (models/diversity.py) before anything
explores; the re-ranked items are still the model's.

Cold start: a user whose state holds at most ``cold_start_events`` events, or whose interest is
still zero (only impressions, or items the model has no vector for), gets the items of highest
decayed popularity from the item statistics (the trending fallback) instead of a ranking by a
zero or one-event vector; the model's items fill any slots trending leaves. ``cold_start_events
= -1`` (the default) turns this off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from core.interest import UserState
from models.diversity import mmr
from models.exploration import Exploration, explore
from models.item_board import ItemBoard
from models.scoring import Recommender, ScoredBatch

SOURCES = ("model", "explore", "trending", "new")
MODEL, EXPLORE, TRENDING, NEW = range(len(SOURCES))


@dataclass(frozen=True)
class ListRules:
    exploration: Exploration = field(default_factory=Exploration)
    cold_start_events: int = -1  # at most this many events: trending (-1: never)
    mmr_lambda: float = 1.0  # relevance's weight against similarity (1: the model's order)
    mmr_candidates: int = 50  # the model's candidates MMR chooses from

    def __post_init__(self) -> None:
        if not 0.0 <= self.mmr_lambda <= 1.0 or self.mmr_candidates < 1:
            raise ValueError("mmr_lambda must be in [0, 1] and mmr_candidates >= 1")

    @property
    def reads_item_stats(self) -> bool:
        """Whether these lists read the item statistics (a worker follows them only then)."""
        e = self.exploration
        return self.cold_start_events >= 0 or e.policy in ("ucb", "thompson") or (
            e.policy == "epsilon" and e.new_items > 0)

    def is_cold(self, state: UserState) -> bool:
        return self.cold_start_events >= 0 and (
            state.count <= self.cold_start_events or not state.vector.any())


def serve_lists(recommender: Recommender, states: Sequence[UserState], k: int, rules: ListRules,
                board: ItemBoard | None, seeds: Sequence[int],
                event_ts: Sequence[float]) -> ScoredBatch:  # fmt: skip
    """Each state's list of ``k``: row b explores with a generator seeded ``seeds[b]`` (its
    record's id) and, if cold, trends at event time ``event_ts[b]``."""
    vectors = np.stack([s.vector for s in states])
    recent = [s.recent for s in states]
    weights = [s.recent_weights for s in states]
    has_board = board is not None and len(board) > 0
    cold = [rules.is_cold(s) for s in states] if has_board and rules.cold_start_events >= 0 \
        else [False] * len(states)  # fmt: skip
    wanted = rules.exploration.candidates(k)
    if wanted == k and not any(cold) and rules.mmr_lambda >= 1.0:
        return recommender.top_k(vectors, recent, k, weights)  # the model's own lists
    item_ids = recommender.item_ids
    found, found_scores = candidates(recommender, vectors, recent, k, rules)
    indices = found[:, :k].copy()
    scores = found_scores[:, :k].astype(np.float32)
    propensity = np.ones(indices.shape)
    source = np.full(indices.shape, MODEL, dtype=np.int8)
    if wanted > k:
        alpha, beta, shown = board.posteriors(item_ids) if has_board else (None, None, None)
        for row, ranked_row in enumerate(found):
            if cold[row]:
                continue
            at = ranked_row.clip(0)
            ones = np.ones(len(ranked_row))
            slate = explore(ranked_row, k, rules.exploration,
                            ones if alpha is None else alpha[at], ones if beta is None else beta[at],
                            seeds[row], None if shown is None else shown[at])  # fmt: skip
            indices[row], propensity[row] = slate.items, slate.propensity
            source[row] = np.where(slate.new, NEW, np.where(slate.explored, EXPLORE, MODEL))
            scores[row] = _scores_of(slate.items, ranked_row, found_scores[row])
    for row in np.flatnonzero(cold):
        index = recommender.index
        seen = [index[i] for i in recent[row] if i in index]
        trend, popularity = board.trending(item_ids, event_ts[row], k, seen)
        n = int((trend >= 0).sum())
        if n == 0:
            continue  # nothing has popularity yet: the model's list
        trending = set(trend[:n].tolist())
        fill = [i for i in indices[row].tolist() if i >= 0 and i not in trending][: k - n]
        indices[row] = -1
        indices[row, :n], indices[row, n : n + len(fill)] = trend[:n], fill
        scores[row] = np.concatenate([popularity[:n], _scores_of(
            np.array(fill, dtype=np.int64), found[row], found_scores[row]),
            np.zeros(k - n - len(fill), np.float32)])  # fmt: skip
        propensity[row] = 1.0
        source[row] = MODEL
        source[row, :n] = TRENDING
    if recommender.blend.explain:
        because, contributions = recommender.explain(torch.from_numpy(indices), recent, weights)
    else:
        because = np.full((*indices.shape, 0), -1, dtype=np.int64)
        contributions = np.zeros(because.shape, dtype=np.float32)
    return ScoredBatch(item_ids, indices, scores, because, contributions, propensity, source)


def candidates(recommender: Recommender, vectors: np.ndarray, recent: Sequence[Sequence[str]],
               k: int, rules: ListRules) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The model's candidates for lists of ``k`` (B, k + the exploration pool) and their scores,
    the first ``k`` re-ranked by MMR when ``rules`` ask for diversity; unexplained."""
    wanted = rules.exploration.candidates(k)
    diverse = rules.mmr_lambda < 1.0
    ranked = recommender.top_k(vectors, recent, max(wanted, rules.mmr_candidates) if diverse
                               else wanted)  # fmt: skip
    found, scores = ranked.indices, ranked.scores
    if diverse:  # the first mmr_candidates re-ranked, the rest after them as they were
        head = rules.mmr_candidates
        picked, picked_scores = mmr(found[:, :head], scores[:, :head], recommender.vectors, k,
                                    rules.mmr_lambda)  # fmt: skip
        found = np.concatenate([picked, found[:, head:]], axis=1)
        scores = np.concatenate([picked_scores, scores[:, head:]], axis=1)
    return found[:, :wanted], scores[:, :wanted]


def _scores_of(items: np.ndarray, candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The model's score of each of ``items`` (0 for -1 or an item not among ``candidates``)."""
    order = np.argsort(candidates, kind="stable")
    at = np.searchsorted(candidates, items, sorter=order).clip(0, len(candidates) - 1)
    found = order[at]
    hit = (items >= 0) & (candidates[found] == items)
    return np.where(hit, scores[found], 0.0).astype(np.float32)
