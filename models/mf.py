"""Two-tower matrix factorisation: a user is the mean of the embeddings of the items they had.

Item-based (FISM-style) rather than a table of user ids, so a user never seen in training is
served from their recent items, and the user vector lives where the worker's decayed interest
vector lives: a weighted sum of item embeddings.
"""

from __future__ import annotations

import torch

from models.base import SequenceModel


class MatrixFactorization(SequenceModel):
    kind = "mf"

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) -> running mean of item embeddings (B, L, D)."""
        present = (history != self.pad).unsqueeze(-1).float()  # (B, L, 1)
        total = (self.items(history) * present).cumsum(dim=1)
        return total / present.cumsum(dim=1).clamp(min=1.0)
