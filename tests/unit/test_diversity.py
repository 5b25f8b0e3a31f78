"""MMR re-ranking and intra-list diversity (models/diversity.py): lambda 1 is the model's order,
lower lambdas push a near-duplicate below a different item, every row keeps its candidates, and
the lists served with MMR are more diverse by the evaluator's measure."""

from __future__ import annotations

import numpy as np

from models.diversity import intra_list_diversity, mmr
from models.slates import ListRules, serve_lists
from tests.unit.test_slates import K, recommender, states

# items 0 and 1 point the same way, 2 elsewhere; 3 is a zero vector
VECTORS = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.0, 0.0]])


def test_lambda_one_is_the_models_order_and_lower_pushes_a_near_duplicate_down():
    indices = np.array([[0, 1, 2, -1]])
    scores = np.array([[3.0, 2.9, 2.0, 0.0]], dtype=np.float32)
    same, same_scores = mmr(indices, scores, VECTORS, 3, 1.0)
    assert np.array_equal(same, indices) and np.array_equal(same_scores, scores)
    got, got_scores = mmr(indices, scores, VECTORS, 3, 0.5)
    assert got.tolist() == [[0, 2, 1, -1]]
    assert got_scores.tolist()[0][:3] == [3.0, 2.0, 2.9000000953674316]


def test_every_row_keeps_its_candidates():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8))
    indices = np.stack([rng.permutation(50)[:20] for _ in range(30)])
    indices[::4, 15:] = -1  # short rows
    scores = rng.normal(size=indices.shape).astype(np.float32)
    got, _ = mmr(indices, scores, vectors, 10, 0.3)
    for row, want in zip(got, indices):
        assert sorted(row.tolist()) == sorted(want.tolist())
        assert (row[: (want >= 0).sum()] >= 0).all()  # the items first, empty slots last


def test_intra_list_diversity_is_one_minus_the_mean_pairwise_cosine():
    assert intra_list_diversity(np.array([[0, 1]]), VECTORS) < 0.01
    assert intra_list_diversity(np.array([[0, 2]]), VECTORS) == 1.0
    # a list of one item, or with a zero vector only beside one item, says nothing
    assert intra_list_diversity(np.array([[0, -1], [0, 2]]), VECTORS) == 1.0
    assert np.isnan(intra_list_diversity(np.array([[3, 0]]), VECTORS))


def test_lists_served_with_mmr_are_more_diverse():
    rec, users = recommender(), states(recommender(), 100)
    ild = []
    for lam in (1.0, 0.7, 0.3):
        got = serve_lists(rec, users, K, ListRules(cold_start_events=-1, mmr_lambda=lam), None,
                          list(range(100)), [0.0] * 100)  # fmt: skip
        ild.append(intra_list_diversity(got.indices, rec.vectors))
        assert (got.source == 0).all() if got.source is not None else lam == 1.0
    assert ild[0] < ild[1] < ild[2], ild
