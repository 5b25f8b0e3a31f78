"""How a recommender blends its scores: a plain dataclass, so settings can hold one without Torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Blend:
    """How the scores combine: weights of the two query parts, candidates the ranker sees, and
    how many recent items explain each recommendation. ``covisit_weight``, ``rules_weight``,
    ``content_weight`` and ``sessions_weight`` above 0 fuse the model's list with the artifact's item neighbours
    (models/neighbours.py), the model's rank weighing 1; None takes the weights the artifact was
    fitted with (models/fusion_fit.py)."""

    interest_weight: float = 1.0
    sequence_weight: float = 1.0
    rerank_candidates: int = 50
    explain: int = 3
    covisit_weight: float | None = None
    rules_weight: float | None = None
    content_weight: float | None = None
    sessions_weight: float | None = None

    def fusion(self, fitted: tuple[float, ...]) -> tuple[float, ...]:
        """The neighbour weights to serve with (co-visits, rules, content, sessions: the
        order of models/neighbours.py ``KINDS``), given those an artifact was fitted with."""
        mine = (self.covisit_weight, self.rules_weight, self.content_weight, self.sessions_weight)
        return tuple(f if m is None else m for f, m in zip(fitted, mine))  # type: ignore
