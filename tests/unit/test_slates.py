"""What each served list shows (models/slates.py), and what its record says of each slot: the
model's own lists unchanged when nothing explores, explored slots within the budget with the
propensities the policy gives them, and the trending fallback for a user with no history."""

from __future__ import annotations

import numpy as np
import orjson
import torch

from core.events import Event
from core.interest import Snapshot, UserState
from core.item_stats import ItemStats
from models.blend import Blend
from models.exploration import Exploration, explore, seed_of
from models.item_board import ItemBoard
from models.mf import MatrixFactorization
from models.scoring import Recommender
from models.slates import EXPLORE, MODEL, NEW, TRENDING, ListRules, serve_lists
from streams.steps import records

N_ITEMS, DIM, K = 60, 8, 6
HOUR_MS = 3_600_000.0


def recommender() -> Recommender:
    torch.manual_seed(4)
    model = MatrixFactorization(n_items=N_ITEMS, dim=DIM, max_len=5)
    return Recommender(model, [f"i{n}" for n in range(N_ITEMS)], "v1",
                       Blend(sequence_weight=0.0, explain=2))  # fmt: skip


def states(rec: Recommender, n: int, seed: int = 1) -> list[UserState]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        recent = tuple(rec.item_ids[i] for i in rng.integers(0, N_ITEMS, 4))
        out.append(UserState(rng.normal(size=DIM).astype(np.float32), 1000, 4, recent,
                             recent_weights=(1.0, 0.5, 0.25, 0.1)))  # fmt: skip
    return out


def board_with(popularity: dict[str, float], last_ts: int = 0, shown: int = 50) -> ItemBoard:
    board = ItemBoard(HOUR_MS)
    board.update({item: ItemStats(impressions=shown, positives=shown // 5, popularity=p,
                                  last_ts=last_ts) for item, p in popularity.items()})  # fmt: skip
    return board


def test_greedy_lists_with_no_cold_user_are_the_models_own():
    rec, users = recommender(), states(recommender(), 20)
    board = board_with({"i1": 5.0})
    got = serve_lists(rec, users, K, ListRules(), board, list(range(20)), [0.0] * 20)
    want = rec.top_k(np.stack([s.vector for s in users]), [s.recent for s in users], K,
                     [s.recent_weights for s in users])  # fmt: skip
    assert np.array_equal(got.indices, want.indices) and got.source is None


def test_epsilon_lists_keep_the_budget_and_say_each_slots_propensity_and_source():
    rec, users = recommender(), states(recommender(), 200)
    config = Exploration("epsilon", 2, epsilon=0.5, pool=20, new_items=0)
    seeds = [seed_of(records.rec_id(f"u{n}", 0, n)) for n in range(200)]
    got = serve_lists(rec, users, K, ListRules(config, -1), None, seeds, [0.0] * 200)
    ranked = rec.top_k(np.stack([s.vector for s in users]), [s.recent for s in users],
                       config.candidates(K))  # fmt: skip
    explored = got.source == EXPLORE
    assert explored.sum(axis=1).max() <= 2 and explored.any()
    assert not explored[:, : K - 2].any() and (got.source[:, : K - 2] == MODEL).all()
    assert np.all(got.propensity[:, : K - 2] == 1.0)
    assert np.allclose(got.propensity[explored], 0.5 / 20)
    assert np.allclose(got.propensity[:, K - 2 :][~explored[:, K - 2 :]], 0.5)
    for row in range(200):  # the library's draw with the record's seed, scored as the model does
        ones = np.ones(ranked.indices.shape[1])
        slate = explore(ranked.indices[row], K, config, ones, ones, seeds[row])
        assert np.array_equal(got.indices[row], slate.items)
        where = {i: s for i, s in zip(ranked.indices[row].tolist(), ranked.scores[row].tolist())}
        assert np.allclose(got.scores[row], [where[i] for i in slate.items.tolist()])
    # explanations are of the items shown
    assert got.because.shape == (200, K, 2)


def test_new_items_are_explored_first_and_said_to_be_new():
    rec, users = recommender(), states(recommender(), 50)
    board = board_with({item: 1.0 for item in rec.item_ids})  # every item shown 50 times
    board.update({"i7": ItemStats(impressions=2), "i13": ItemStats()})  # but two new ones
    config = Exploration("epsilon", 1, epsilon=1.0, pool=N_ITEMS, new_items=10)
    got = serve_lists(rec, users, K, ListRules(config, -1), board, list(range(50)), [0.0] * 50)
    ranked = rec.top_k(np.stack([s.vector for s in users]), [s.recent for s in users],
                       config.candidates(K)).indices  # fmt: skip
    fresh_rows = 0
    for row in range(50):
        pool = [rec.item_ids[i] for i in ranked[row, K:].tolist() if i >= 0]
        fresh = [i for i in pool if i in ("i7", "i13")]
        shown = rec.item_ids[got.indices[row, -1]]
        if fresh:  # drawn from the new items of its pool alone
            fresh_rows += 1
            assert shown in fresh and got.source[row, -1] == NEW
            assert got.propensity[row, -1] == 1 / len(fresh)
        else:
            assert got.source[row, -1] == EXPLORE and got.propensity[row, -1] == 1 / len(pool)
    assert fresh_rows >= 25


def test_a_user_with_no_history_gets_the_trending_items_in_decayed_order():
    rec = recommender()
    # i3 was the most popular, but an hour ago; i5 and i9 are popular now
    board = board_with({"i3": 10.0}, last_ts=0)
    board.update({"i5": ItemStats(popularity=6.0, last_ts=int(HOUR_MS)),
                  "i9": ItemStats(popularity=4.0, last_ts=int(HOUR_MS))})  # fmt: skip
    new_user = UserState.empty(DIM)
    one_event = UserState(np.ones(DIM, np.float32), 5, 1, ("i5",), recent_weights=(1.0,))
    warm = states(rec, 1)[0]
    users = [new_user, one_event, warm]
    rules = ListRules(Exploration(), cold_start_events=1)
    got = serve_lists(rec, users, K, rules, board, [0, 1, 2], [HOUR_MS] * 3)
    names = [[rec.item_ids[i] for i in row if i >= 0] for row in got.indices.tolist()]
    assert names[0][:3] == ["i5", "i3", "i9"]  # 10 halved is 5: between 6 and 4
    assert got.source[0, :3].tolist() == [TRENDING] * 3 and (got.source[0, 3:] == MODEL).all()
    assert np.allclose(got.scores[0, :3], [6.0, 5.0, 4.0])
    assert names[1][:2] == ["i3", "i9"] and "i5" not in names[1]  # what they saw, never again
    assert len(names[0]) == len(names[1]) == K  # the model's items fill what trending leaves
    assert (got.source[2] == MODEL).all()  # a user with history: the model's list
    # with nothing popular yet, even a new user gets the model's list, not an empty one
    empty = serve_lists(rec, [new_user], K, rules, ItemBoard(HOUR_MS), [0], [0.0])
    assert (empty.indices >= 0).sum() == K


def test_records_say_propensity_explored_and_source_per_item_and_the_policy():
    rec, users = recommender(), states(recommender(), 30)
    snapshots = [Snapshot(Event(f"u{n}", "x", "click", 1000), (0, n), s)
                 for n, s in enumerate(users)]  # fmt: skip
    ids = records.record_ids(snapshots)
    rules = ListRules(Exploration("epsilon", 1, epsilon=0.5, pool=10), -1)
    scored = records.serve(rec, snapshots, K, rules, None, ids)
    out = records.recommendation_records(snapshots, scored, "v1", ids=ids,
                                         exploration=rules.exploration)  # fmt: skip
    for row, (_, value) in enumerate(out):
        record = orjson.loads(value)
        assert record["exploration"] == {"policy": "epsilon", "budget": 1, "epsilon": 0.5}
        assert record["items"] == records.record_items(scored, row)
        for slot, item in enumerate(record["items"]):
            assert item["propensity"] == round(float(scored.propensity[row, slot]), 6)
            assert item["explored"] == (scored.source[row, slot] == EXPLORE)
            assert item["source"] == ("explore" if item["explored"] else "model")
    assert any(i["explored"] for _, v in out for i in orjson.loads(v)["items"])
