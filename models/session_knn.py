"""Session-based nearest neighbours, streamed: V-SKNN and STAN over each user's recent items.

The session-based literature's strongest cheap baselines (Ludewig & Jannach 2018; Ludewig, Mauro,
Latifi & Jannach 2021), after ``rn5l/session-rec`` ``algorithms/knn/vsknn.py`` and ``stan.py``.
There a session is a visit; here a user's last ``window`` items stand in for it, both as the
session being predicted and as each neighbour, and the neighbour index follows every event
(session-rec's ``extend``), so the state is bounded by users x ``window``.

Both policies: the candidate neighbours are the other users whose window shares an item with the
asking user's, the ``sample_size`` most recently active of them (session-rec's ``recent``
sampling); the ``k`` most similar score every item of their window.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from models.baselines import StreamingPolicy


class SessionIndex(StreamingPolicy):
    """Each user's last ``window`` items (in order), and which users hold each item in theirs."""

    def __init__(self, n_users: int, n_items: int, window: int, k: int, sample_size: int) -> None:
        super().__init__(n_users, n_items)
        if min(window, k, sample_size) < 1:
            raise ValueError("window, k and sample_size must be positive")
        self.n_users, self.window, self.k, self.sample_size = n_users, window, k, sample_size
        self.holders: list[set[int]] = [set() for _ in range(n_items)]
        self.last_ts = np.zeros(n_users, dtype=np.int64)
        self.item_events = np.zeros(n_items)  # for V-SKNN's idf
        self.active = np.zeros(n_users, dtype=bool)
        self.distinct = np.zeros(n_users)  # distinct items in each user's window
        # each user's window as a row, oldest first, -1 padded; and which of its slots hold
        # the newest occurrence of their item (the neighbour's item set, one slot per item)
        self.rows = np.full((n_users, window), -1, dtype=np.int32)
        self.newest = np.zeros((n_users, window), dtype=bool)

    def session(self, user: int) -> list[int]:
        return self.seen[user][-self.window :]

    def learn(self, user: int, item: int, ts: int) -> None:
        """Slide the user's window by ``item`` (``seen`` grows after this call)."""
        before = self.session(user)
        after = before[1:] + [item] if len(before) == self.window else before + [item]
        if len(before) == self.window and before[0] not in after:
            self.holders[before[0]].discard(user)
        self.holders[item].add(user)
        self.distinct[user] = len(set(after))
        self.rows[user, : len(after)] = after
        self.newest[user] = False
        self.newest[user, [len(after) - 1 - after[::-1].index(i) for i in set(after)]] = True
        self.last_ts[user] = ts
        self.item_events[item] += 1.0
        self.active[user] = True

    def neighbours(self, user: int, weight: dict[int, float]) -> tuple[np.ndarray, ...]:
        """For the asking session's items and position weights: the candidates (other users
        sharing an item, at most ``sample_size``, the most recently active first; ties: lower
        index), the summed weight of the items each shares, and ``step``: how far back from the
        session's newest item the newest one it shares is (1 = the newest)."""
        overlap, step = np.zeros(self.n_users), np.zeros(self.n_users, dtype=np.int64)
        for back, item in enumerate(reversed(weight), 1):  # dict order: oldest to newest
            holders = np.fromiter(self.holders[item], dtype=np.int64)
            overlap[holders] += weight[item]
            step[holders] = np.where(step[holders] == 0, back, step[holders])
        step[user] = 0
        users = np.flatnonzero(step)
        users = users[np.argsort(-self.last_ts[users], kind="stable")[: self.sample_size]]
        return users, overlap[users], step[users]

    def nearest(self, users: np.ndarray, similarity: np.ndarray) -> np.ndarray:
        """Positions in ``users`` of the ``k`` most similar above zero (ties: lower index)."""
        order = np.lexsort((users, -similarity))[: self.k]
        return order[similarity[order] > 0]


class VSKNN(SessionIndex):
    """V-SKNN: a neighbour's similarity sums the asking session's position weights over the
    items they share, over its distinct items (session-rec's ``vec``); each item of the ``k``
    nearest gains that similarity, times ``1 + idf * idf_weighting`` and ``1 / step``, where
    ``step`` counts back from the asking session's newest item to the newest one the neighbour
    also holds (``weighting_score='div'``).

    Position weights are ``linear``: 1 for the newest item, 0.1 less for each one before, zero
    from the tenth back. (session-rec's ``linear`` tests the position from the *start*, ``i <=
    10``, which zeroes the newest items of a session longer than ten; its intent is kept here.)
    ``idf`` is ``log(users so far / the item's events so far)``, session-rec's per-session idf
    with users for sessions; ``idf_weighting=10`` is its tuned configurations' usual value."""

    name = "V-SKNN"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        k: int = 100,
        sample_size: int = 500,
        window: int = 20,
        idf_weighting: float = 10.0,
    ) -> None:
        super().__init__(n_users, n_items, window, k, sample_size)
        self.idf_weighting = idf_weighting

    def scores(self, user: int, ts: int) -> np.ndarray:
        out = np.zeros(self.n_items)
        weight = position_weights(self.session(user), lambda back: max(0.0, 1.0 - 0.1 * back))
        users, overlap, step = self.neighbours(user, weight)
        similarity = overlap / len(weight)
        idf = np.log(max(self.active.sum(), 1) / np.maximum(self.item_events, 1.0))
        near = self.nearest(users, similarity)
        held = self.newest[users[near]]  # (k, window): each neighbour's distinct items
        items = self.rows[users[near]][held]
        per_neighbour = held.sum(axis=1)
        gain = np.repeat(similarity[near], per_neighbour) * (1.0 + idf[items] * self.idf_weighting)
        out += np.bincount(items, gain / np.repeat(step[near], per_neighbour), self.n_items)
        return out


class STAN(SessionIndex):
    """STAN (Garg et al. 2019): V-SKNN's neighbours with three exponential decays.

    The asking session's item at position p of L weighs ``exp((p - L) / lambda_spw)``; a
    neighbour's similarity is the cosine of the weighted session with its item set, times
    ``exp(-(now - its last event) / lambda_snh)``; each of its items gains that times
    ``exp(-|pos(item) - pos(i*)| / lambda_inh)``, positions within the neighbour's window, i* its
    newest item the asking session shares. The lambdas are session-rec's defaults
    (``lambda_snh`` there in days); ``k`` has no default there, 100 is V-SKNN's.
    """

    name = "STAN"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        k: int = 100,
        sample_size: int = 5000,
        window: int = 20,
        lambda_spw: float = 1.02,
        lambda_snh_days: float = 5.0,
        lambda_inh: float = 2.05,
    ) -> None:
        super().__init__(n_users, n_items, window, k, sample_size)
        self.lambda_spw, self.lambda_inh = lambda_spw, lambda_inh
        self.lambda_snh_ms = lambda_snh_days * 86_400_000.0

    def scores(self, user: int, ts: int) -> np.ndarray:
        out = np.zeros(self.n_items)
        weight = position_weights(self.session(user), lambda back: math.exp(-back / self.lambda_spw))
        norm = math.sqrt(sum(w * w for w in weight.values()))
        users, overlap, _ = self.neighbours(user, weight)
        recency = np.exp(-(ts - self.last_ts[users]) / self.lambda_snh_ms)
        similarity = overlap / (norm * np.sqrt(self.distinct[users])) * recency
        near = self.nearest(users, similarity)
        rows, held = self.rows[users[near]], self.newest[users[near]]  # (k, window)
        position = np.arange(1, self.window + 1)
        shared = np.isin(rows, np.fromiter(weight, dtype=np.int64)) & (rows >= 0)
        star = (position * shared).max(axis=1)  # the newest position of a shared item
        gaps = np.abs(position - star[:, None]).astype(float)
        gain = similarity[near][:, None] * np.exp(-gaps / self.lambda_inh)
        out += np.bincount(rows[held], gain[held], self.n_items)
        return out


def position_weights(session: list[int], decay: Callable[[int], float]) -> dict[int, float]:
    """Each distinct item of ``session`` weighed by ``decay(steps back)`` at its newest
    position (0 = the newest item), in the order of those positions, oldest first."""
    weight: dict[int, float] = {}
    for back, item in zip(range(len(session) - 1, -1, -1), session):
        weight.pop(item, None)
        weight[item] = decay(back)
    return weight
