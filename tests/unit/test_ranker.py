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
