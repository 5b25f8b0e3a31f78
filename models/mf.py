"""Matrix factorisation trained with BPR: item embeddings in the space of the interest vector."""

from __future__ import annotations

import torch
from torch import nn


class MatrixFactorization(nn.Module):
    """Scores ``<p_u, q_i> + b_i``. Shapes: B batch, D dim; U users, N items."""

    kind = "mf"

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)  # (U, D)
        self.items = nn.Embedding(n_items, dim)  # (N, D)
        self.item_bias = nn.Embedding(n_items, 1)  # (N, 1)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """users (B,), items (B,) -> scores (B,)."""
        dot = (self.users(users) * self.items(items)).sum(-1)
        return dot + self.item_bias(items).squeeze(-1)

    def item_embeddings(self) -> torch.Tensor:
        """(N, D)"""
        return self.items.weight

    def item_biases(self) -> torch.Tensor:
        """(N,)"""
        return self.item_bias.weight.squeeze(-1)
