"""Online item learning: each positive event moves its item's vector, so a new item is
recommendable from its first engagements instead of at the next retrain.

The step is BPR's on the one item engaged. For the engaging user's unit interest ``u`` (the
worker's decayed interest vector after the micro-batch, where scoring puts its query), the
engaged item's vector ``v`` and ``S`` sampled catalog items ``n_j``::

    g = mean_j (1 - sigmoid(<u, v> - <u, n_j>))       # how far v still ranks below them
    v <- clip(v + rate_t * g * u, max_norm)            # rate_t = rate / sqrt(1 + t / t0)

Only the engaged item moves: the negatives live in other partitions of the item path and their
own positives move them. ``t`` counts the item's updates; a catalog item starts at ``t0 = prior``
(its vector was trained on that much evidence already) and a new item at 0 from the zero
vector, so it moves fast at first and settles. The norm never exceeds the catalog's largest
(``max_norm``), which bounds how far any run of updates can push an item past the ones the
model trained. Negatives are drawn from a generator seeded by the event's position, so a replay
draws the same ones: the same events give the same vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, NamedTuple

import numpy as np


@dataclass(frozen=True)
class ItemLearning:
    """How items learn online; see the module docstring for the step."""

    rate: float = 1.0
    negatives: int = 8
    prior_updates: float = 50.0  # a catalog item's vector counts as this many updates already
    settle_updates: float = 4.0  # t0: the rate halves by t = 3 t0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"the item learning rate must be positive, got {self.rate}")
        if self.negatives < 1:
            raise ValueError(f"at least one negative is needed, got {self.negatives}")
        if not (self.prior_updates >= 0 and self.settle_updates > 0):
            raise ValueError("prior_updates must be >= 0 and settle_updates > 0")

    def rate_at(self, updates: int, known: bool) -> float:
        t = updates + (self.prior_updates if known else 0.0)
        return self.rate / math.sqrt(1.0 + t / self.settle_updates)


_M64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def negatives_for(position: tuple[int, int], n_items: int, count: int) -> np.ndarray:
    """``count`` catalog indices drawn for the event at ``position``, the same every time: the
    splitmix64 finaliser over (position, j), in plain integers (building a seeded numpy Generator
    per event costs far more than these few integer operations)."""
    partition, offset = position
    seed = ((partition & 0xFFFFFF) << 40 ^ offset) & _M64
    out = []
    for j in range(1, count + 1):
        x = (seed + _GOLDEN * j) & _M64
        x = ((x ^ (x >> 30)) * _MIX1) & _M64
        x = ((x ^ (x >> 27)) * _MIX2) & _M64
        out.append((x ^ (x >> 31)) % n_items)
    return np.array(out, dtype=np.intp)


def item_step(
    vector: np.ndarray,
    user: np.ndarray,
    negatives: np.ndarray,
    rate: float,
    max_norm: float,
) -> np.ndarray:
    """One BPR step of the engaged item's ``vector`` (D,) toward the unit ``user`` (D,) against
    ``negatives`` (S, D); returns the new float32 vector. A user vector that is zero or not
    finite changes nothing (it says nothing about the item). ``1 - sigmoid(m)`` is computed as
    ``(1 - tanh(m / 2)) / 2``, which no margin overflows."""
    norm = math.sqrt(float(user @ user))
    if not (norm > 0 and math.isfinite(norm)):
        return vector.astype(np.float32, copy=True)
    u = (user / norm).astype(np.float32, copy=False)
    margins = (float(u @ vector) - negatives @ u).tolist()  # (S,)
    pull = 0.5 - 0.5 * sum(math.tanh(0.5 * m) for m in margins) / len(margins)
    moved = (vector + np.float32(rate * pull) * u).astype(np.float32, copy=False)
    length = math.sqrt(float(moved @ moved))
    if length > max_norm:
        moved *= np.float32(max_norm / length)
    return moved


class Learned(NamedTuple):
    """An item vector learned online: the model version (tag) whose space it is in, the steps
    that made it, the vector, and when its newest step was sent (wall-clock ms, the record's
    timestamp; 0: not known)."""

    model: int
    updates: int
    vector: np.ndarray
    sent_ms: int = 0


def fits(item_id: str, learned: Learned, index: Collection[str], dim: int, tag: int,
         lineage: Collection[int]) -> bool:  # fmt: skip
    """Whether a model (its catalog ``index``, ``dim`` and ``tag``) scores with ``learned``: a
    catalog item's vector only in that model's own space (the model was trained on the events
    that made it), a new item's also in an ancestor's (``lineage``: the versions it was warm-
    started from, which share its space closely enough to continue)."""
    if learned.vector.shape != (dim,):
        return False
    return learned.model == tag if item_id in index else (learned.model == tag
                                                           or learned.model in lineage)


class OnlineItems:
    """The item path's learner for one serving model: where an item's vector starts and how
    its engagements move it. The worker's item path and the evaluator both call :meth:`learn`:
    the same rule, fed by a worker with the float16 unit interest after the user's micro-batch
    and by the evaluator with the interest right after the event (one event per batch).

    ``catalog`` (N, D) is the artifact's item vectors and ``index`` its ids; ``tag`` is the
    model version's tag (core.interest.version_tag) and ``lineage`` the tags of the versions it
    was warm-started from. A stored vector is continued if :func:`fits` says so; else a catalog
    item starts again from the artifact's vector and a new one from zero.
    """

    def __init__(self, catalog: np.ndarray, index: dict[str, int], tag: int,
                 config: ItemLearning = ItemLearning(),
                 lineage: Collection[int] = ()) -> None:  # fmt: skip
        self.catalog = np.ascontiguousarray(catalog, dtype=np.float32)
        self.index = index
        self.tag = tag
        self.lineage = frozenset(lineage)
        self.config = config
        norms = np.linalg.norm(self.catalog, axis=1)
        self.max_norm = float(norms.max()) if len(norms) else 1.0
        self.dim = self.catalog.shape[1]

    def start(self, item_id: str, vector: bytes, model: int, updates: int) -> tuple[np.ndarray, int]:
        """The vector the item's next step starts from, and its updates so far."""
        known = self.index.get(item_id)
        stored = np.frombuffer(vector, dtype="<f4") if len(vector) % 4 == 0 else np.empty(0)
        if fits(item_id, Learned(model, updates, stored), self.index, self.dim, self.tag,
                self.lineage) and math.isfinite(float(stored @ stored)):  # fmt: skip
            return stored.astype(np.float32), updates
        if known is not None:
            return self.catalog[known].copy(), 0
        return np.zeros(self.dim, dtype=np.float32), 0

    def learn(
        self,
        item_id: str,
        start: tuple[np.ndarray, int],
        engagements: list[tuple[tuple[int, int], np.ndarray]],
    ) -> tuple[np.ndarray, int]:
        """``start`` moved by each ``(position, user interest)`` in order: (vector, updates)."""
        vector, updates = start
        known = item_id in self.index
        n = len(self.catalog)
        for position, user in engagements:
            negatives = self.catalog[negatives_for(position, n, self.config.negatives)]
            vector = item_step(vector, user, negatives, self.config.rate_at(updates, known),
                               self.max_norm)  # fmt: skip
            updates += 1
        return vector, updates
