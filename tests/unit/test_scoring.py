import numpy as np
import torch

from models.mf import MatrixFactorization
from models.blend import Blend
from models.scoring import Recommender

ITEMS = ["a", "b", "c", "d"]


def recommender(embeddings: torch.Tensor, **blend) -> Recommender:
    model = MatrixFactorization(n_items=len(embeddings), dim=embeddings.shape[1], max_len=5)
    with torch.no_grad():
        model.items.weight[: len(embeddings)] = embeddings
    return Recommender(model, ITEMS[: len(embeddings)], "v1", Blend(**blend))


def test_top_k_ranks_by_interest_and_excludes_seen():
    rec = recommender(torch.eye(4), sequence_weight=0.0)  # item k points along axis k
    interests = np.array([[0.9, 0.5, 0.1, 0.0], [0.0, 0.0, 1.0, 0.2]], np.float32)
    out = rec.top_k(interests, [["a"], []], k=2)
    assert out[0].item_ids == ["b", "c"]
    assert out[1].item_ids == ["c", "d"]


def test_excluding_everything_returns_fewer_items():
    out = recommender(torch.eye(4)).top_k(np.ones((1, 4), np.float32), [["a", "b", "c"]], k=3)
    assert out[0].item_ids == ["d"]


def test_sequence_part_scores_the_mean_of_recent_items_for_mf():
    # No interest at all: only the sequence encoder (MF: mean of recent embeddings) speaks.
    rec = recommender(
        torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]]), interest_weight=0.0
    )
    out = rec.top_k(np.zeros((1, 2), np.float32), [["a"]], k=3)
    assert out[0].item_ids == ["b", "c", "d"]


def test_explanations_name_the_recent_items_that_contributed_most():
    # Two directions: a and b along x, c along y, d mixes both. The user watched a (strong,
    # weight 2) and c (weak, 0.5). b is explained by a only (c is orthogonal to it); d by both,
    # a first since 2 * <a, d> > 0.5 * <c, d>.
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.6]])
    rec = recommender(embeddings, sequence_weight=0.0)
    interest = (2.0 * embeddings[0] + 0.5 * embeddings[2]).numpy()[None]
    [out] = rec.top_k(interest, [["a", "c"]], k=2, recent_weights=[[2.0, 0.5]])
    assert out.item_ids == ["b", "d"]
    assert out.because[0] == [("a", 2.0)]
    assert [item for item, _ in out.because[1]] == ["a", "c"]
    np.testing.assert_allclose([w for _, w in out.because[1]], [1.2, 0.3], rtol=1e-5)


def test_negative_and_repeated_recent_items():
    # A skipped item (negative weight) never explains; a repeated one sums its weights.
    rec = recommender(torch.eye(4) + 0.1, sequence_weight=0.0, explain=3)
    [out] = rec.top_k(
        np.ones((1, 4), np.float32), [["a", "b", "a"]], k=1, recent_weights=[[1.0, -3.0, 1.0]]
    )
    assert [item for item, _ in out.because[0]] == ["a"]
    assert out.because[0][0][1] > 0


def test_zero_rerank_candidates_turns_the_artifacts_ranker_off():
    class Reversing:
        """A ranker that puts retrieval's order upside down, so its use shows."""

        def rerank(self, interest, user, items, bias, scores, indices, k):
            return scores.flip(1)[:, :k], indices.flip(1)[:, :k]

    interests = np.array([[0.9, 0.5, 0.1, 0.0]], np.float32)
    on = recommender(torch.eye(4), sequence_weight=0.0, rerank_candidates=3)
    off = recommender(torch.eye(4), sequence_weight=0.0, rerank_candidates=0)
    on.ranker = off.ranker = Reversing()
    assert on.top_k(interests, [[]], k=2)[0].item_ids == ["c", "b"]
    assert off.top_k(interests, [[]], k=2)[0].item_ids == ["a", "b"]
