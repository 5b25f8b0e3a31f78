"""Candidate retrieval: the top items for a batch of user queries, seen items excluded.

Scores are ``<q, e_i> + b_i``. Exact search is one matrix product, always right and fast enough
below an artifact's ``ann_min_items``; above that an HNSW index (faiss) over ``[e_i, b_i]``
answers the same inner product for queries ``[q, 1]``, approximately (``bench/ann.py`` measures
recall and latency against exact search: docs/models.md, "Candidate retrieval: exact vs ANN").
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

ANN_FILE = "ann.faiss"


class Index(Protocol):
    def search(
        self, queries: torch.Tensor, k: int, exclude: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, D) -> (scores, item indices), each (B, k), best first; a slot with no
        item left has score -inf and index -1."""
        ...


class ExactIndex:
    def __init__(self, items: torch.Tensor, bias: torch.Tensor) -> None:
        self.items = items.detach().float().contiguous()  # (N, D)
        self.bias = bias.detach().float().contiguous()  # (N,)

    def search(
        self, queries: torch.Tensor, k: int, exclude: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.addmm(self.bias, queries, self.items.T)  # (B, N)
        counts = [len(cols) for cols in exclude]
        if any(counts):
            rows = np.repeat(np.arange(len(exclude)), counts)
            cols = np.fromiter(itertools.chain.from_iterable(exclude), np.int64, sum(counts))
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
        values, indices = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        return values, indices.masked_fill(values == float("-inf"), -1)


class AnnIndex:
    """faiss HNSW, inner-product metric, over items augmented with their bias."""

    def __init__(self, index: "faiss.Index", ef_search: int = 128) -> None:  # noqa: F821
        import faiss

        self.index = index
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", ef_search)

    @classmethod
    def build(
        cls, items: torch.Tensor, bias: torch.Tensor, m: int = 32, ef_construction: int = 64
    ) -> AnnIndex:
        import faiss

        vectors = torch.cat([items, bias[:, None]], dim=1).detach().float().numpy()
        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(np.ascontiguousarray(vectors))
        return cls(index)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> AnnIndex:
        import faiss

        return cls(faiss.read_index(str(path)))

    def search(
        self, queries: torch.Tensor, k: int, exclude: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Ask for enough extra neighbours that k survive the exclusions.
        extra = max((len(cols) for cols in exclude), default=0)
        augmented = torch.cat([queries, torch.ones(len(queries), 1)], dim=1).float().numpy()
        scores, indices = self.index.search(np.ascontiguousarray(augmented), k + extra)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_indices = np.full((len(queries), k), -1, dtype=np.int64)
        for row, cols in enumerate(exclude):
            banned = set(cols)
            keep = [j for j, i in enumerate(indices[row]) if i >= 0 and i not in banned][:k]
            out_scores[row, : len(keep)] = scores[row, keep]
            out_indices[row, : len(keep)] = indices[row, keep]
        return torch.from_numpy(out_scores), torch.from_numpy(out_indices)
