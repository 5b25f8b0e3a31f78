"""Score decayed interest vectors against the catalog, one matrix product per micro-batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class InterestScorer(nn.Module):
    """score(v, i) = <v / |v|, e_i> + b_i. Shapes: B users, D dim, N items."""

    def __init__(self, item_embeddings: torch.Tensor, item_bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("items", item_embeddings.detach().float().contiguous())  # (N, D)
        self.register_buffer("bias", item_bias.detach().float().contiguous())  # (N,)

    def forward(self, interest: torch.Tensor) -> torch.Tensor:
        """interest (B, D) -> scores (B, N)."""
        return F.normalize(interest, dim=-1) @ self.items.T + self.bias


@dataclass(frozen=True)
class Recommendation:
    item_ids: list[str]
    scores: list[float]


class Recommender:
    """The catalog plus its scorer: what a worker needs from a model artifact."""

    def __init__(self, item_ids: Sequence[str], scorer: InterestScorer, version: str) -> None:
        self.item_ids = list(item_ids)
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        self.scorer = scorer.eval()
        self.version = version
        # numpy view of the embeddings for the per-event vector update (no tensor overhead)
        self._vectors = scorer.items.numpy()

    @property
    def dim(self) -> int:
        return self._vectors.shape[1]

    def item_vector(self, item_id: str) -> np.ndarray | None:
        index = self.index.get(item_id)
        return None if index is None else self._vectors[index]

    def top_k(
        self, interests: np.ndarray, exclude: Sequence[Sequence[str]], k: int
    ) -> list[Recommendation]:
        """interests (B, D); ``exclude[b]`` are item ids never to return to user b."""
        with torch.inference_mode():
            scores = self.scorer(torch.from_numpy(np.ascontiguousarray(interests)))  # (B, N)
            rows, cols = [], []
            for row, items in enumerate(exclude):
                for item in items:
                    col = self.index.get(item)
                    if col is not None:
                        rows.append(row)
                        cols.append(col)
            if rows:
                scores[rows, cols] = float("-inf")
            k = min(k, scores.shape[1])
            values, indices = torch.topk(scores, k, dim=1)  # (B, K)
        out = []
        for vals, idx in zip(values.tolist(), indices.tolist()):
            keep = [j for j, v in enumerate(vals) if v != float("-inf")]
            out.append(
                Recommendation([self.item_ids[idx[j]] for j in keep], [vals[j] for j in keep])
            )
        return out
