"""SASRec-style encoder: causal self-attention over the user's items (Kang & McAuley, 2018).

Pre-norm Transformer blocks with learned positional embeddings; padded positions are zeroed
after every block, as in the original, so they carry no signal forward.
"""

from __future__ import annotations

import torch
from torch import nn

from models.base import SequenceModel


class SASRec(SequenceModel):
    kind = "sasrec"

    def __init__(
        self,
        n_items: int,
        dim: int,
        max_len: int,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(n_items, dim, max_len)
        self.layers, self.heads, self.dropout_p = layers, heads, dropout
        self.positions = nn.Embedding(max_len, dim)  # (L, D)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        causal = torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)  # (L, L)

    def init_args(self) -> dict[str, int | float]:
        return {
            **super().init_args(),
            "layers": self.layers,
            "heads": self.heads,
            "dropout": self.dropout_p,
        }

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L <= max_len) -> (B, L, D)."""
        length = history.shape[1]
        present = (history != self.pad).unsqueeze(-1).float()  # (B, L, 1)
        x = self.items(history) * self.dim**0.5 + self.positions.weight[-length:]
        x = self.dropout(x) * present
        mask = self.causal[:length, :length]
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True) * present
        return self.norm(x)
