"""The ranker starts as the retrieval order and learns corrections from features."""

import torch
from torch.nn import functional as F

from models.ranker import Ranker


def candidates(b: int = 64, c: int = 8, n: int = 40, d: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = torch.randn(n, d, generator=g)
    cand = torch.stack([torch.randperm(n, generator=g)[:c] for _ in range(b)])  # (B, C)
    scores = torch.sort(torch.randn(b, c, generator=g), dim=1, descending=True).values
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g), items, cand, scores


def test_untrained_ranker_keeps_the_retrieval_order():
    interest, user, items, cand, scores = candidates()
    ranker = Ranker(n_items=40, dim=4)
    _, order = ranker.rerank(interest, user, items, torch.zeros(40), scores, cand, k=5)
    assert torch.equal(order, cand[:, :5])


def test_ranker_learns_a_feature_retrieval_ignored():
    """The target is always the candidate with the highest popularity feature, which retrieval
    scores ignore; after training the ranker puts it first."""
    interest, user, items, cand, scores = candidates()
    ranker = Ranker(n_items=40, dim=4)
    ranker.item_features[:, 0] = torch.linspace(0, 3, 40)
    labels = ranker.item_features[cand, 0].argmax(dim=1)
    x = ranker.features(interest, user, items, torch.zeros(40), cand)
    optimizer = torch.optim.Adam(ranker.parameters(), lr=1e-2)
    for _ in range(300):
        loss = F.cross_entropy(ranker(x, scores), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _, order = ranker.rerank(interest, user, items, torch.zeros(40), scores, cand, k=1)
    assert (order[:, 0] == cand.gather(1, labels[:, None])[:, 0]).float().mean() > 0.9


def test_rerank_scores_what_the_mlp_gives_on_the_features_it_trains_on():
    torch.manual_seed(0)
    n_items, dim, batch, n_candidates = 30, 6, 5, 7
    ranker = Ranker(n_items, dim, hidden=9)
    torch.nn.init.normal_(ranker.out.weight)  # trained: not the zero start
    ranker.item_features.normal_()
    items, bias = torch.randn(n_items, dim), torch.randn(n_items)
    interest = torch.nn.functional.normalize(torch.randn(batch, dim), dim=-1)
    user = torch.randn(batch, dim)
    candidates = torch.randint(0, n_items, (batch, n_candidates))
    candidates[0, -2:] = -1  # empty slots stay last
    base = torch.randn(batch, n_candidates)
    with torch.no_grad():
        want = ranker(ranker.features(interest, user, items, bias, candidates),
                      base.masked_fill(candidates < 0, 0.0))  # fmt: skip
        values, order = ranker.rerank(interest, user, items, bias, base, candidates, 4)
    expected = want.masked_fill(candidates < 0, float("-inf")).topk(4, dim=1)
    torch.testing.assert_close(values, expected.values, rtol=1e-5, atol=1e-5)
    assert torch.equal(order, candidates.gather(1, expected.indices))
