"""How a recommender blends its scores: a plain dataclass, so settings can hold one without Torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Blend:
    """How the scores combine: weights of the two query parts, candidates the ranker sees, and
    how many recent items explain each recommendation."""

    interest_weight: float = 1.0
    sequence_weight: float = 1.0
    rerank_candidates: int = 50
    explain: int = 3
