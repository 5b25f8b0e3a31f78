"""Score a micro-batch of users against the catalog: decayed interest plus sequence model.

For user b with decayed interest ``v`` and recent items ``h`` the query is

    q_b = interest_weight * v / |v| + sequence_weight * encode_user(h)

and item i scores ``<q_b, e_i> + b_i``: one query per user, so one matrix product per batch (or
one ANN search). The top candidates may then be re-ranked by the artifact's ranker. Each item
returned carries the recent items that explain it most: decayed weight x ``<e_j, e_i>``.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from core.codebook import ItemCodebook
from core.interest import version_tag
from models.base import SequenceModel
from models.blend import Blend
from models.fusion import Fused, fused_in_chunks
from models.neighbours import FUSION_WEIGHTS, NEIGHBOUR_POOL, WINDOW, Neighbours
from models.neighbour_reasons import explain as explain_neighbours
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
        self.n_model = len(self.item_ids)  # the artifact's items: what the sequence model knows
        self.content: "ContentVectors | None" = None  # noqa: F821 - the artifact's, if any
        self.neighbours: Neighbours | None = None  # the artifact's item neighbours, if any
        self.fusion = (0.0,) * len(FUSION_WEIGHTS)  # the neighbours' fitted weights, KINDS order

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def dim(self) -> int:
        return self._vectors.shape[1]

    @property
    def vectors(self) -> np.ndarray:
        """(N, D) float32 item vectors, row i for ``item_ids[i]`` (read only)."""
        return self._vectors

    def item_vector(self, item_id: str) -> np.ndarray | None:
        index = self.index.get(item_id)
        return None if index is None else self._vectors[index]

    def with_item_vectors(self, vectors: Mapping[str, np.ndarray],
                          bias: float | None = None) -> Recommender:
        """This model with ``vectors`` (D,) in place of its items' (online item learning,
        models/item_learning.py). An id the catalog lacks is appended, with ``bias`` (default the
        catalog's median; -inf: the model never lists it) and no training popularity for the
        ranker. The sequence encoder keeps the artifact's embeddings, and an ANN index keeps the
        vectors it was built with (exact search sees the new ones). A copy of the (N, D)
        matrix: cheap next to a batch."""
        new = copy.copy(self)
        fresh = [item for item in vectors if item not in self.index]
        if fresh:
            new.item_ids = self.item_ids + fresh
            new.index = {**self.index,
                         **{item: len(self.item_ids) + n for n, item in enumerate(fresh)}}  # fmt: skip
            items = torch.cat([self.items, torch.zeros(len(fresh), self.dim)])
            median = self.bias[: self.n_model].median() if self.n_model else torch.tensor(0.0)
            given = median if bias is None else torch.tensor(bias, dtype=self.bias.dtype)
            new.bias = torch.cat([self.bias, given.expand(len(fresh))])
            if self.ranker is not None:
                new.ranker = self.ranker.with_new_items(len(fresh))
        else:
            items = self.items.clone()
        if vectors:
            rows = torch.tensor([new.index[item] for item in vectors])
            items[rows] = torch.from_numpy(np.stack([np.asarray(v, np.float32)
                                                     for v in vectors.values()]))  # fmt: skip
        new.items, new._vectors = items, items.numpy()
        if isinstance(self.search, ExactIndex):
            new.search = ExactIndex(items, new.bias)
        return new

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
    ) -> ScoredBatch:
        """interests (B, D); ``recent[b]`` are user b's recent item ids (never returned) and
        ``recent_weights[b]`` their decayed weights, for explanations. ``out[b]`` is user b's
        :class:`Recommendation`; the arrays themselves are what records are written from."""
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
                n_model = self.n_model  # items learned online are not the sequence model's
                seen = known if len(self.item_ids) == n_model else \
                    [[i for i in row if i < n_model] for row in known]  # fmt: skip
                user = self.model.encode_user(self._history(seen))  # (B, D)
                query = query + blend.sequence_weight * user
            n_candidates = max(k, blend.rerank_candidates) if ranker is not None else k
            fusion = blend.fusion(self.fusion)
            neighbours = self.neighbours if max(fusion) > 0 else None
            if neighbours is not None:
                neighbours = neighbours.weighing(fusion)  # a weightless kind is not expanded
            if neighbours is not None:
                n_candidates = max(n_candidates, NEIGHBOUR_POOL)
            scores, indices = self.search.search(query, n_candidates, known)  # (B, C)
            if ranker is not None:  # re-ranks its candidates; any asked for past them follow
                head = blend.rerank_candidates  # in retrieval order, so a longer list (an
                end = n_candidates if neighbours is not None else k  # exploration pool) starts
                ranked = ranker.rerank(  # with the same top k
                    interest, user, self.items, self.bias, scores[:, :head], indices[:, :head],
                    min(end, head))  # fmt: skip
                scores = torch.cat([ranked[0], scores[:, head:end]], dim=1)
                indices = torch.cat([ranked[1], indices[:, head:end]], dim=1)
            fused = None
            if neighbours is not None:
                fused = fused_in_chunks(neighbours, indices.numpy(), known, k, (1.0, *fusion))
                indices = torch.from_numpy(np.concatenate([part.indices for part in fused]))
                scores = torch.from_numpy(np.concatenate([part.scores for part in fused]))
            indices, scores = indices[:, :k], scores[:, :k]
            if recent_weights is not None and blend.explain:
                because, contributions = self.explain(indices, recent, recent_weights)
                if fused is not None and any(part.by_neighbours.any() for part in fused):
                    because, contributions = self._explained_by_neighbours(
                        fused, fusion, because, contributions)
            else:
                because = np.full((*indices.shape, 0), -1, dtype=np.int64)
                contributions = np.zeros(because.shape, dtype=np.float32)
        return ScoredBatch(self.item_ids, indices.numpy(), scores.numpy(), because, contributions)

    def _explained_by_neighbours(self, fused: Sequence[Fused], fusion: Sequence[float],
                                 because: np.ndarray, contributions: np.ndarray,
                                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The slots the neighbours put there (more than the model did) explained by the recent
        items whose co-visits, rules, content or alike sessions brought them
        (models/neighbour_reasons.py), ``fused``'s chunks of users in turn."""
        width = max(because.shape[2], min(self.blend.explain, WINDOW))
        pad = width - because.shape[2]
        because = np.pad(because, ((0, 0), (0, 0), (0, pad)), constant_values=-1)
        contributions = np.pad(contributions, ((0, 0), (0, 0), (0, pad)))
        start = 0
        for part in fused:
            rows, mask = slice(start, start + len(part.indices)), part.by_neighbours
            found, values = explain_neighbours(self.neighbours, part, fusion, width)
            because[rows][mask], contributions[rows][mask] = found[mask], values[mask]
            start += len(part.indices)
        return because, contributions

    def explain(
        self,
        indices: torch.Tensor,
        recent: Sequence[Sequence[str]],
        recent_weights: Sequence[Sequence[float]],
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each user and recommended item, the recent items with the largest positive
        ``weight_j * <e_j, e_i>``, a repeated item's weights summed: (B, C, E) catalog indices
        (-1: none) and their contributions, best first. The whole batch in a few array
        operations: one Python object per recent item, none per explanation."""
        n_items, batch = len(self.item_ids), len(recent)
        index = self.index
        lengths = [min(len(items), len(w)) for items, w in zip(recent, recent_weights)]
        codes = np.fromiter((index.get(i, -1) for items, n in zip(recent, lengths)
                             for i in items[:n]), np.int64, sum(lengths))  # fmt: skip
        weights = np.fromiter(itertools.chain.from_iterable(
            w[:n] for w, n in zip(recent_weights, lengths)), np.float64, sum(lengths))
        rows = np.repeat(np.arange(batch), lengths)
        known = codes >= 0
        # one (user, item) key per distinct item, its weights summed in the order they came
        keys, inverse = np.unique(rows[known] * n_items + codes[known], return_inverse=True)
        summed = np.bincount(inverse, weights[known], len(keys)).astype(np.float32)
        key_rows, key_items = np.divmod(keys, n_items)
        slot = np.arange(len(keys)) - np.searchsorted(key_rows, key_rows)  # place in its row
        width = int(slot.max()) + 1 if len(keys) else 0
        n_explain = min(self.blend.explain, width)
        if n_explain == 0:
            return (np.full((*indices.shape, 0), -1, dtype=np.int64),
                    np.zeros((*indices.shape, 0), dtype=np.float32))  # fmt: skip
        hist = torch.zeros(batch, width, dtype=torch.long)
        hist_weights = torch.zeros(batch, width)
        hist[key_rows, slot] = torch.from_numpy(key_items)
        hist_weights[key_rows, slot] = torch.from_numpy(summed)
        picked = self.items[indices.clamp(min=0)]  # (B, C, D)
        contrib = (picked @ self.items[hist].transpose(1, 2)) * hist_weights[:, None, :]
        values, order = torch.topk(contrib, n_explain, dim=2)  # (B, C, E)
        because = hist.gather(1, order.flatten(1)).view(order.shape)
        because = because.masked_fill(values <= 0, -1)  # only what pulled towards the item
        return because.numpy(), values.numpy()


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's top-K as arrays, best first: row b, slot j is item ``indices[b, j]`` (-1: no
    item left to show) with ``scores[b, j]``, explained by the recent items ``because[b, j]``
    (catalog indices, -1: none) with their ``contributions``. Records are written straight from
    these (streams/steps/records.py); ``batch[b]`` is the same row as a :class:`Recommendation`."""

    item_ids: Sequence[str]
    indices: np.ndarray  # (B, K) int64
    scores: np.ndarray  # (B, K) float32
    because: np.ndarray  # (B, K, E) int64
    contributions: np.ndarray  # (B, K, E) float32
    # what models/slates.py chose: each slot's propensity and source (SOURCES); None: the
    # model's own list, every propensity 1
    propensity: np.ndarray | None = None  # (B, K) float64
    source: np.ndarray | None = None  # (B, K) int8

    def __len__(self) -> int:
        return self.indices.shape[0]

    def __getitem__(self, row: int) -> Recommendation:
        if not -len(self) <= row < len(self):
            raise IndexError(row)
        names = self.item_ids
        keep = [j for j, i in enumerate(self.indices[row].tolist()) if i >= 0]
        return Recommendation(
            [names[i] for i in self.indices[row, keep].tolist()],
            self.scores[row, keep].tolist(),
            [
                [(names[i], round(w, 6)) for i, w in zip(ids, weights) if i >= 0]
                for ids, weights in zip(self.because[row, keep].tolist(),
                                        self.contributions[row, keep].tolist())
            ],
        )
