"""The interface every model shares: encode a user's recent items, score the catalog.

Shapes: B users, L history length, D dim, N items. Histories are item indices left-padded with
``pad = N`` (see ``models.data``). ``encode`` returns a state per position, causally (position t
sees items <= t), which is what next-item training needs; serving uses the last position.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F


class SequenceModel(nn.Module):
    """Item embeddings (the space of the streaming interest vector) plus a user encoder."""

    kind: ClassVar[str]

    def __init__(self, n_items: int, dim: int, max_len: int) -> None:
        super().__init__()
        self.n_items, self.dim, self.max_len = n_items, dim, max_len
        self.pad = n_items
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=n_items)  # (N+1, D)
        self.item_bias = nn.Parameter(torch.zeros(n_items))  # (N,)
        nn.init.normal_(self.items.weight[:n_items], std=dim**-0.5)

    def init_args(self) -> dict[str, int | float]:
        """Constructor arguments, stored in the artifact's config."""
        return {"n_items": self.n_items, "dim": self.dim, "max_len": self.max_len}

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) -> user state after each position (B, L, D)."""
        raise NotImplementedError

    def item_embeddings(self) -> torch.Tensor:
        """(N, D)"""
        return self.items.weight[: self.n_items]

    def item_biases(self) -> torch.Tensor:
        """(N,)"""
        return self.item_bias

    def encode_user(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) -> (B, D), the state after the newest item."""
        return self.encode(history)[:, -1]

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """users (B, D) -> logits over the catalog (B, N)."""
        return users @ self.item_embeddings().T + self.item_biases()

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Full-softmax next-item cross entropy over positions with a target (not pad)."""
        mask = targets != self.pad
        states = self.encode(inputs)[mask]  # (M, D)
        return F.cross_entropy(self.score(states), targets[mask])
