"""Exact and HNSW retrieval agree, and neither returns an excluded item."""

import torch

from models.retrieval import AnnIndex, ExactIndex


def test_hnsw_matches_exact_and_respects_exclusions(tmp_path):
    g = torch.Generator().manual_seed(0)
    items, bias = torch.randn(2000, 16, generator=g), 0.1 * torch.randn(2000, generator=g)
    queries = items[:50] + 0.1 * torch.randn(50, 16, generator=g)
    exclude = [[i, (i + 1) % 2000] for i in range(50)]  # each query's own item among them
    exact_scores, exact = ExactIndex(items, bias).search(queries.clone(), 10, exclude)
    path = tmp_path / "ann.faiss"
    AnnIndex.build(items, bias).save(path)
    ann_scores, ann = AnnIndex.load(path).search(queries, 10, exclude)
    recall = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(ann, exact)) / (50 * 10)
    assert recall > 0.95
    for row, banned in enumerate(exclude):
        assert not set(banned) & set(ann[row].tolist())
        assert not set(banned) & set(exact[row].tolist())
    torch.testing.assert_close(ann_scores[:, 0], exact_scores[:, 0], rtol=1e-4, atol=1e-4)


def test_exact_returns_fewer_when_everything_is_excluded():
    scores, found = ExactIndex(torch.eye(3), torch.zeros(3)).search(torch.ones(1, 3), 3, [[0, 2]])
    assert found[0].tolist() == [1, -1, -1]
    assert scores[0, 1] == float("-inf")
