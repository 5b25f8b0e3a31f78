"""Item neighbours (models/neighbours.py): the counts are the evaluator's baselines' own, the
artifact carries them whole or is refused, and the fused list is the model's until a neighbour
outranks it."""

import numpy as np
import pytest
import torch

from models.artifact import load_recommender, save_artifact
from models.baselines import ItemKNN
from core.interest import InterestConfig
from models.blend import Blend
from models.data import Interactions
from models.fusion_fit import fit_fusion, newest, version_neighbours
from models.mf import MatrixFactorization
from models.scoring import Recommender
from models.fusion import fuse
from models.candidates import candidates, grouped, positions_in
from models.neighbour_reasons import explain
from models.neighbours import FUSION_WEIGHTS, NEIGHBOURS_FILE, Neighbours, Rows, build
from models.sequential_rules import SequentialRules


def dense(rows, n: int) -> np.ndarray:
    out = np.zeros((n, n))
    for i in range(n):
        targets, weights = rows.row(i)
        out[i, targets] = weights
    return out


def random_streams(n_users: int = 20, n_items: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = [rng.choice(n_items, size=rng.integers(2, n_items), replace=False)
             for _ in range(n_users)]  # fmt: skip
    times = [np.arange(len(s)) * 1000 + u for u, s in enumerate(items)]
    return items, times


def test_counts_equal_item_knn_and_sequential_rules_of_the_evaluator():
    items, times = random_streams()
    n = 30
    knn, rules = ItemKNN(len(items), n), SequentialRules(len(items), n)
    for user, stream in enumerate(items):
        for item in stream.tolist():
            knn.learn(user, item, 0), rules.learn(user, item, 0)
            knn.seen[user].append(item), rules.seen[user].append(item)
    got = build(items, times, n, keep=n)
    np.testing.assert_allclose(dense(got.covisits, n), knn.cooc)
    expected = np.zeros((n, n))
    for i, row in enumerate(rules.rules):
        for j, w in row.items():
            expected[i, j] = w
    np.testing.assert_allclose(dense(got.rules, n), expected, rtol=1e-6)


def test_only_pairs_ending_among_the_newest_events_count_and_rows_keep_the_strongest():
    # user 0: 0 1 2 at t 0, 1, 2; user 1: 3 2 at t 10, 11. The newest two events are 3 and 2
    # of user 1: only the pair (3, 2) ends there.
    got = build([np.array([0, 1, 2]), np.array([3, 2])],
                [np.array([0, 1, 2]), np.array([10, 11])], 4, keep=5, events=2)  # fmt: skip
    assert got.covisits.row(3)[0].tolist() == [2] and got.covisits.row(2)[0].tolist() == [3]
    assert got.covisits.row(0)[0].tolist() == [] and got.rules.row(3)[0].tolist() == [2]
    # item 0 follows by 1 twice and by 2 once: keep=1 keeps 1; a tie keeps the lower index
    kept = build([np.array([0, 1]), np.array([0, 1]), np.array([0, 2]), np.array([3, 2]),
                  np.array([3, 1])], [np.arange(2)] * 5, 4, keep=1)  # fmt: skip
    assert kept.rules.row(0)[0].tolist() == [1] and kept.rules.row(3)[0].tolist() == [1]


def test_fused_list_is_the_models_until_a_neighbour_outranks_it():
    neighbours = build([np.array([0, 5]), np.array([0, 5]), np.array([0, 6])],
                       [np.arange(2)] * 3, 8)  # fmt: skip
    model = np.array([[1, 2, 3, -1], [1, 2, 3, 4]])
    known = [[0], []]
    same = fuse(neighbours, model, known, 3, (1.0, 0.0, 0.0)).indices
    assert same.tolist() == [[1, 2, 3], [1, 2, 3]]
    fused, scores, *_ = fuse(neighbours, model, known, 3, (1.0, 1.0, 1.0))
    # 5 followed 0 twice (co-visit 1 + rule 1), 6 once (0.5 + 0.5) and ties with the model's
    # first (1): the tie goes to the model's; a user without history gets the model's list
    assert fused[0].tolist() == [5, 1, 6]
    assert fused[1].tolist() == [1, 2, 3] and (np.diff(scores, axis=1) <= 0).all()
    never_known = fuse(neighbours, np.array([[0, 5, 1, 2]]), [[0, 5]], 4, (1.0, 1.0, 1.0))[0]
    assert not {0, 5} & set(never_known[0].tolist())


def saved_artifact(tmp_path, neighbours: Neighbours):
    model = MatrixFactorization(n_items=8, dim=8, max_len=5)
    with torch.no_grad():
        model.items.weight[:8] = torch.eye(8)  # item k along axis k
    save_artifact(tmp_path, model, [f"i{n}" for n in range(8)], {}, {}, neighbours=neighbours)
    return tmp_path


def test_artifact_serves_its_neighbours_at_the_blends_weights(tmp_path):
    path = saved_artifact(tmp_path, build([np.array([0, 5])] * 3, [np.arange(2)] * 3, 8))
    interest = np.array([[0.0, 1.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)  # i1 first
    off = load_recommender(path, Blend(sequence_weight=0.0))
    on = load_recommender(path, Blend(sequence_weight=0.0, covisit_weight=1.0, rules_weight=1.0))
    assert off.top_k(interest, [["i0"]], 2)[0].item_ids[0] == "i1"
    assert on.top_k(interest, [["i0"]], 2)[0].item_ids == ["i5", "i1"]
    assert on.top_k(interest, [[]], 2)[0].item_ids == off.top_k(interest, [[]], 2)[0].item_ids


def test_neighbours_that_do_not_fit_their_catalog_are_refused(tmp_path):
    neighbours = build([np.array([0, 5])], [np.arange(2)], 8)
    with pytest.raises(ValueError, match="over 8 items, not 7"):
        save_artifact(tmp_path, MatrixFactorization(n_items=7, dim=4, max_len=5),
                      [f"i{n}" for n in range(7)], {}, {}, neighbours=neighbours)  # fmt: skip
    rules = neighbours.rules
    bad = Neighbours(8, neighbours.covisits, Rows(rules.indptr, rules.targets + 8, rules.weights))
    bad.save(tmp_path / NEIGHBOURS_FILE)
    with pytest.raises(ValueError, match="rules is not a matrix over 8 items"):
        Neighbours.load(tmp_path / NEIGHBOURS_FILE)


def chain_log(n_users: int = 120, n_items: int = 40, length: int = 8, seed: int = 0,
              steps: tuple[int, ...] = (1,)):  # fmt: skip
    """Each user walks the items from a random one, each step one of ``steps`` ahead: with one,
    what follows an item is known."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    items = [(s + np.concatenate([[0], np.cumsum(rng.choice(steps, length - 1))])) % n_items
             for s in starts]  # fmt: skip
    times = [u * 1000 + np.arange(length) for u in range(n_users)]
    return Interactions([f"i{n}" for n in range(n_items)], [f"u{u}" for u in range(n_users)],
                        items, times, [np.ones(length, np.float32)] * n_users)  # fmt: skip


def test_the_fit_weighs_neighbours_where_they_predict_and_never_below_the_model_alone():
    data = chain_log()
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(40, 8)).astype(np.float32), np.zeros(40, np.float32)
    fitted = fit_fusion(*noise, data, InterestConfig(), 100, 10_000, newest(data, 200))
    # the newest 200 are the last 25 users' walks; a first step has nothing to follow
    assert fitted["rules_weight"] > 0 and fitted["held_out"] == 175
    assert fitted["ndcg@10"] > 0.9 > fitted["model_ndcg@10"]
    # a model that knows the next item already (each item's vector points at the next one's)
    # gains nothing from neighbours that are also right: the lighter fusion wins the tie
    eye = np.eye(40, dtype=np.float32)
    knowing = np.roll(eye, -1, axis=1) * 10 + eye, np.zeros(40, np.float32)
    kept = fit_fusion(*knowing, data, InterestConfig(half_life_events=0.01), 100, 10_000,
                      newest(data, 200))  # fmt: skip
    assert kept["ndcg@10"] >= kept["model_ndcg@10"]


def test_a_version_with_nothing_held_out_keeps_its_parents_weights():
    data = chain_log()
    vectors = np.zeros((40, 4), np.float32), np.zeros(40, np.float32)
    parent = {"covisit_weight": 2.0, "rules_weight": 0.5}
    neighbours, config = version_neighbours(vectors, data, [], InterestConfig(), 10, 1000, {},
                                            {}, parent)  # fmt: skip
    assert config["neighbours"] == {**parent, "content_weight": 0.0, "sessions_weight": 0.0}
    assert neighbours.n_items == 40
    assert version_neighbours(vectors, data, [], InterestConfig(), 0, 1000, {}, {}) == (None, {})


def test_the_fits_ranks_are_the_fused_lists_ranks():
    data = chain_log(n_items=30, steps=(1, 2, 3, 5))
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=30).astype(np.float32)
    held = newest(data, 300)
    fitted = fit_fusion(*vectors, data, InterestConfig(), 100, 10_000, held)
    # the same held-out events ranked by fuse itself, at the chosen weights
    held = [(u, p) for u, p in held if p > 0]
    first = {}
    for u, p in held:
        first[u] = min(p, first.get(u, p))
    before = [s[: first.get(u, len(s))] for u, s in enumerate(data.items)]
    neighbours = build(before, [t[: len(s)] for t, s in zip(data.times, before)], 30, 100, 10_000)
    known = [data.items[u][max(0, p - 50):p].tolist() for u, p in held]
    from models.fusion_fit import _model_lists
    users, positions = zip(*held)
    model = _model_lists(*vectors, data, InterestConfig(), users, positions, known)
    lists = fuse(neighbours, model, known, 10,
                 (1.0, *(fitted[name] for name in FUSION_WEIGHTS))).indices  # fmt: skip
    targets = np.array([data.items[u][p] for u, p in held])
    hit = lists == targets[:, None]
    ndcg = np.where(hit.any(1), 1.0 / np.log2(hit.argmax(1) + 2), 0.0).mean()
    assert 0.2 < fitted["ndcg@10"] < 0.9  # targets at several ranks
    assert fitted["ndcg@10"] == pytest.approx(ndcg, abs=1e-6)


def test_an_item_added_after_the_version_keeps_the_models_rank():
    # items 8 and 9 came after the version (learned online, or from content): no counts
    neighbours = build([np.array([0, 5])] * 3, [np.arange(2)] * 3, 8)
    model = np.array([[1, 9, 2, 3, 8]])
    fused, scores, *_ = fuse(neighbours, model, [[0]], 4, (1.0, 4.0, 4.0))
    assert fused[0].tolist() == [5, 9, 1, 2]  # 5 outranks the model's first; 9 stays second
    assert (np.diff(scores[0]) <= 0).all()
    assert fuse(neighbours, model, [[0, 9]], 4, (1.0, 4.0, 4.0))[0][0].tolist() == [5, 1, 2, 3]


def test_an_item_the_neighbours_brought_is_explained_by_the_recent_item_behind_it(tmp_path):
    # 5 followed 0 three times; the user saw 3 then 0: 5 comes from 0's rule and co-visits
    path = saved_artifact(tmp_path, build([np.array([0, 5])] * 3, [np.arange(2)] * 3, 8))
    interest = np.array([[0.0, 1.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)
    on = load_recommender(path, Blend(sequence_weight=0.0, covisit_weight=1.0, rules_weight=1.0))
    [out] = on.top_k(interest, [["i3", "i0"]], 2, recent_weights=[[1.0, 1.0]])
    assert out.item_ids == ["i5", "i1"]
    assert out.because[0] == [("i0", 2.0)]  # co-visit 1 + rule 1, each over the user's best
    assert all(item != "i0" for item, _ in out.because[1])  # the model's pick: by vectors


def test_fused_lists_equal_a_plain_sort_of_every_candidate_ties_included():
    rng = np.random.default_rng(3)
    items, times = random_streams(n_users=60, n_items=40, seed=3)
    neighbours = build(items, times, 40, keep=5)  # few neighbours: many equal scores
    model = np.stack([rng.permutation(40)[:12] for _ in range(30)])
    model[::7, 10:] = -1
    known = [rng.choice(40, size=int(rng.integers(0, 8)), replace=False).tolist()
             for _ in range(30)]  # fmt: skip
    weights = (1.0, 2.0, 1.0, 0.0, 1.5)  # co-visits, rules and sessions
    got = fuse(neighbours, model, known, 10, weights)
    found = candidates(neighbours, model, known)
    score = found.scores(weights)
    for b in range(30):
        mine = [n for n in np.flatnonzero(found.row == b) if np.isfinite(score[n])]
        expected = [int(found.item[n]) for n in sorted(
            mine, key=lambda n: (-score[n], found.rank[n], found.item[n]))][:10]
        assert got.indices[b, :len(expected)].tolist() == expected
        assert (got.indices[b, len(expected):] == -1).all()


def test_a_list_longer_than_the_pool_keeps_the_models_order_and_no_weightless_source():
    # an exploration pool asks for more than the 50 the ranks weigh: past them the model's
    # order still holds, and a source weighing 0 brings nothing in
    neighbours = build([np.array([0, 1])] * 3, [np.arange(2)] * 3, 200)
    model = np.arange(100, 160)[None, :]
    got = fuse(neighbours, model, [[0]], 60, (1.0, 0.0, 0.0)).indices
    assert got[0].tolist() == list(range(100, 160))
    assert fuse(neighbours, model, [[0]], 60, (1.0, 2.0, 0.0)).indices[0, 0] == 1


@pytest.mark.parametrize("space", [50, 10**9])  # grouped by marking, and by sorting
def test_grouping_a_batchs_keys_matches_numpys_sorting(monkeypatch, space):
    monkeypatch.setattr("models.candidates.DENSE_KEYS", 1000)
    rng = np.random.default_rng(space % 97)
    keys = rng.integers(0, 50, 300) * (space // 50)
    unique, inverse = grouped(keys, space)
    expected, expected_inverse = np.unique(keys, return_inverse=True)
    assert unique.tolist() == expected.tolist() and inverse.tolist() == expected_inverse.tolist()
    members = keys[rng.integers(0, len(keys), 20)]
    assert (positions_in(members, keys, space) >= 0).tolist() == np.isin(keys, members).tolist()
    table = np.unique(members)[::-1]  # distinct, in no order
    where = positions_in(table, keys, space)
    assert ((where >= 0) == np.isin(keys, table)).all()
    assert (table[where[where >= 0]] == keys[where >= 0]).all()
    assert (positions_in(table[:0], keys, space) == -1).all()


def test_lists_and_reasons_are_the_same_however_the_keys_are_grouped(monkeypatch):
    rng = np.random.default_rng(5)
    items, times = random_streams(n_users=60, n_items=40, seed=5)
    neighbours = build(items, times, 40, keep=5)
    model = np.stack([rng.permutation(40)[:12] for _ in range(30)])
    known = [rng.choice(40, size=int(rng.integers(0, 8)), replace=False).tolist()
             for _ in range(30)]  # fmt: skip
    weights = (1.0, 2.0, 1.0, 0.0, 1.5)

    def served():
        fused = fuse(neighbours, model, known, 10, weights)
        return (fused.indices, fused.scores, fused.by_neighbours,
                *explain(neighbours, fused, weights[1:], 3))  # fmt: skip

    counted = served()
    monkeypatch.setattr("models.candidates.DENSE_KEYS", 0)  # every batch grouped by sorting
    assert counted[2].any() and counted[3].max() >= 0  # neighbours placed and explained some
    for by_counting, by_sorting in zip(counted, served()):
        assert by_counting.tolist() == by_sorting.tolist()


def test_a_batch_fused_in_chunks_of_users_serves_what_one_chunk_would(monkeypatch):
    items, times = random_streams(n_users=60, n_items=40, seed=7)
    torch.manual_seed(7)
    rec = Recommender(MatrixFactorization(n_items=40, dim=8, max_len=5),
                      [f"i{n}" for n in range(40)], "v",
                      Blend(sequence_weight=0.0, covisit_weight=1.0, rules_weight=2.0,
                            sessions_weight=1.5, explain=3))  # fmt: skip
    rec.neighbours = build(items, times, 40, keep=5)
    rng = np.random.default_rng(7)
    recent = [[f"i{i}" for i in rng.choice(40, int(rng.integers(0, 8)), replace=False)]
              for _ in range(30)]  # fmt: skip
    interests = rng.normal(size=(30, 8)).astype(np.float32)

    def served():
        got = rec.top_k(interests, recent, 10, [[1.0] * len(r) for r in recent])
        return got.indices, got.scores, got.because, got.contributions

    whole = served()
    monkeypatch.setattr("models.fusion.CHUNK", 7)  # 30 users in five chunks
    assert (whole[2] >= 0).any()
    for one, chunked in zip(whole, served()):
        assert one.tolist() == chunked.tolist()
