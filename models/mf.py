"""Two-tower matrix factorisation: a user is the mean of the embeddings of the items they had.

Item-based (FISM-style) rather than a table of user ids, so a user never seen in training is
served from their recent items, and the user vector lives where the worker's decayed interest
vector lives: a weighted sum of item embeddings.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from models.base import SequenceModel


class MatrixFactorization(SequenceModel):
    kind = "mf"

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) -> running mean of item embeddings (B, L, D)."""
        present = (history != self.pad).unsqueeze(-1).float()  # (B, L, 1)
        total = (self.items(history) * present).cumsum(dim=1)
        return total / present.cumsum(dim=1).clamp(min=1.0)

    def encode_user(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) -> (B, D), the mean after the newest item alone: serving asks only
        for that one, so the running sums of :meth:`encode` are skipped."""
        present = (history != self.pad).unsqueeze(-1).float()
        return (self.items(history) * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)


class InterestMF(SequenceModel):
    """The user is the worker's interest vector itself: the unit-norm sum of item embeddings,
    each halved after every ``half_life_events`` later items. Trained as it is served, so the
    streaming state needs no separate user encoder."""

    kind = "interest-mf"

    def __init__(self, n_items: int, dim: int, max_len: int, half_life_events: float = 2.0) -> None:
        super().__init__(n_items, dim, max_len)
        self.half_life_events = half_life_events
        age = torch.arange(max_len)[:, None] - torch.arange(max_len)[None, :]  # t - j
        decay = torch.where(age >= 0, 0.5 ** (age.clamp(min=0) / half_life_events), 0.0)
        self.register_buffer("decay", decay, persistent=False)  # (L, L), causal

    def init_args(self) -> dict[str, int | float]:
        return {**super().init_args(), "half_life_events": self.half_life_events}

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) -> unit-norm decayed sums (B, L, D)."""
        present = (history != self.pad).unsqueeze(-1).float()  # (B, L, 1)
        length = history.shape[1]
        decay = self.decay[-length:, -length:]  # (L, L)
        return F.normalize(decay @ (self.items(history) * present), dim=-1)
