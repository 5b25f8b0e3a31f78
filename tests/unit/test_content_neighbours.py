"""Content neighbours (models/content_neighbours.py): items alike in text, weighed by how few
events each has, fused with the model's list where the fit finds they predict, and explained by
the recent item whose text they share."""

import numpy as np
import torch

from core.interest import InterestConfig
from models.artifact import load_recommender, save_artifact
from models.blend import Blend
from models.content import ContentVectors, Projection
from models.content_neighbours import content_rows, served_ids
from models.data import Interactions
from models.fusion_fit import fit_fusion, last_of_each
from models.mf import MatrixFactorization
from models.fusion import fuse
from models.neighbours import build


def catalog(ids, vectors) -> ContentVectors:
    vectors = np.asarray(vectors, np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    dim = vectors.shape[1]
    return ContentVectors(tuple(ids), vectors,
                          Projection(np.zeros((dim, 8), np.float32), np.zeros(8, np.float32)), "t")


def test_rows_rank_alike_items_by_similarity_times_coldness_over_the_served_catalog():
    # a and b alike x; c alike a bit less, but nobody engaged with it; d unlike; z no text
    content = catalog("abcd", [[1, 0, 0], [0.9, 0.1, 0], [0.8, 0.3, 0], [0, 0, 1]])
    served = served_ids(["z", "a", "b"], content)
    assert served == ["z", "a", "b", "c", "d"]  # the model's, then the catalog's others
    rows = content_rows(content, served, positives=np.array([0, 5, 9]))
    targets, weights = rows.row(1)  # a's: c (cold) before b (9 events), never d (orthogonal)
    assert targets.tolist() == [3, 2]
    cosine = content.content @ content.content.T
    assert np.allclose(weights, [cosine[0, 2], cosine[0, 1] / 10], atol=1e-6)
    assert rows.row(0)[0].tolist() == [] and 0 not in rows.targets  # z has no text


def served_artifact(tmp_path):
    """Items i0..i7, each along its own axis; the catalog adds "new", alike i0 in text."""
    model = MatrixFactorization(n_items=8, dim=8, max_len=5)
    with torch.no_grad():
        model.items.weight[:8] = torch.eye(8)
        model.item_bias.zero_()
    ids = [f"i{n}" for n in range(8)]
    text = np.eye(9)[:, :9].copy()
    text[8, 0] = 3.0  # "new" is mostly i0
    content = catalog(ids + ["new"], text)  # projected: text axis n to item axis n
    content = ContentVectors(content.item_ids, content.content,
                             Projection(np.eye(9, 8, dtype=np.float32), np.zeros(8, np.float32)),
                             "t")  # fmt: skip
    served = served_ids(ids, content)
    neighbours = build([np.array([1, 2])] * 2, [np.arange(2)] * 2, 8,
                       content=content_rows(content, served, np.array([9.0] * 8)))  # fmt: skip
    save_artifact(tmp_path, model, ids, {}, {}, content=content, neighbours=neighbours)
    return tmp_path


def test_a_catalog_item_alike_the_users_recent_item_is_served_and_explained_by_it(tmp_path):
    path = served_artifact(tmp_path)
    interest = np.array([[0.0, 1.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)
    off = load_recommender(path, Blend(sequence_weight=0.0, covisit_weight=0.0, rules_weight=0.0,
                                       content_weight=0.0))  # fmt: skip
    on = load_recommender(path, Blend(sequence_weight=0.0, covisit_weight=0.0, rules_weight=0.0,
                                      content_weight=4.0))  # fmt: skip
    assert on.neighbours.n_items == 9 and on.item_ids[8] == "new"
    assert "new" not in off.top_k(interest, [["i0"]], 3)[0].item_ids
    [out] = on.top_k(interest, [["i3", "i0"]], 3, recent_weights=[[1.0, 1.0]])
    assert out.item_ids[0] == "new"
    assert [item for item, _ in out.because[0]] == ["i0"]
    # a user whose recent items are unlike it keeps the model's list
    assert on.top_k(interest, [["i5"]], 3)[0].item_ids == off.top_k(interest, [["i5"]], 3)[0].item_ids


def twins_log(n_users: int = 150, seed: int = 0):
    """Items 0-19 are what users engage with; item 20 + j reads like item j, and a user's last
    event is the twin of the item before it (nobody engaged with a twin before)."""
    rng = np.random.default_rng(seed)
    items, times = [], []
    for u in range(n_users):
        walk = rng.choice(20, size=5, replace=False)
        items.append(np.concatenate([walk, [20 + walk[-1]]]))
        times.append(u * 1000 + np.arange(6))
    data = Interactions([f"i{n}" for n in range(40)], [f"u{u}" for u in range(n_users)], items,
                        times, [np.ones(6, np.float32)] * n_users)  # fmt: skip
    text = rng.normal(size=(20, 16))
    content = catalog(data.item_ids, np.concatenate([text, text + 0.1 * rng.normal(size=(20, 16))]))
    return data, content


def test_the_fit_weighs_content_where_users_go_on_to_items_alike_in_text():
    data, content = twins_log()
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(40, 8)).astype(np.float32), np.zeros(40, np.float32)
    held = last_of_each(data, 1000)
    fitted = fit_fusion(*noise, data, InterestConfig(), 100, 10_000, held, content)
    # the twins of the user's last 5 items are the cold candidates alike in text: one of 5
    assert fitted["content_weight"] > 0 and fitted["ndcg@10"] > 0.4 > fitted["model_ndcg@10"]
    # without the catalog, nothing speaks for a twin
    plain = fit_fusion(*noise, data, InterestConfig(), 100, 10_000, held)
    assert plain["content_weight"] == 0.0 and plain["ndcg@10"] < 0.2


def test_a_catalog_item_keeps_at_least_its_model_rank_beside_counted_neighbours(tmp_path):
    # the model ranks "new" (no interactions, so no co-visits) second; heavy co-visits of i1
    # and i2 must not bury it, and a user its text is unlike keeps it there too
    path = served_artifact(tmp_path)
    interest = np.zeros((1, 8), np.float32)
    interest[0, 3], interest[0, 0] = 1.0, 0.9  # "new" lies along i0's axis, mostly
    plain = load_recommender(path, Blend(sequence_weight=0.0, covisit_weight=0.0,
                                         rules_weight=0.0, content_weight=0.0))  # fmt: skip
    fused = load_recommender(path, Blend(sequence_weight=0.0, covisit_weight=8.0,
                                         rules_weight=8.0, content_weight=0.0))  # fmt: skip
    model_list = plain.top_k(interest, [["i5"]], 4)[0].item_ids
    at = model_list.index("new")
    got = fused.top_k(interest, [["i5", "i1"]], 4)[0].item_ids
    assert at > 0 and got[0] == "i2" and got.index("new") <= at


def test_rules_come_out_of_the_newest_item_with_counts_when_the_newest_is_catalog_only():
    content = catalog(["a", "b", "c", "new"], np.eye(4))
    served = served_ids(["a", "b", "c"], content)
    alike = content_rows(content, served, np.zeros(3))
    plain = build([np.array([0, 1])] * 3, [np.arange(2)] * 3, 3)
    with_content = build([np.array([0, 1])] * 3, [np.arange(2)] * 3, 3, content=alike)
    model = np.array([[2, -1]])
    # the user clicked a, then "new" (index 3, no counts): b still follows a
    for neighbours, known in ((plain, [[0]]), (with_content, [[0, 3]])):
        fused = fuse(neighbours, model, known, 2, (1.0, 0.0, 2.0, 0.0)).indices
        assert fused[0].tolist() == [1, 2]
