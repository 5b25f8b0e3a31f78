"""Off-policy estimates on logged records (models/off_policy.py): on-policy they equal what was
observed; for another epsilon, on logs where the click probabilities are known, they land near
the target's true rate with a narrow interval around them; feedback counts only for the items a
list showed."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from core.events import Event
from models.off_policy import estimate, logged_lists, observed_rate, positives_of, slot_weights

K, BUDGET, EPS = 5, 2, 0.2
MODEL_P = np.array([0.30, 0.25, 0.20, 0.35, 0.30])  # the model's item's click chance per slot
EXPLORED_P = 0.02  # an explored item's


@lru_cache(maxsize=4)  # both targets read the same 40,000 lists (the last test copies its own)
def synthetic_logs(n: int, seed: int = 1) -> tuple[list[dict], dict[str, set[str]]]:
    """``n`` epsilon-greedy records, and which of their items were clicked."""
    rng = np.random.default_rng(seed)
    records, positives = [], {}
    for r in range(n):
        explored = np.zeros(K, dtype=bool)
        explored[K - BUDGET :] = rng.random(BUDGET) < EPS
        pool = 40
        propensity = np.where(explored, EPS / pool, np.where(np.arange(K) >= K - BUDGET,
                                                               1 - EPS, 1.0))  # fmt: skip
        items = [f"r{r}-{slot}" for slot in range(K)]
        clicked = rng.random(K) < np.where(explored, EXPLORED_P, MODEL_P)
        records.append({"rec_id": f"{r:016x}", "items": [
            {"item_id": i, "propensity": float(p), "explored": bool(e)}
            for i, p, e in zip(items, propensity, explored)],
            "exploration": {"policy": "epsilon", "budget": BUDGET, "epsilon": EPS}})  # fmt: skip
        if clicked.any():
            positives[f"{r:016x}"] = {i for i, c in zip(items, clicked) if c}
    return records, positives


def true_rate(target: float) -> float:
    exploring = MODEL_P[K - BUDGET :]
    return float(MODEL_P[: K - BUDGET].sum() + ((1 - target) * exploring + target * EXPLORED_P
                                                 ).sum()) / K  # fmt: skip


def test_on_policy_the_estimate_is_what_was_observed():
    records, positives = synthetic_logs(2000)
    lists, other = logged_lists(records, K)
    got = estimate(lists, positives, EPS)
    assert other == 0 and got["lists"] == 2000
    assert got["ips"] == pytest.approx(observed_rate(lists, positives), rel=1e-12)
    assert got["snips"] == pytest.approx(got["ips"], rel=1e-12)  # every weight is 1


@pytest.mark.parametrize("target", [0.0, 0.4])
def test_another_epsilons_estimate_lands_on_its_true_rate(target):
    records, positives = synthetic_logs(40_000)
    lists, _ = logged_lists(records, K)
    got = estimate(lists, positives, target)
    truth = true_rate(target)
    for name in ("ips", "snips"):
        assert abs(got[name] - truth) < 0.03 * truth, (name, got[name], truth)
        low, high = got[f"{name}_ci"]  # around the estimate, and as narrow as 40,000 lists allow
        assert low < got[name] < high and high - low < 0.05 * truth
    # and the target differs enough from the logger for this to mean something
    assert abs(true_rate(target) - true_rate(EPS)) > 0.05 * true_rate(EPS)


def test_weights_are_one_outside_the_exploring_slots():
    records, _ = synthetic_logs(50)
    lists, _ = logged_lists(records, K)
    for logged in lists.values():
        w = slot_weights(logged, 0.5)
        assert np.all(w[: K - BUDGET] == 1.0)
        assert np.allclose(w[K - BUDGET :], np.where(logged.explored[K - BUDGET :], 0.5 / EPS,
                                                     0.5 / (1 - EPS)))  # fmt: skip


def test_feedback_counts_only_for_positive_events_on_items_the_list_showed():
    records, _ = synthetic_logs(3)
    lists, _ = logged_lists(records + [{"rec_id": "g", "items": [],
                                         "exploration": {"policy": "greedy", "budget": 0}}], K)
    first = records[0]["rec_id"]
    events = [Event("u", "r0-1", "click", 1, rec_id=first),
              Event("u", "r0-2", "skip", 2, rec_id=first),  # negative: not a positive
              Event("u", "elsewhere", "click", 3, rec_id=first),  # not in the list
              Event("u", "r1-0", "click", 4, rec_id="unknown"),
              Event("u", "r1-0", "click", 5)]  # no rec_id
    got = positives_of(events, lambda e: e.type == "click", lists)
    assert got == {first: {"r0-1"}} and "g" not in lists


def test_logs_that_never_explored_cannot_estimate_another_epsilon():
    records, positives = synthetic_logs.__wrapped__(10)  # changed below: not the cached one
    for record in records:
        record["exploration"]["epsilon"] = 0.0
        for item in record["items"]:
            item["explored"] = False
    lists, _ = logged_lists(records, K)
    with pytest.raises(ValueError, match="explored nothing"):
        estimate(lists, positives, 0.3)
