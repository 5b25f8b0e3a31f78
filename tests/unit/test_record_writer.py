"""The batch's records are written from arrays (streams/steps/records.py); here they are held to the
plain per-item reading of the schema: every item, score and explanation as a Python object."""

from __future__ import annotations

from tests.unit.step_helpers import plain_top_k

import numpy as np
import orjson
import pytest
import torch

from core.events import Event
from core.interest import Snapshot, UserState
from models.blend import Blend
from models.mf import MatrixFactorization
from models.scoring import Recommender
from streams.steps import records

N_ITEMS, DIM = 40, 8


def random_recommender(explain: int) -> Recommender:
    torch.manual_seed(3)
    model = MatrixFactorization(n_items=N_ITEMS, dim=DIM, max_len=5)
    items = [f'item "{n}" é' for n in range(N_ITEMS)]  # ids JSON must escape
    return Recommender(model, items, "v9", Blend(sequence_weight=0.0, explain=explain))


def random_states(rec: Recommender, n: int, rng: np.random.Generator) -> list[UserState]:
    states = []
    for _ in range(n):
        length = int(rng.integers(0, 12))
        recent = tuple(rec.item_ids[i] if i < N_ITEMS else f"unknown-{i}"
                       for i in rng.integers(0, N_ITEMS + 4, length))  # repeats, unknown ids
        weights = tuple(rng.normal(size=length).astype(np.float32).tolist())
        vector = rng.normal(size=DIM).astype(np.float32)
        states.append(UserState(vector, 1, length, recent, recent_weights=weights))
    return states


def oracle_items(rec: Recommender, state: UserState, item_ids: list[str]) -> list[dict]:
    """What each item of a record says, computed item by item."""
    merged: dict[str, float] = {}
    for item, weight in zip(state.recent, state.recent_weights):
        if item in rec.index:
            merged[item] = merged.get(item, 0.0) + weight
    vectors = rec.items.numpy()
    out = []
    for item in item_ids:
        contributions = sorted(
            ((float(np.float32(w) * (vectors[rec.index[j]] @ vectors[rec.index[item]])), j)
             for j, w in merged.items()), reverse=True)  # fmt: skip
        because = [{"item_id": j, "weight": c} for c, j in contributions[: rec.blend.explain]
                   if c > 0]  # fmt: skip
        out.append({"item_id": item, "because": because})
    return out


@pytest.mark.parametrize("explain", [0, 3])
def test_records_say_what_the_per_item_reading_says(explain: int):
    rng = np.random.default_rng(5)
    rec = random_recommender(explain)
    states = random_states(rec, 60, rng)
    snapshots = [Snapshot(Event(f"u{n}", "x", "click", 1000 + n, None, f"e{n}" if n % 2 else None),
                          (1, n), s)
                 for n, s in enumerate(states)]  # fmt: skip
    scored = plain_top_k(rec, states, 6)
    out = records.recommendation_records(snapshots, scored, rec.version, clock=lambda: 7.5)

    wants = rec.top_k(np.stack([s.vector for s in states]), [s.recent for s in states], 6,
                      [s.recent_weights for s in states])  # the same batch: the same sums
    for (key, value), snapshot, state, want in zip(out, snapshots, states, wants):
        record = orjson.loads(value)
        assert key == snapshot.event.user_id.encode()
        assert record["rec_id"] == records.rec_id(snapshot.event.user_id, *snapshot.position)
        assert [i["item_id"] for i in record["items"]] == want.item_ids
        assert [i["score"] for i in record["items"]] == [round(s, 6) for s in want.scores]
        assert len(want.item_ids) == 6 or len(set(state.recent)) > N_ITEMS - 6
        expected = oracle_items(rec, state, want.item_ids)
        for got, wanted in zip(record["items"], expected):
            assert [b["item_id"] for b in got["because"]] == [
                b["item_id"] for b in wanted["because"]]
            np.testing.assert_allclose([b["weight"] for b in got["because"]],
                                       [b["weight"] for b in wanted["because"]], atol=2e-6)
        assert (record["emitted_at"], record["model_version"]) == (7500, "v9")


def test_a_user_who_has_seen_almost_everything_gets_the_items_left():
    rec = random_recommender(2)
    state = UserState(np.ones(DIM, np.float32), 1, N_ITEMS - 2, tuple(rec.item_ids[2:]),
                      recent_weights=(1.0,) * (N_ITEMS - 2))  # fmt: skip
    scored = plain_top_k(rec, [state], 5)
    [(_, value)] = records.recommendation_records(
        [Snapshot(Event("u", "x", "click", 1), (0, 0), state)], scored, "v9")
    assert sorted(i["item_id"] for i in orjson.loads(value)["items"]) == rec.item_ids[:2]


def test_the_views_items_are_the_records_items():
    rng = np.random.default_rng(8)
    rec = random_recommender(3)
    states = random_states(rec, 5, rng)
    scored = plain_top_k(rec, states, 6)
    snapshots = [Snapshot(Event(f"u{n}", "x", "click", 1), (0, n), s) for n, s in enumerate(states)]
    out = records.recommendation_records(snapshots, scored, rec.version)
    for row, (_, value) in enumerate(out):
        assert records.record_items(scored, row) == orjson.loads(value)["items"]
