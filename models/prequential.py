"""Prequential (test-then-train) evaluation over a time-ordered event stream.

Each event of a user with history, after the warm-up share of the stream, is first a test: the
policy ranks K items for the user as of that moment, and the event's item scores HR@K, NDCG@K and
MRR@K; then the event is learned. Policies are seen only through :class:`Policy`: the streaming
baselines (models/baselines.py) and the product (models/product.py) alike.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from models.baselines import ItemKNN, OnlineMF, Popularity, StreamingPolicy
from models.diversity import intra_list_diversity
from models.evaluation import gains_at
from models.sequential_rules import SequentialRules
from models.session_knn import STAN, VSKNN
from models.stream import Stream

if TYPE_CHECKING:
    from models.scoring import Recommender


class Policy(Protocol):
    """What the evaluator asks of a policy: a list for every tested event of the stream."""

    name: str
    baseline: bool  # a reference the product is measured against (models/prequential_report.py)

    def run(self, stream: Stream, k: int) -> np.ndarray:
        """(tested events, k) stream item indices, best first, -1 where the list is shorter;
        row j is the list shown before the j-th tested event, from everything before it."""
        ...

    @property
    def train_seconds(self) -> float:
        """Model training so far (excluded from the policy's speed)."""
        ...


BASELINES: dict[str, Callable[[int, int, float, int], StreamingPolicy]] = {
    "popularity": lambda users, items, trending_ms, seed: Popularity(users, items),
    "trending": lambda users, items, trending_ms, seed: Popularity(users, items, trending_ms),
    "item-knn": lambda users, items, trending_ms, seed: ItemKNN(users, items),
    "online-mf": lambda users, items, trending_ms, seed: OnlineMF(users, items, seed=seed),
    "v-sknn": lambda users, items, trending_ms, seed: VSKNN(users, items),
    "stan": lambda users, items, trending_ms, seed: STAN(users, items),
    "sr": lambda users, items, trending_ms, seed: SequentialRules(users, items),
}


def baselines(
    stream: Stream, names: Sequence[str], trending_half_life_s: float, seed: int = 0
) -> list[StreamingPolicy]:
    """The streaming baselines named (as ``streamrec evaluate --policy`` names them), in the
    order of :data:`BASELINES`; only those are built (item-kNN holds an N x N matrix)."""
    n_users, n_items = stream.n_users, len(stream.item_ids)
    return [
        make(n_users, n_items, trending_half_life_s * 1000.0, seed)
        for name, make in BASELINES.items()
        if name in names
    ]


def run_prequential(
    stream: Stream,
    policies: Sequence[Policy],
    k: int = 10,
    windows: int = 10,
    on_policy: Callable[[str], None] | None = None,
    item_vectors: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One result row per policy: overall metrics, on the events of new items
    (:func:`new_item_tests`), per-window metrics, and evaluator speed;
    with ``item_vectors`` (one per stream item: a fixed reference space, the same for every
    policy) also the lists' intra-list diversity (models/diversity.py)."""
    targets = stream.items[stream.tested]
    test_ts = stream.ts[stream.tested]
    new_item = new_item_tests(stream)
    popularity_rank = _popularity_rank(stream.items, len(stream.item_ids))
    bounds = np.linspace(0, len(targets), windows + 1).astype(int)
    results = []
    for policy in policies:
        if on_policy:
            on_policy(policy.name)
        started = time.perf_counter()
        trained_before = policy.train_seconds
        lists = policy.run(stream, k)
        training = policy.train_seconds - trained_before  # product versions train when first used
        seconds = time.perf_counter() - started - training
        gains = _gains(lists, targets)
        shown = lists[lists >= 0]
        results.append(
            {
                "policy": policy.name,
                "baseline": policy.baseline,
                **{name: float(v.mean()) for name, v in gains.items()},
                "coverage": len(np.unique(shown)) / len(stream.item_ids),
                "novelty": float(popularity_rank[shown].mean()) if len(shown) else 0.0,
                "diversity": float("nan") if item_vectors is None
                else intra_list_diversity(lists, item_vectors),
                "tested": len(targets),
                "new_items": {"tested": int(new_item.sum()),
                              **{name: float(v[new_item].mean()) if new_item.any() else 0.0
                                 for name, v in gains.items()}},  # fmt: skip
                "events": len(stream.events),
                "seconds": round(seconds, 2),  # model training excluded
                "train_seconds": round(training, 2),
                "events_per_s": round(len(stream.events) / seconds),
                "windows": [
                    {
                        "start_ts": int(test_ts[a]),
                        "end_ts": int(test_ts[b - 1]),
                        "tested": int(b - a),
                        **{name: float(v[a:b].mean()) for name, v in gains.items()},
                    }
                    for a, b in zip(bounds[:-1], bounds[1:])
                    if b > a
                ],
            }
        )
    return results


def new_item_tests(stream: Stream) -> np.ndarray:
    """Which tested events are of an item first seen after the warm-up (the stream's first
    tested event): the cold start of new items, which no model trained on the warm-up knows."""
    first = np.full(len(stream.item_ids), len(stream.items))
    np.minimum.at(first, stream.items, np.arange(len(stream.items)))
    warm_end = int(np.argmax(stream.tested)) if stream.tested.any() else len(stream.items)
    return first[stream.items[stream.tested]] >= warm_end


def _gains(lists: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per tested event: hit, NDCG and reciprocal rank of the target in its list."""
    k = lists.shape[1]
    match = lists == targets[:, None]  # (T, K)
    return gains_at(np.where(match.any(axis=1), match.argmax(axis=1), k), k)


def _popularity_rank(items: np.ndarray, n_items: int) -> np.ndarray:
    """Rank of each item by its count over the whole stream, 1 = most consumed."""
    counts = np.bincount(items, minlength=n_items)
    rank = np.empty(n_items, dtype=float)
    rank[np.argsort(-counts, kind="stable")] = np.arange(1, n_items + 1)
    return rank


def reference_vectors(recommender: Recommender, item_ids: Sequence[str]) -> np.ndarray:
    """``recommender``'s vector of each of ``item_ids`` (zero for one it lacks): the space the
    evaluator measures every policy's diversity in."""
    out = np.zeros((len(item_ids), recommender.dim), dtype=np.float32)
    for row, item in enumerate(item_ids):
        vector = recommender.item_vector(item)
        if vector is not None:
            out[row] = vector
    return out
