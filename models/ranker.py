"""Re-rank the top candidates with a small MLP on top of the retrieval score ``s``:
``f(x) = s + W . relu(A x + b)``, W starting at zero.

Starting from the retrieval order and learning only a correction keeps a ranker trained on one
held-out item per user (a few thousand examples) from ranking worse than retrieval did.

x for user u and candidate item i (D dim)::

    [ v/|v| * e_i  (D),  s_u * e_i  (D),  <v/|v|, e_i>,  <s_u, e_i> + b_i,  log1p(pop_i),
      log1p(recent pop_i) ]

v is the decayed interest vector, s_u the sequence encoder's state, pop_i the item's training
interactions and recent pop_i those in the last tenth of the training time span. It is trained
listwise (softmax over the candidates) on held-out next items the base model never trained on.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

RANKER_FILE = "ranker.pt"


class Ranker(nn.Module):
    """Shapes: B users, C candidates, D dim, N items, H hidden."""

    def __init__(self, n_items: int, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.n_items, self.dim, self.hidden_size = n_items, dim, hidden
        self.register_buffer("item_features", torch.zeros(n_items, 2))  # (N, 2)
        self.hidden = nn.Linear(2 * dim + 4, hidden)  # A, b
        self.out = nn.Linear(hidden, 1, bias=False)  # W
        nn.init.zeros_(self.out.weight)

    def init_args(self) -> dict[str, int]:
        return {"n_items": self.n_items, "dim": self.dim, "hidden": self.hidden_size}

    def with_new_items(self, count: int) -> Ranker:
        """This ranker, sharing its layers, over ``count`` more items appended to the catalog
        (learned online, models/item_learning.py): no training popularity for them."""
        grown = Ranker.__new__(Ranker)
        nn.Module.__init__(grown)
        grown.n_items, grown.dim, grown.hidden_size = self.n_items + count, self.dim, self.hidden_size
        grown.register_buffer("item_features", torch.cat(
            [self.item_features, self.item_features.new_zeros(count, 2)]))
        grown.hidden, grown.out = self.hidden, self.out
        return grown.eval()

    def forward(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """x (B, C, 2D + 4), retrieval scores base (B, C) -> scores (B, C)."""
        return base + self.out(F.relu(self.hidden(x))).squeeze(-1)

    def features(
        self,
        interest: torch.Tensor,
        user: torch.Tensor,
        items: torch.Tensor,
        bias: torch.Tensor,
        candidates: torch.Tensor,
    ) -> torch.Tensor:
        """interest (B, D) normalised, user (B, D), items (N, D), bias (N,), candidates (B, C)
        -> x (B, C, 2D + 4)."""
        cand = candidates.clamp(min=0)
        e = items[cand]  # (B, C, D)
        v_e = interest[:, None, :] * e
        s_e = user[:, None, :] * e
        return torch.cat(
            [
                v_e,
                s_e,
                v_e.sum(-1, keepdim=True),
                s_e.sum(-1, keepdim=True) + bias[cand][..., None],
                self.item_features[cand],
            ],
            dim=-1,
        )

    def scores(
        self,
        interest: torch.Tensor,
        user: torch.Tensor,
        items: torch.Tensor,
        bias: torch.Tensor,
        base: torch.Tensor,
        candidates: torch.Tensor,
    ) -> torch.Tensor:
        """``forward(features(...), base)`` without the (B, C, 2D + 4) features: the first
        layer's weights split by feature block fold the elementwise products into one (H, D)
        matrix per user, ``A1 (v * e) + A2 (s * e) + a3 <v, e> + a4 <s, e> =
        ((A1 + a3) diag v + (A2 + a4) diag s) e``, so one batched product scores every
        candidate, at half the multiply-adds and none of the copying (the serving path; the
        features are what training reads)."""
        d = self.dim
        weight = self.hidden.weight  # (H, 2D + 4)
        on_interest = weight[:, :d] + weight[:, 2 * d, None]  # (H, D)
        on_user = weight[:, d : 2 * d] + weight[:, 2 * d + 1, None]
        per_user = on_interest * interest[:, None, :] + on_user * user[:, None, :]  # (B, H, D)
        cand = candidates.clamp(min=0)
        hidden = torch.baddbmm(
            torch.addmm(self.hidden.bias, self.item_features[cand].flatten(0, 1),
                        weight[:, 2 * d + 2 :].T).view(*cand.shape, -1)
            + bias[cand][..., None] * weight[:, 2 * d + 1],
            items[cand],
            per_user.transpose(1, 2),
        )  # (B, C, H)
        return base + self.out(F.relu(hidden)).squeeze(-1)

    def rerank(
        self,
        interest: torch.Tensor,
        user: torch.Tensor,
        items: torch.Tensor,
        bias: torch.Tensor,
        scores: torch.Tensor,
        candidates: torch.Tensor,
        k: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k of the candidates by ranker score; empty slots (index -1) stay last."""
        ranked = self.scores(interest, user, items, bias, scores.masked_fill(candidates < 0, 0.0),
                             candidates).masked_fill(candidates < 0, float("-inf"))  # fmt: skip
        values, order = torch.topk(ranked, min(k, ranked.shape[1]), dim=1)
        return values, candidates.gather(1, order)
