"""Streaming baselines for the prequential evaluator: each learns one event at a time.

A baseline sees the stream as integer arrays (user, item, event time) and, before each event it
is tested on, ranks every item seen so far that the user has not consumed; then it learns the
event. Global state (counts, co-occurrences, factors) is updated after every event, so each
recommendation uses everything before it and nothing after.
"""

from __future__ import annotations

import math

import numpy as np

from models.stream import Stream


class StreamingPolicy:
    """Ranks ``scores(user, ts)`` over the items seen so far, minus the user's own items."""

    name = "policy"
    baseline = True  # a reference the product is measured against (models/prequential_report.py)
    train_seconds = 0.0  # learns as it goes: no model to train apart

    def __init__(self, n_users: int, n_items: int) -> None:
        self.n_items = n_items
        self.known = np.zeros(n_items, dtype=bool)
        self.seen: list[list[int]] = [[] for _ in range(n_users)]

    def scores(self, user: int, ts: int) -> np.ndarray:  # (N,) float, a fresh array
        raise NotImplementedError

    def learn(self, user: int, item: int, ts: int) -> None:
        raise NotImplementedError

    def announced(self, ts: int) -> np.ndarray | None:
        """(N,) bool: the items this policy may propose at ``ts`` though no event has had them
        yet (a catalog's); None when it knows only the items seen in the stream."""
        return None

    def run(self, stream: Stream, k: int) -> np.ndarray:
        """Test-then-learn over the stream; (tested events, k) item rows, -1 where none."""
        users, items, ts, tested = stream.users, stream.items, stream.ts, stream.tested
        out = np.full((int(tested.sum()), k), -1, dtype=np.int64)
        row = 0
        for n in range(len(users)):
            user, item, t = int(users[n]), int(items[n]), int(ts[n])
            if tested[n]:
                scores = self.scores(user, t)
                scores[~self.known] = -np.inf
                scores[self.seen[user]] = -np.inf
                out[row] = top_k(scores, k)
                row += 1
            self.learn(user, item, t)
            self.known[item] = True
            self.seen[user].append(item)
        return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best finite scores, best first (ties: lower index), -1 padded."""
    k_eff = min(k, len(scores))
    top = np.argpartition(-scores, k_eff - 1)[:k_eff]
    top = top[np.lexsort((top, -scores[top]))]
    top[~np.isfinite(scores[top])] = -1
    out = np.full(k, -1, dtype=np.int64)
    out[:k_eff] = top
    return out


class Popularity(StreamingPolicy):
    """Most consumed items so far; with a half-life, counts fade in event time (trending)."""

    def __init__(self, n_users: int, n_items: int, half_life_ms: float = math.inf) -> None:
        super().__init__(n_users, n_items)
        self.name = "popularity" if math.isinf(half_life_ms) else "trending popularity"
        self.half_life_ms = half_life_ms
        self.counts = np.zeros(n_items)
        self.ref_ts: int | None = None  # counts are scaled to this time: 2 ** ((t - ref) / h)

    def scores(self, user: int, ts: int) -> np.ndarray:
        return self.counts.copy()  # the scale is common to all items, so ranks are right

    def learn(self, user: int, item: int, ts: int) -> None:
        if math.isinf(self.half_life_ms):
            self.counts[item] += 1.0
            return
        if self.ref_ts is None:
            self.ref_ts = ts
        growth = (ts - self.ref_ts) / self.half_life_ms
        if growth > 60:  # keep 2 ** growth far from overflow: rescale to now
            self.counts *= 2.0**-growth
            self.ref_ts, growth = ts, 0.0
        self.counts[item] += 2.0**growth


class ItemKNN(StreamingPolicy):
    """Item co-occurrence within each user's last ``window`` items; a user's score for an item
    sums its co-occurrence with the user's last ``window`` items."""

    name = "item-kNN"

    def __init__(self, n_users: int, n_items: int, window: int = 20) -> None:
        super().__init__(n_users, n_items)
        self.window = window
        self.cooc = np.zeros((n_items, n_items), dtype=np.float32)  # (N, N)

    def scores(self, user: int, ts: int) -> np.ndarray:
        recent = self.seen[user][-self.window :]
        return self.cooc[recent].sum(axis=0, dtype=np.float64) if recent else np.zeros(self.n_items)

    def learn(self, user: int, item: int, ts: int) -> None:
        recent = [j for j in self.seen[user][-self.window :] if j != item]
        self.cooc[item, recent] += 1.0
        self.cooc[recent, item] += 1.0


class OnlineMF(StreamingPolicy):
    """ISGD (Vinagre et al. 2014): one SGD step per positive event towards ``<u, i> = 1``; items
    ranked by ``|1 - <u, i>|``, as in the paper."""

    name = "online MF (ISGD)"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 10,
        lr: float = 0.05,
        reg: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__(n_users, n_items)
        rng = np.random.default_rng(seed)
        self.users = rng.normal(0, 0.1, size=(n_users, dim))  # (U, D)
        self.items = rng.normal(0, 0.1, size=(n_items, dim))  # (N, D)
        self.lr, self.reg = lr, reg

    def scores(self, user: int, ts: int) -> np.ndarray:
        return -np.abs(1.0 - self.items @ self.users[user])

    def learn(self, user: int, item: int, ts: int) -> None:
        u, i = self.users[user], self.items[item]
        error = 1.0 - u @ i
        self.users[user] = u + self.lr * (error * i - self.reg * u)
        self.items[item] = i + self.lr * (error * u - self.reg * i)
