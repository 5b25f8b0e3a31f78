"""What a worker knows of every item's statistics, as arrays over the serving catalog: the
impressions and positives behind the exploring policies' Beta posteriors, and the decayed
popularity behind the trending fallback for users with no history.

The item paths keep the statistics partitioned by item (core/item_stats.py); every worker
follows all of them (streams/worker/followers.py) and lays what it read here between
micro-batches. A snapshot may be a little behind the events: the item path counts an event after
the user's batch sent it on, so the statistics are eventually consistent, never ahead.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from core.item_stats import ItemStats, beta_posterior


FIELDS = ("impressions", "positives", "popularity", "last_ts")


Row = tuple[int, int, float, int]  # an item's FIELDS: what the board keeps of its statistics


def _write(arrays: dict[str, np.ndarray], row: int, values: Row) -> None:
    for name, value in zip(FIELDS, values):
        arrays[name][row] = value


class ItemBoard:
    """Every item's newest statistics, by id; arrays for a catalog built when first asked and
    kept up to date after."""

    def __init__(self, half_life_ms: float) -> None:
        self.half_life_ms = half_life_ms
        self.stats: dict[str, Row] = {}  # the numbers only: not the ids and offsets it keeps
        self._arrays: tuple[Sequence[str], dict[str, np.ndarray]] | None = None
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.stats)

    def update(self, stats: Mapping[str, ItemStats | Row]) -> None:
        """Take newer statistics (what the follower read since its last hand-over: each item's
        :class:`ItemStats`, or just its counts, :data:`Row`); the arrays of the catalog in use
        are updated in place, row by row."""
        rows = {item: one if isinstance(one, tuple) else
                (one.impressions, one.positives, one.popularity, one.last_ts)
                for item, one in stats.items()}  # fmt: skip
        self.stats.update(rows)
        if self._arrays is not None:
            arrays = self._arrays[1]
            for item, values in rows.items():
                row = self._index.get(item)
                if row is not None:
                    _write(arrays, row, values)

    def arrays(self, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """``impressions``, ``positives``, ``popularity`` and ``last_ts`` (N,) for the catalog
        ``item_ids`` (an item without statistics: zeros), built once per catalog."""
        if self._arrays is None or self._arrays[0] is not item_ids:
            out = {name: np.zeros(len(item_ids)) for name in FIELDS}
            self._index = {item: row for row, item in enumerate(item_ids)}
            for item, one in self.stats.items():
                row = self._index.get(item)
                if row is not None:
                    _write(out, row, one)
            self._arrays = (item_ids, out)
        return self._arrays[1]

    def posteriors(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each catalog item's Beta(alpha, beta) and impressions (N,), as ItemStats defines them."""
        arrays = self.arrays(item_ids)
        shown, chosen = arrays["impressions"], arrays["positives"]
        return (*beta_posterior(shown, chosen), shown)

    def trending(self, item_ids: Sequence[str], ts: float, k: int,
                 exclude: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The ``k`` items of highest popularity decayed to event time ``ts`` (only items with
        some), but ``exclude``: catalog indices (k,), -1 padded, and their decayed popularity."""
        arrays = self.arrays(item_ids)
        age = np.maximum(0.0, ts - arrays["last_ts"])
        score = arrays["popularity"] * np.exp2(-age / self.half_life_ms)
        score[list(exclude)] = 0.0
        order = np.argsort(-score, kind="stable")[:k]
        order = order[score[order] > 0]
        indices = np.full(k, -1, dtype=np.int64)
        values = np.zeros(k, dtype=np.float32)
        indices[: len(order)], values[: len(order)] = order, score[order]
        return indices, values
