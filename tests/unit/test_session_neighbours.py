"""Session neighbours (models/session_neighbours.py): a worker's V-SKNN over the version's
windows scores as the evaluator's streamed V-SKNN does, survives the artifact's file, and what it
brings into a fused list is explained by the recent item it shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import session_neighbours
from models.artifact import load_recommender, save_artifact
from models.blend import Blend
from models.mf import MatrixFactorization
from models.fusion import fuse
from models.neighbour_reasons import explain
from models.neighbours import KINDS, Neighbours, build
from models.session_knn import VSKNN
from models.session_neighbours import Sessions


def streamed(n_users: int, n_items: int, events: int, seed: int, **policy) -> VSKNN:
    """The evaluator's V-SKNN after a random stream (times with ties, repeats in windows)."""
    rng = np.random.default_rng(seed)
    vsknn = VSKNN(n_users, n_items, **policy)
    for n in range(events):
        user, item = int(rng.integers(n_users)), int(rng.integers(n_items))
        vsknn.learn(user, item, n // 3)
        vsknn.seen[user].append(item)
    return vsknn


def frozen(vsknn: VSKNN, asker: int) -> Sessions:
    """Its windows as a version's sessions, the asker's left out (the streamed one skips it)."""
    others = [u for u in range(len(vsknn.seen)) if u != asker and vsknn.seen[u]]
    rows = np.full((len(others), session_neighbours.WINDOW), -1, dtype=np.int32)
    for row, u in enumerate(others):
        rows[row, : len(vsknn.session(u))] = vsknn.session(u)
    return Sessions(rows, vsknn.last_ts[others], vsknn.item_events.astype(np.float32),
                    int(vsknn.active.sum()))  # fmt: skip


@pytest.mark.parametrize("sample, nearest", [(500, 100), (8, 5)])
def test_the_frozen_index_scores_every_item_as_the_streamed_v_sknn(monkeypatch, sample, nearest):
    monkeypatch.setattr(session_neighbours, "SAMPLE", sample)
    monkeypatch.setattr(session_neighbours, "NEAREST", nearest)
    for seed in range(6):
        vsknn = streamed(30, 25, 600, seed, k=nearest, sample_size=sample)
        for asker in (0, 7, 29):
            window = vsknn.session(asker)
            owner, target, vote, _ = frozen(vsknn, asker).expand(
                np.zeros(len(window), np.int64), np.array(window, np.int64))
            got = np.bincount(target[owner == 0], vote[owner == 0], 25)
            np.testing.assert_allclose(got, vsknn.scores(asker, 10**9), rtol=1e-5, atol=1e-9)


def test_a_batch_scores_each_user_as_alone_and_sessions_survive_the_file(tmp_path):
    vsknn = streamed(30, 25, 600, 11)
    items = [np.array(s, np.int64) for s in vsknn.seen]
    times = [np.arange(len(s), dtype=np.int64) * 30 + u for u, s in enumerate(vsknn.seen)]
    neighbours = build(items, times, 25, keep=10)
    windows = [vsknn.session(u) for u in (3, 4, 5)]
    owner = np.repeat(np.arange(3), [len(w) for w in windows])
    together = neighbours.sessions.expand(owner, np.concatenate(windows).astype(np.int64))
    for b, window in enumerate(windows):
        alone = neighbours.sessions.expand(np.zeros(len(window), np.int64),
                                           np.array(window, np.int64))  # fmt: skip
        mine = together[0] == b
        for part, got in zip(together[1:], alone[1:]):
            np.testing.assert_array_equal(part[mine], got)
    neighbours.save(tmp_path / "n.npz")
    loaded = Neighbours.load(tmp_path / "n.npz", (25,))
    for name in ("rows", "last", "item_events", "newest", "holders_indptr", "holders"):
        np.testing.assert_array_equal(getattr(loaded.sessions, name),
                                      getattr(neighbours.sessions, name))  # fmt: skip
    assert loaded.sessions.users == neighbours.sessions.users


def test_the_users_whose_windows_are_alike_bring_their_items_and_the_shared_one_explains_it():
    # items 0-2 are one taste, 10-12 another; user 3's window is like users 0-2's
    items = [np.array(s) for s in ([0, 1, 2, 5], [1, 2, 0, 5], [2, 0, 1, 5], [0, 1],
                                   [10, 11, 12, 13], [11, 12, 10, 13])]  # fmt: skip
    times = [np.arange(len(s), dtype=np.int64) for s in items]
    neighbours = build(items, times, 20, keep=0)
    model = np.full((1, 3), -1, dtype=np.int64)
    model[0, 0] = 13  # the model alone would show the other taste
    weights = (1.0, 0.0, 0.0, 0.0, 4.0)
    fused = fuse(neighbours, model, [[0, 1]], 3, weights)
    assert fused.indices[0, :2].tolist() == [2, 5] and fused.by_neighbours[0, :2].all()
    because, _ = explain(neighbours, fused, weights[1:], 2)
    assert because[0, 0, 0] == 1  # the newest recent item the alike sessions share
    # weightless, the sessions are not expanded: the model's list stands
    assert fuse(neighbours.weighing(weights[1:4] + (0.0,)), model, [[0, 1]], 3,
                (1.0, 0.0, 0.0, 0.0, 0.0)).indices[0, 0] == 13  # fmt: skip
    assert neighbours.kinds() == ["covisits", "rules", "sessions"] and len(KINDS) == 4


def test_an_artifact_serves_its_sessions_at_the_blends_weight_and_explains_them(tmp_path):
    items = [np.array(s) for s in ([0, 1, 2, 5], [1, 2, 0, 5], [2, 0, 1, 5], [10, 11, 12, 13])]
    neighbours = build(items, [np.arange(len(s), dtype=np.int64) for s in items], 16, keep=0)
    model = MatrixFactorization(n_items=16, dim=16, max_len=5)
    with torch.no_grad():
        model.items.weight[:16] = torch.eye(16)  # item k along axis k
    save_artifact(tmp_path, model, [f"i{n}" for n in range(16)], {}, {}, neighbours=neighbours)
    interest = np.zeros((1, 16), np.float32)
    interest[0, 13], interest[0, 12] = 1.0, 0.5  # the model alone: the other taste
    off = load_recommender(tmp_path, Blend(sequence_weight=0.0))
    on = load_recommender(tmp_path, Blend(sequence_weight=0.0, sessions_weight=4.0))
    assert off.top_k(interest, [["i0", "i1"]], 2)[0].item_ids == ["i13", "i12"]
    [out] = on.top_k(interest, [["i0", "i1"]], 2, recent_weights=[[1.0, 1.0]])
    assert out.item_ids == ["i2", "i5"]
    assert out.because[0][0][0] == "i1"  # the newest recent item the alike sessions share


def test_items_past_the_versions_count_as_positions_and_never_mix_users_in_a_batch():
    rows = np.full((3, session_neighbours.WINDOW), -1, np.int32)
    rows[0, :3], rows[1, :3], rows[2, :2] = [0, 2, 3], [1, 4, 2], [0, 1]
    sessions = Sessions(rows, np.array([3, 2, 1]), np.ones(5, np.float32), 3)
    # item 7 came after the version (a catalog's, or learned live): no holders, but a position;
    # user 0's (0, 7) must not read as user 1's item 2 (both keys 7 over 5 items once)
    alone = [sessions.expand(np.zeros(len(w), np.int64), np.array(w)) for w in ([0, 7], [2])]
    together = sessions.expand(np.array([0, 0, 1]), np.array([0, 7, 2]))
    for b, got in enumerate(alone):
        mine = together[0] == b
        for part, expected in zip(together[1:], got[1:]):
            np.testing.assert_array_equal(part[mine], expected)
    shifted = sessions.expand(np.zeros(2, np.int64), np.array([0, 1]))
    assert not np.array_equal(np.bincount(alone[0][1], alone[0][2], 5),
                              np.bincount(shifted[1], shifted[2], 5))  # fmt: skip


def test_a_version_keeps_its_newest_users_in_the_users_order():
    items = [np.array([1, 2]), np.array([2, 3]), np.array([3]), np.array([1])]
    times = [np.array([0, 5]), np.array([1, 9]), np.array([2]), np.array([10])]
    sessions = Sessions.build(items, times, 4, kept=2)
    assert sessions.rows[:, :2].tolist() == [[2, 3], [1, -1]]  # users 1 and 3, in that order
    assert sessions.last.tolist() == [9, 10] and sessions.users == 4


@pytest.mark.parametrize("name, bad", [
    ("sessions_item_events", np.array([np.nan, 1.0, 1.0], np.float32)),
    ("sessions_item_events", np.array([np.inf, 1.0, 1.0], np.float32)),
    ("sessions_users", np.array([1, 2])),
    ("sessions_rows", np.full((1, 20), 0.5)),
    ("sessions_last", np.array(["x"])),
])
def test_a_malformed_sessions_file_is_refused(tmp_path, name, bad):
    neighbours = build([np.array([0, 1, 2])], [np.arange(3)], 3, keep=5)
    arrays = dict(np.load(_saved(neighbours, tmp_path)))
    arrays[name] = bad
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError):
        Neighbours.load(tmp_path / "bad.npz", (3,))


def _saved(neighbours: Neighbours, tmp_path) -> str:
    neighbours.save(tmp_path / "n.npz")
    return str(tmp_path / "n.npz")
