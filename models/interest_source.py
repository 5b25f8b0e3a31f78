"""The product's decayed interest vector as one candidate source of :mod:`models.source_ranker`.

The same state step as the worker (:func:`core.state_step.apply_user_events`) folds each event
into its user's vector, and the same model versions (:class:`models.product.ModelVersions`)
serve along the stream, rebased at each swap as a worker rebases a state it loads. The score of
an item is ``exp(w <normalised interest, item> + bias)`` with the blend's interest weight ``w``:
the model's own ranking (:meth:`models.scoring.Recommender.top_k` without the sequence model),
made positive so the ranker can take it relative to the source's best item, like the counting
sources.
"""

from __future__ import annotations

import numpy as np

from core.interest import InterestConfig, UserState, rebase
from core.state_step import apply_user_events
from models.baselines import StreamingPolicy
from models.blend import Blend
from models.product import ModelVersions
from models.stream import Stream


class InterestSource(StreamingPolicy):
    """Scores every stream item from the user's interest vector under the serving version;
    zero before the first version (the warm-up) and for items the version lacks."""

    name = "interest"
    baseline = False

    def __init__(
        self, stream: Stream, versions: ModelVersions, interest: InterestConfig, blend: Blend
    ) -> None:
        super().__init__(stream.n_users, len(stream.item_ids))
        self.stream, self.versions, self.interest = stream, versions, interest
        self.interest_weight = blend.interest_weight
        self.swaps = set(versions.starts)
        self.states: dict[int, UserState] = {}
        self.learned = 0  # events folded in so far: the next one is stream.events[learned]
        self.rec = None
        self.vectors = np.zeros((self.n_items, 1), dtype=np.float32)
        self.bias = np.zeros(self.n_items, dtype=np.float32)
        self.in_model = np.zeros(self.n_items, dtype=bool)
        self.swap_if_due()

    @property
    def train_seconds(self) -> float:
        return self.versions.train_seconds

    def swap_if_due(self) -> None:
        """Serve the version that starts at the next event, if one does."""
        if self.learned not in self.swaps:
            return
        rec = self.rec = self.versions.at(self.learned)
        rows = np.array([rec.index.get(i, -1) for i in self.stream.item_ids], dtype=np.int64)
        self.in_model = rows >= 0
        self.vectors = np.where(self.in_model[:, None], rec.vectors[rows.clip(0)], 0.0)
        self.bias = np.where(self.in_model, rec.bias.numpy()[rows.clip(0)], 0.0)
        self.states = {u: rebase(s, rec.item_vector, rec.dim) for u, s in self.states.items()}

    def scores(self, user: int, ts: int) -> np.ndarray:
        state = self.states.get(user)
        if self.rec is None or state is None or not self.in_model.any():
            return np.zeros(self.n_items)
        norm = float(np.linalg.norm(state.vector))
        query = state.vector / norm if norm > 0 else state.vector
        raw = self.vectors @ (self.interest_weight * query) + self.bias
        return np.where(self.in_model, np.exp(raw - raw[self.in_model].max()), 0.0)

    def learn(self, user: int, item: int, ts: int) -> None:
        """Fold the next stream event into its user's state: calls must come in stream order,
        one per event, as the ranker makes them."""
        n = self.learned
        if self.stream.users[n] != user or self.stream.items[n] != item:
            raise ValueError(f"event {n} of the stream is not ({user}, {item}): out of step")
        rec = self.rec
        state = self.states.get(user) or UserState.empty(rec.dim if rec else 1)
        event = self.stream.events[self.learned]
        self.states[user] = apply_user_events(
            state, [(event, (0, self.learned))],
            rec.item_vector if rec else _no_vector, self.interest,
        ).state  # fmt: skip
        self.learned += 1
        self.swap_if_due()


def _no_vector(item_id: str) -> None:
    return None
