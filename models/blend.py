"""How a recommender blends its scores: a plain dataclass, so settings can hold one without Torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Blend:
    """How the scores combine: weights of the two query parts, candidates the ranker sees, and
    how many recent items explain each recommendation. ``covisit_weight`` and ``rules_weight``
    above 0 fuse the model's list with the artifact's item neighbours (models/neighbours.py),
    the model's rank weighing 1; None takes the weights the artifact was fitted with
    (models/fusion_fit.py)."""

    interest_weight: float = 1.0
    sequence_weight: float = 1.0
    rerank_candidates: int = 50
    explain: int = 3
    covisit_weight: float | None = None
    rules_weight: float | None = None

    def fusion(self, fitted: tuple[float, float]) -> tuple[float, float]:
        """The neighbour weights to serve with, given those an artifact was fitted with."""
        return (fitted[0] if self.covisit_weight is None else self.covisit_weight,
                fitted[1] if self.rules_weight is None else self.rules_weight)  # fmt: skip
