"""Streaming baselines: each ranks only from the past, never the user's own items, and learns what
its name says on streams where the answer is known."""

import math

import numpy as np
import pytest

from models.baselines import ItemKNN, OnlineMF, Popularity, top_k
from models.stream import Stream

HOUR = 3_600_000


def run(policy, stream, k=3):
    users, items, ts = (np.array(c) for c in zip(*stream))
    tested = np.ones(len(stream), dtype=bool)
    return policy.run(Stream([], users, items, ts, [], tested), k)


def test_top_k_orders_breaks_ties_by_index_and_pads():
    assert top_k(np.array([1.0, 3.0, 3.0, -np.inf]), 5).tolist() == [1, 2, 0, -1, -1]


def test_nothing_unseen_or_own_is_ever_recommended():
    stream = [(0, 0, 0), (1, 1, 1), (0, 2, 2), (1, 0, 3), (0, 3, 4)]
    for policy in (Popularity(2, 5), Popularity(2, 5, HOUR), ItemKNN(2, 5), OnlineMF(2, 5)):
        lists = run(policy, stream, k=5)
        known, seen = set(), {0: set(), 1: set()}
        for (user, item, _), row in zip(stream, lists):
            shown = {i for i in row.tolist() if i >= 0}
            assert shown <= known - seen[user], policy.name
            known.add(item)
            seen[user].add(item)


def test_popularity_counts_and_trending_forgets():
    # item 0 is consumed 3 times early, item 1 twice much later; user 9 asks at the end
    stream = (
        [(u, 0, 0) for u in range(3)] + [(u, 1, 100 * HOUR) for u in (3, 4)] + [(9, 2, 101 * HOUR)]
    )
    plain = run(Popularity(10, 3), stream)[-1].tolist()
    trending = run(Popularity(10, 3, half_life_ms=HOUR), stream)[-1].tolist()
    assert plain[:2] == [0, 1] and trending[:2] == [1, 0]


def test_trending_counts_survive_a_long_stream_without_overflow():
    policy = Popularity(1, 2, half_life_ms=1.0)
    stream = [(0, t % 2, t * 1000) for t in range(200)]
    run(policy, stream)
    assert np.isfinite(policy.counts).all() and policy.counts.max() > 0


def test_item_knn_recommends_what_co_occurred_with_the_recent_items():
    # users 0-2 consume 0 then 1; user 3 consumes 0 then 2; user 4 just consumed 0
    stream = [(u, i, 0) for u in range(3) for i in (0, 1)] + [(3, 0, 0), (3, 2, 0), (4, 0, 1)]
    stream.append((4, 3, 2))
    assert run(ItemKNN(5, 4), stream)[-1].tolist()[:2] == [1, 2]


def test_online_mf_learns_a_repeated_preference():
    # many users like items 0 and 1 together; a new user who took 0 should be offered 1 first
    stream = [(u, i, 0) for u in range(40) for i in (0, 1)] + [(40, 2, 0), (41, 0, 0), (41, 3, 0)]
    policy = OnlineMF(42, 4, lr=0.1)
    assert run(policy, stream)[-1].tolist()[0] == 1


def test_popularity_name_says_whether_it_forgets():
    assert Popularity(1, 1).name == "popularity"
    assert Popularity(1, 1, half_life_ms=5.0).name == "trending popularity"
    assert math.isinf(Popularity(1, 1).half_life_ms)


@pytest.mark.parametrize("k", [1, 4])
def test_lists_have_k_columns(k):
    assert run(Popularity(2, 3), [(0, 0, 0), (1, 1, 0)], k=k).shape == (2, k)
