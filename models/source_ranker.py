"""Candidates from several sources, ranked by a linear model that learns online, so that the
product is measured against the simple things with those things among its own signals.

Each cheap signal wins somewhere: co-occurrence and sequential rules on session logs, what is
trending where users have few events, the user's own interest where their history carries it. So
the product does not pick one: every source proposes its top ``per_source`` items, and a linear
ranker scores the union from each source's normalised score and rank, the item's age and
freshness. Its weights are crossed with how much history the user has (1, 2-4, 5-19, 20+
events), so a user with few events leans on the global signals by what the ranker learned, not
by a switch. After each event of a user with history is tested, the ranker takes a softmax step
towards its item among all the candidates (none when no source proposed the item, or the user
had it before), so each list uses everything before it and nothing after. Whether it matches the
best baseline on a log is measured, not guaranteed (docs/evaluation.md, "The source ranker").
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from models.baselines import StreamingPolicy, top_k
from models.prequential import BASELINES
from models.stream import Stream

DAY_MS = 86_400_000.0
HISTORY_BUCKETS = (1, 2, 5, 20)  # lower bounds of the user-history buckets the weights cross with
# the baselines (models/prequential.py BASELINES) that propose candidates, by default all of them
SOURCES = ("item-knn", "sr", "v-sknn", "stan", "popularity", "trending")


class SourceRanker(StreamingPolicy):
    """The union of each source's top ``per_source`` items, ranked by the online linear model.

    Features of an item, per source: its score over the source's best (0 when not positive),
    and ``1 / (1 + rank)`` within the source's top list (0 outside it); then the item's age and
    the time since its last event, as ``exp(-t / 1 day)``, and a bias. A user is ranked with a
    weight vector shared by all plus their history bucket's offset, both learned from each
    event, so a new log's first events teach every bucket; Adagrad steps keep a source's scale
    from setting its pace.
    """

    baseline = False  # the product's ranker, though its sources are baselines

    def __init__(
        self,
        n_users: int,
        n_items: int,
        sources: Sequence[str] = SOURCES,
        per_source: int = 50,
        learning_rate: float = 0.1,
        name: str | None = None,
        extras: Sequence[StreamingPolicy] = (),
        trending_half_life_ms: float = DAY_MS,
    ) -> None:
        """``extras``: more sources, built already (the product's interest vector,
        :class:`models.interest_source.InterestSource`; content neighbours,
        :class:`models.content_knn.ContentKNN`, whose catalog's items are candidates before
        their first event); they join after ``sources``, in order."""
        super().__init__(n_users, n_items)
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown or not (sources or extras):
            raise ValueError(f"unknown sources {unknown}; choose from {', '.join(SOURCES)}")
        self.sources = {s: BASELINES[s](n_users, n_items, trending_half_life_ms, 0)
                        for s in sources}  # fmt: skip
        self.sources.update((extra.name, extra) for extra in extras)
        self.name = name or "sources: " + " + ".join(self.sources)
        self.per_source, self.learning_rate = per_source, learning_rate
        self.first_ts = np.full(n_items, -1, dtype=np.int64)
        self.last_ts = np.full(n_items, -1, dtype=np.int64)
        n_features = 2 * len(self.sources) + 3
        # row 0: shared by every user, learning from every event; row 1 + b: bucket b's offset
        self.weights = np.zeros((1 + len(HISTORY_BUCKETS), n_features))
        self.weights[0, 0:-3:2] = 1.0  # start from the sum of the normalised source scores
        self.squared = np.full_like(self.weights, 1e-6)

    @property
    def train_seconds(self) -> float:
        return sum(source.train_seconds for source in self.sources.values())

    def bucket(self, user: int) -> int:
        """The row of the user's history bucket in ``weights`` (1 + the bucket's index; a user
        with no history is ranked as one with one event)."""
        return max(1, int(np.searchsorted(HISTORY_BUCKETS, len(self.seen[user]), side="right")))

    def effective(self, bucket: int) -> np.ndarray:
        """The weights a user of ``bucket`` is ranked with: the shared row plus its offset."""
        return self.weights[0] + self.weights[bucket]

    def features(self, user: int, ts: int) -> tuple[np.ndarray, np.ndarray]:
        """(candidates,) item indices and their (candidates, features) rows: every source's
        top list over the items the user may be shown."""
        allowed = self.known.copy()
        for source in self.sources.values():
            if (announced := source.announced(ts)) is not None:
                allowed |= announced
        allowed[self.seen[user]] = False
        columns, tops = [], []
        for source in self.sources.values():
            raw = np.where(allowed, source.scores(user, ts), -np.inf)
            top = top_k(raw, self.per_source)
            top = top[top >= 0]
            top = top[raw[top] > 0]
            best = raw[top[0]] if len(top) else 1.0
            columns.append((np.clip(raw, 0.0, None) / best, top))
            tops.append(top)
        candidates = np.unique(np.concatenate(tops)) if tops else np.zeros(0, dtype=np.int64)
        return candidates, self.feature_rows(candidates, columns, ts)

    def feature_rows(self, items: np.ndarray, columns: list, ts: int) -> np.ndarray:
        out = np.zeros((len(items), self.weights.shape[1]))
        for n, (normalised, top) in enumerate(columns):
            out[:, 2 * n] = np.nan_to_num(normalised[items], posinf=0.0, neginf=0.0)
            rank = np.full(self.n_items, np.inf)
            rank[top] = np.arange(len(top))
            out[:, 2 * n + 1] = 1.0 / (1.0 + rank[items])
        out[:, -3] = np.exp(-(ts - self.first_ts[items]) / DAY_MS)
        out[:, -2] = np.exp(-(ts - self.last_ts[items]) / DAY_MS)
        out[:, -1] = 1.0
        return out

    def run(self, stream: Stream, k: int) -> np.ndarray:
        """Test-then-learn: the ranker also learns from untested events of users with history
        (the warm-up), as it would have lived through them."""
        users, items, ts, tested = stream.users, stream.items, stream.ts, stream.tested
        out = np.full((int(tested.sum()), k), -1, dtype=np.int64)
        row = 0
        for n in range(len(users)):
            user, item, t = int(users[n]), int(items[n]), int(ts[n])
            if self.seen[user]:
                candidates, rows = self.features(user, t)
                bucket = self.bucket(user)
                if tested[n]:
                    order = np.lexsort((candidates, -(rows @ self.effective(bucket))))
                    shown = candidates[order[:k]]
                    out[row, : len(shown)] = shown
                    row += 1
                if item not in self.seen[user]:  # a step only if some source proposed it
                    self.step(bucket, candidates, rows, item)
            self.learn(user, item, t)
            self.known[item] = True
            self.seen[user].append(item)
        return out

    def step(self, bucket: int, candidates: np.ndarray, rows: np.ndarray, item: int) -> None:
        """One Adagrad step of the softmax loss towards ``item`` among the candidates; none
        when no source proposed it (no weight could have ranked it)."""
        at = np.searchsorted(candidates, item)
        if at == len(candidates) or candidates[at] != item:
            return  # no source proposed it: no weight can rank it higher
        logits = rows @ self.effective(bucket)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        gradient = rows[at] - p @ rows
        for row in (0, bucket):  # the same gradient reaches the shared row and the offset
            self.squared[row] += gradient**2
            self.weights[row] += self.learning_rate * gradient / np.sqrt(self.squared[row])

    def learn(self, user: int, item: int, ts: int) -> None:
        for source in self.sources.values():
            source.learn(user, item, ts)
            source.known[item] = True
            source.seen[user].append(item)
        if self.first_ts[item] < 0:
            self.first_ts[item] = ts
        self.last_ts[item] = ts

    def scores(self, user: int, ts: int) -> np.ndarray:
        candidates, rows = self.features(user, ts)
        out = np.full(self.n_items, -math.inf)
        out[candidates] = rows @ self.effective(self.bucket(user))
        return out
