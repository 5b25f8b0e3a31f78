"""Score a micro-batch of users against the catalog: decayed interest plus sequence model.

For user b with decayed interest ``v`` and recent items ``h`` the query is

    q_b = interest_weight * v / |v| + sequence_weight * encode_user(h)

and item i scores ``<q_b, e_i> + b_i``: one query per user, so one matrix product per batch (or
one ANN search). The top candidates may then be re-ranked by the artifact's ranker. Each item
returned carries the recent items that explain it most: decayed weight x ``<e_j, e_i>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from core.codebook import ItemCodebook
from core.interest import version_tag
from models.base import SequenceModel
from models.blend import Blend
from models.retrieval import ExactIndex, Index


@dataclass(frozen=True)
class Recommendation:
    item_ids: list[str]
    scores: list[float]
    because: list[list[tuple[str, float]]]  # per item: (recent item id, contribution), best first


class Recommender:
    """What a worker needs from a model artifact: catalog, item vectors, batched top-K."""

    def __init__(
        self,
        model: SequenceModel,
        item_ids: Sequence[str],
        version: str,
        blend: Blend = Blend(),
        index: Index | None = None,
        ranker: "Ranker | None" = None,  # noqa: F821
    ) -> None:
        self.model = model.eval()
        self.item_ids = list(item_ids)
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        self.codebook = ItemCodebook(self.item_ids)  # how the user table names these items
        self.tag = version_tag(version)  # how a user's state names the space it is in
        self.version = version
        self.blend = blend
        self.ranker = ranker
        with torch.inference_mode():
            self.items = model.item_embeddings().detach().float().clone()  # (N, D)
            self.bias = model.item_biases().detach().float().clone()  # (N,)
        self.search = index or ExactIndex(self.items, self.bias)
        self._vectors = self.items.numpy()  # numpy view for the per-event update

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def dim(self) -> int:
        return self._vectors.shape[1]

    def item_vector(self, item_id: str) -> np.ndarray | None:
        index = self.index.get(item_id)
        return None if index is None else self._vectors[index]

    def _history(self, known: Sequence[Sequence[int]]) -> torch.Tensor:
        """Catalog indices of each user's recent items -> (B, L), left-padded."""
        pad, max_len = self.model.pad, self.model.max_len
        out = np.full((len(known), max_len), pad, dtype=np.int64)
        for row, items in enumerate(known):
            if items:
                tail = items[-max_len:]
                out[row, max_len - len(tail) :] = tail
        return torch.from_numpy(out)

    def top_k(
        self,
        interests: np.ndarray,
        recent: Sequence[Sequence[str]],
        k: int,
        recent_weights: Sequence[Sequence[float]] | None = None,
    ) -> list[Recommendation]:
        """interests (B, D); ``recent[b]`` are user b's recent item ids (never returned) and
        ``recent_weights[b]`` their decayed weights, for explanations."""
        blend = self.blend
        index = self.index
        # Recent items the catalog knows, as indices: the sequence model's input and never shown.
        known = [[index[i] for i in items if i in index] for items in recent]
        with torch.inference_mode():
            interest = F.normalize(torch.from_numpy(np.ascontiguousarray(interests)), dim=-1)
            query = blend.interest_weight * interest
            user = None
            ranker = self.ranker if blend.rerank_candidates else None  # 0 candidates: off
            if blend.sequence_weight or ranker is not None:
                user = self.model.encode_user(self._history(known))  # (B, D)
                query = query + blend.sequence_weight * user
            n_candidates = max(k, blend.rerank_candidates) if ranker is not None else k
            scores, indices = self.search.search(query, n_candidates, known)  # (B, C)
            if ranker is not None:
                scores, indices = ranker.rerank(
                    interest, user, self.items, self.bias, scores, indices, k
                )
            because = (
                self._explain(indices, recent, recent_weights)
                if recent_weights is not None and blend.explain
                else None
            )
        out = []
        for row, (vals, idx) in enumerate(zip(scores.tolist(), indices.tolist())):
            keep = [j for j, i in enumerate(idx) if i >= 0][:k]
            out.append(
                Recommendation(
                    [self.item_ids[idx[j]] for j in keep],
                    [vals[j] for j in keep],
                    [because[row][j] for j in keep] if because else [[] for _ in keep],
                )
            )
        return out

    def _explain(
        self,
        indices: torch.Tensor,
        recent: Sequence[Sequence[str]],
        recent_weights: Sequence[Sequence[float]],
    ) -> list[list[list[tuple[str, float]]]]:
        """For each user and recommended item, the recent items with the largest positive
        ``weight_j * <e_j, e_i>``, a repeated item's weights summed."""
        merged = []
        for items, weights in zip(recent, recent_weights):
            total: dict[str, float] = {}
            for item, weight in zip(items, weights):
                if item in self.index:
                    total[item] = total.get(item, 0.0) + weight
            merged.append(total)
        width = max((len(m) for m in merged), default=0)
        if width == 0:
            return [[[] for _ in row] for row in indices.tolist()]
        hist = torch.full((len(merged), width), 0, dtype=torch.long)
        weights = torch.zeros(len(merged), width)
        for row, total in enumerate(merged):
            hist[row, : len(total)] = torch.tensor([self.index[i] for i in total])
            weights[row, : len(total)] = torch.tensor(list(total.values()))
        picked = self.items[indices.clamp(min=0)]  # (B, C, D)
        contrib = (picked @ self.items[hist].transpose(1, 2)) * weights[:, None, :]  # (B, C, W)
        values, order = torch.topk(contrib, min(self.blend.explain, width), dim=2)
        names = [list(m) for m in merged]
        return [
            [
                [(names[b][j], round(v, 6)) for v, j in zip(vs, js) if v > 0]
                for vs, js in zip(values[b].tolist(), order[b].tolist())
            ]
            for b in range(len(merged))
        ]
