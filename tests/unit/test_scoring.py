import numpy as np
import torch

from models.scoring import InterestScorer, Recommender


def recommender() -> Recommender:
    items = torch.eye(4)  # item k points along axis k
    return Recommender(["a", "b", "c", "d"], InterestScorer(items, torch.zeros(4)), "v1")


def test_top_k_ranks_by_interest_and_excludes_seen():
    rec = recommender()
    interests = np.array([[0.9, 0.5, 0.1, 0.0], [0.0, 0.0, 1.0, 0.2]], np.float32)
    out = rec.top_k(interests, [["a"], []], k=2)
    assert out[0].item_ids == ["b", "c"]
    assert out[1].item_ids == ["c", "d"]


def test_excluding_everything_returns_fewer_items():
    out = recommender().top_k(np.ones((1, 4), np.float32), [["a", "b", "c"]], k=3)
    assert out[0].item_ids == ["d"]
