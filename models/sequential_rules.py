"""Sequential rules (SR), streamed: what followed the user's newest item, and how closely.

After ``rn5l/session-rec`` ``algorithms/baselines/sr.py`` (Ludewig & Jannach 2018): every event
of a user adds a rule ``prev -> item`` from each of the user's ``steps`` previous items, weighted
by how many steps back ``prev`` is; a user is shown the ``pruning`` strongest rules out of their
newest item (session-rec prunes each item's rules to those once, after fitting; rules here keep
growing, so the pruning is applied when asked). The user's own stream stands in for a session.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from models.baselines import StreamingPolicy


class SequentialRules(StreamingPolicy):
    """``weighting='linear'``: a rule from ``i`` steps back weighs ``1 - 0.1 i`` (zero at ten,
    so ``steps=10`` reaches nine back, as in session-rec). State: the rules, at most one per
    pair of items, like item-kNN's co-occurrences."""

    name = "SR"

    def __init__(self, n_users: int, n_items: int, steps: int = 10, pruning: int = 20) -> None:
        super().__init__(n_users, n_items)
        if steps < 1 or pruning < 1:
            raise ValueError("steps and pruning must be positive")
        self.steps, self.pruning = steps, pruning
        self.rules: list[defaultdict[int, float]] = [defaultdict(float) for _ in range(n_items)]

    def scores(self, user: int, ts: int) -> np.ndarray:
        out = np.zeros(self.n_items)
        if not self.seen[user]:
            return out
        rules = self.rules[self.seen[user][-1]]
        if rules:
            targets = np.fromiter(rules.keys(), dtype=np.int64, count=len(rules))
            weights = np.fromiter(rules.values(), dtype=float, count=len(rules))
            keep = np.lexsort((targets, -weights))[: self.pruning]  # strongest; ties: lower index
            out[targets[keep]] = weights[keep]
        return out

    def learn(self, user: int, item: int, ts: int) -> None:
        """``seen`` grows after this call: it holds the user's previous items."""
        for back, prev in enumerate(reversed(self.seen[user][-self.steps :]), 1):
            self.rules[prev][item] += 1.0 - 0.1 * back
