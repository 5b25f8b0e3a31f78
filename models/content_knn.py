"""Content neighbours: the items whose text is most like what the user engaged with last, with
no interaction of any item used. The content-only reference of the evaluation (``streamrec
evaluate --policy content-knn --catalog FILE``), and the one policy that can recommend an item
before its first event.

An item is a candidate once the catalog has announced it: from its ``ts`` (when it appeared) on,
or from the start when the catalog gives none; an item the catalog lacks is never one. A user's
score for an item is its cosine similarity to each of the user's ``last`` items, weighted by
recency (the newest counts most, each older one ``decay`` times less).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from core.items import Item
from models.baselines import StreamingPolicy, top_k
from models.stream import Stream


class ContentKNN(StreamingPolicy):
    """``content`` (N, C): unit content vectors of the stream's items, row n for item n (zero
    for an item the catalog lacks); ``announced`` (N,) ms: when each becomes a candidate."""

    name = "content-knn"

    def __init__(self, n_users: int, content: np.ndarray, announced: np.ndarray,
                 last: int = 5, decay: float = 0.7) -> None:  # fmt: skip
        super().__init__(n_users, len(content))
        self.content = np.asarray(content, np.float32)
        self.announced_ts = np.asarray(announced, np.int64)
        self.in_catalog = np.abs(self.content).sum(axis=1) > 0
        self.weights = decay ** np.arange(last)[::-1]  # oldest first, as seen[] is ordered

    def scores(self, user: int, ts: int) -> np.ndarray:
        recent = self.seen[user][-len(self.weights):]
        if not recent:
            return np.zeros(self.n_items)
        weights = self.weights[-len(recent):]
        return (self.content @ (weights @ self.content[recent])).astype(np.float64)

    def learn(self, user: int, item: int, ts: int) -> None:
        """Nothing to learn: the content is fixed, and the base class keeps each user's items."""

    def announced(self, ts: int) -> np.ndarray:
        """The catalog's items announced by ``ts``, seen in the stream or not."""
        return self.in_catalog & (self.announced_ts <= ts)

    def run(self, stream: Stream, k: int) -> np.ndarray:
        """As every streaming policy, but the candidates are the catalog's announced items,
        seen in the stream or not."""
        out = np.full((int(stream.tested.sum()), k), -1, dtype=np.int64)
        row = 0
        for n in range(len(stream.users)):
            user, item, t = int(stream.users[n]), int(stream.items[n]), int(stream.ts[n])
            if stream.tested[n]:
                scores = self.scores(user, t)
                scores[~self.announced(t)] = -np.inf
                scores[self.seen[user]] = -np.inf
                out[row] = top_k(scores, k)
                row += 1
            self.seen[user].append(item)
        return out


def catalog_content(stream: Stream, items: Sequence[Item], vectors: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The stream's rows of the catalog's content ``vectors`` (row n for ``items[n]``) and
    each item's announcement time (its ``ts``, or the stream's start when it has none)."""
    row = {item.item_id: n for n, item in enumerate(items)}
    content = np.zeros((len(stream.item_ids), vectors.shape[1]), np.float32)
    announced = np.full(len(stream.item_ids), np.iinfo(np.int64).max, np.int64)
    for n, item_id in enumerate(stream.item_ids):
        if item_id in row:
            item = items[row[item_id]]
            content[n] = vectors[row[item_id]]
            announced[n] = item.ts if item.ts is not None else np.iinfo(np.int64).min
    return content, announced
