"""GRU4Rec-style sequence encoder: a GRU over the user's items, its output tied to item space."""

from __future__ import annotations

import torch
from torch import nn

from models.base import SequenceModel


class GRU4Rec(SequenceModel):
    kind = "gru"

    def __init__(
        self, n_items: int, dim: int, max_len: int, hidden: int = 128, dropout: float = 0.3
    ) -> None:
        super().__init__(n_items, dim, max_len)
        self.hidden, self.dropout_p = hidden, dropout
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, dim)  # hidden state -> item space

    def init_args(self) -> dict[str, int | float]:
        return {**super().init_args(), "hidden": self.hidden, "dropout": self.dropout_p}

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) -> (B, L, D)."""
        states, _ = self.gru(self.dropout(self.items(history)))  # (B, L, H)
        return self.out(states)
